"""Every setting of a deployment, read from the environment in one place.

:func:`current` reads ``BGE_EXPLORER_*`` (and ``SPACE_ID``) each time it is called; nothing is read at
import time, so a test or an operator can change a variable and the next request sees it. Engine
objects take a :class:`Settings` (or its :class:`Limits`) as an argument and default to :func:`current`.

Over a limit, :class:`~bge_explorer.errors.LimitError` names the limit, its value and its variable.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

from bge_explorer.errors import LimitError, SettingsError

PREFIX = "BGE_EXPLORER_"


@dataclasses.dataclass(frozen=True)
class Limits:
    """Upper bounds per request. Each field is set by BGE_EXPLORER_<FIELD> (e.g. BGE_EXPLORER_MAX_UPLOAD_MB).

    ``max_query_chars`` bounds the query together with its instruction (the text the model reads);
    ``max_field_chars`` bounds every other short text field (titles, model ids, column names, split names).
    ``max_chunks`` is sized for a 2-core CPU (a free Space): all-MiniLM-L6-v2 embeds about 110 chunks of 256
    tokens a second there with bf16 (measured), so 10,000 chunks take about 1.5 minutes and bge-small-en-v1.5
    about twice that; raise it on a GPU. ``max_session_mb`` bounds what one session keeps (encodings, indexes,
    ColBERT vectors): past it the oldest models' encodings are dropped, and a part that would not fit is refused.
    """

    max_upload_mb: float = 100.0
    max_files: int = 100
    max_chunks: int = 10_000
    max_query_chars: int = 2_000
    max_field_chars: int = 500
    max_k: int = 1_000
    max_zip_mb: float = 1_024.0
    max_session_mb: float = 2_048.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Limits:
        env = os.environ if env is None else env
        return cls(**{f.name: _number(env, PREFIX + f.name.upper(), f.default) for f in dataclasses.fields(cls)})

    def describe(self) -> str:
        """One line for the UI: the limits in force."""
        return (f"Limits: {self.max_files} files and {self.max_upload_mb:g} MB per upload, {self.max_chunks:,} chunks "
                "(about 1.5 minutes to embed with all-MiniLM-L6-v2 on 2 CPU cores, 3 with bge-small), "
                f"queries up to {self.max_query_chars:,} characters (instruction included), k up to {self.max_k:,}, "
                f"{self.max_session_mb:,.0f} MB kept per session.")

    def check_files(self, paths: Sequence[str | Path]) -> None:
        if len(paths) > self.max_files:
            raise LimitError(f"{len(paths)} files is over the limit of {self.max_files} files per upload "
                             "(BGE_EXPLORER_MAX_FILES)")
        total = sum(os.path.getsize(p) for p in paths)
        if total > self.max_upload_mb * 2**20:
            raise LimitError(f"the upload is {total / 2**20:,.1f} MB, over the limit of {self.max_upload_mb:g} MB "
                             "(BGE_EXPLORER_MAX_UPLOAD_MB)")

    def check_chunks(self, n: int) -> None:
        if n > self.max_chunks:
            raise LimitError(f"{n:,} chunks is over the limit of {self.max_chunks:,} chunks "
                             "(BGE_EXPLORER_MAX_CHUNKS); use larger chunks or fewer documents")

    def check_memory(self, nbytes: int, what: str) -> None:
        """``nbytes`` more for this session within ``max_session_mb``, else LimitError naming the limit."""
        if nbytes > self.max_session_mb * 2**20:
            raise LimitError(f"{what} would take {nbytes / 2**20:,.0f} MB, over the limit of {self.max_session_mb:,.0f} "
                             "MB per session (BGE_EXPLORER_MAX_SESSION_MB); use fewer or smaller chunks")

    def check_k(self, k: int, field: str = "k") -> None:
        if not 1 <= k <= self.max_k:
            raise LimitError(f"{field} must be between 1 and {self.max_k:,} (BGE_EXPLORER_MAX_K); got {k:,}")

    def check_query(self, query: str, k: int | None = None, instruction: str = "") -> None:
        """The query plus its instruction (what the model reads) within ``max_query_chars``; ``k`` within max_k."""
        n = len(query) + len(instruction or "")
        if n > self.max_query_chars:
            what = "the query with its instruction" if instruction else "the query"
            raise LimitError(f"{what} has {n:,} characters, over the limit of {self.max_query_chars:,} "
                             "(BGE_EXPLORER_MAX_QUERY_CHARS)")
        if k is not None:
            self.check_k(k)

    def check_field(self, value: str, field: str) -> str:
        """A short text field (title, model id, column name, split) within ``max_field_chars``; returns it."""
        if len(value) > self.max_field_chars:
            raise LimitError(f"{field} has {len(value):,} characters, over the limit of {self.max_field_chars:,} "
                             "(BGE_EXPLORER_MAX_FIELD_CHARS)")
        return value


@dataclasses.dataclass(frozen=True)
class Settings:
    """A deployment's settings. ``from_env`` documents each variable next to its field.

    ``public``: a public deployment (``SPACE_ID`` set, or BGE_EXPLORER_PUBLIC=1, or ``app.py --public``): local
    model paths are refused unless ``model_roots`` is set. ``hub_allow`` and ``hub_token_for_visitors`` are about
    Hub ids a visitor types: catalog models are always allowed and use HF_TOKEN (docs/security.md, Model loading).
    """

    limits: Limits = Limits()
    model_roots: tuple[str, ...] = ()  # BGE_EXPLORER_MODEL_ROOTS, os.pathsep-separated; empty: any (not public)
    trust_remote_code: bool = False  # BGE_EXPLORER_TRUST_REMOTE_CODE=1
    model_memory_mb: float = 6_144.0  # BGE_EXPLORER_MODEL_MEMORY_MB: loaded models past this are evicted, LRU
    model_concurrency: int = 0  # BGE_EXPLORER_MODEL_CONCURRENCY; 0: 2 on CPU, 4 on GPU
    server_concurrency: int = 2  # BGE_EXPLORER_CONCURRENCY: Gradio's default concurrency limit per event
    session_ttl_s: float = 3_600.0  # BGE_EXPLORER_SESSION_TTL_S: idle seconds before a session is dropped
    max_sessions: int = 1_000  # BGE_EXPLORER_MAX_SESSIONS: browser sessions Gradio keeps (state_session_capacity)
    tmp_dir: str = ""  # BGE_EXPLORER_TMP_DIR; empty: <system temp>/bge-explorer-sessions
    auto_umap: bool = True  # BGE_EXPLORER_AUTO_UMAP=0 turns off fitting UMAP in the background after a build
    public: bool = False  # BGE_EXPLORER_PUBLIC=1 or SPACE_ID set
    max_model_mb: float = 3_000.0  # BGE_EXPLORER_MAX_MODEL_MB: a Hub model's download cap (its needed files)
    hub_allow: tuple[str, ...] = ()  # BGE_EXPLORER_HUB_ALLOW: comma-separated Hub ids a visitor may type; empty: any
    hub_token_for_visitors: bool = False  # BGE_EXPLORER_HUB_TOKEN_FOR_VISITORS=1: typed ids get HF_TOKEN too
    cache_dir: str = ""  # BGE_EXPLORER_CACHE_DIR; empty: $XDG_CACHE_HOME or ~/.cache, then /bge-explorer
    openvino: bool = True  # BGE_EXPLORER_OPENVINO=0 turns the OpenVINO backend off: auto then runs torch, saying so
    backend: str = "torch"  # BGE_EXPLORER_BACKEND (app.py --backend): torch or openvino, for the app's models
    precision: str = "auto"  # BGE_EXPLORER_PRECISION (app.py --precision): auto, fp32, bf16, int8 (openvino only)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()
        return cls(
            limits=Limits.from_env(env),
            model_roots=tuple(os.path.realpath(r) for r in env.get(PREFIX + "MODEL_ROOTS", "").split(os.pathsep) if r),
            trust_remote_code=env.get(PREFIX + "TRUST_REMOTE_CODE", "") == "1",
            model_memory_mb=_number(env, PREFIX + "MODEL_MEMORY_MB", d.model_memory_mb),
            model_concurrency=_number(env, PREFIX + "MODEL_CONCURRENCY", d.model_concurrency),
            server_concurrency=_number(env, PREFIX + "CONCURRENCY", d.server_concurrency),
            session_ttl_s=_number(env, PREFIX + "SESSION_TTL_S", d.session_ttl_s),
            max_sessions=_number(env, PREFIX + "MAX_SESSIONS", d.max_sessions),
            tmp_dir=env.get(PREFIX + "TMP_DIR", ""),
            auto_umap=env.get(PREFIX + "AUTO_UMAP", "1") != "0",
            public=env.get(PREFIX + "PUBLIC", "") == "1" or bool(env.get("SPACE_ID")),
            max_model_mb=_number(env, PREFIX + "MAX_MODEL_MB", d.max_model_mb),
            hub_allow=tuple(s.strip() for s in env.get(PREFIX + "HUB_ALLOW", "").split(",") if s.strip()),
            hub_token_for_visitors=env.get(PREFIX + "HUB_TOKEN_FOR_VISITORS", "") == "1",
            cache_dir=env.get(PREFIX + "CACHE_DIR", ""),
            openvino=env.get(PREFIX + "OPENVINO", "1") != "0",
            backend=env.get(PREFIX + "BACKEND", "") or d.backend,
            precision=env.get(PREFIX + "PRECISION", "") or d.precision,
        )

    def with_(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """What the page shows: the limits, and on a public deployment that local paths are off."""
        text = self.limits.describe()
        if self.public and not self.model_roots:
            text += " Public deployment: local model paths are off."
        return text

    def models_concurrency(self) -> int:
        """How many events that use a model run at once, in all; the others wait in the queue. 2 on the CPU
        (compute-bound: more at once only shares the same cores and adds activation memory), 4 on a GPU."""
        if self.model_concurrency > 0:
            return int(self.model_concurrency)
        from bge_explorer.models.devices import default_device

        return 4 if default_device().startswith("cuda") else 2

    def sessions_root(self) -> Path:
        """The folder holding every session directory (created 0700)."""
        folder = Path(self.tmp_dir or os.path.join(tempfile.gettempdir(), "bge-explorer-sessions"))
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder

    def cache_path(self, name: str) -> Path:
        """``<cache dir>/<name>``, created 0700: what the app keeps across processes (compiled code, converted
        models). The cache dir is BGE_EXPLORER_CACHE_DIR, else ``$XDG_CACHE_HOME/bge-explorer`` (``~/.cache``)."""
        base = self.cache_dir or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                              "bge-explorer")
        folder = Path(base) / name
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder

    def max_file_size(self) -> int:
        """Bytes for Gradio's ``launch(max_file_size=...)``: Gradio refuses a bigger upload while it streams in."""
        return int(self.limits.max_upload_mb * 2**20)


def current() -> Settings:
    """The settings in force now, read from the environment."""
    return Settings.from_env()


def _number(env: Mapping[str, str], name: str, default):
    value = env.get(name)
    if not value:
        return default
    try:
        return type(default)(float(value))
    except ValueError:
        raise SettingsError(f"{name}={value[:40]!r} is not a number") from None
