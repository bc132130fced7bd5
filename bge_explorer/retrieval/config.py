"""One retrieval configuration: what to embed with, how to chunk, which modes to fuse, how to rerank.

The CLI, the app and evaluation build a :class:`RetrievalConfig` and hand it to the pipeline
(:func:`bge_explorer.retrieval.pipeline.retrieve`). It is frozen, validated on creation (a bad value
raises :class:`~bge_explorer.errors.ConfigError` naming the field), serialisable to and from JSON and
YAML, and has a stable short :attr:`~RetrievalConfig.id` (a hash of every field but the label).

``modes`` names registered modes (:mod:`bge_explorer.retrieval.modes`); ``("hybrid",)`` stands for the
model's own first-stage modes (dense and sparse for BGE-M3, dense and BM25 for other models; ColBERT
only when named), resolved by the planner. With more than one mode, ``fusion`` combines them; ``auto``
is BGE-M3's weighted sum when every mode is an M3 score of an M3 model, else reciprocal rank fusion.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from bge_explorer.data.chunking import DEFAULT_OVERLAP, DEFAULT_SIZE
from bge_explorer.errors import ConfigError
from bge_explorer.models import backends
from bge_explorer.models.catalog import DEFAULT_MODEL
from bge_explorer.retrieval import modes as registry
from bge_explorer.retrieval.bm25_index import ANALYZERS, DEFAULT_ANALYZER
from bge_explorer.retrieval.fusion import FUSIONS, RRF_K

HYBRID = "hybrid"
AUTO = "auto"
DEFAULT_K = 100
DEFAULT_TOP_N = 20
INDEX_BACKENDS = ("faiss-flat", "faiss-hnsw", "faiss-ivfpq", "milvus", "qdrant")  # bge_explorer.indexes backends
POOLINGS = ("cls", "mean")
MODEL_CLASSES = ("encoder", "m3")
ADDED_FIELDS = {"backend": backends.DEFAULT_BACKEND, "bm25": DEFAULT_ANALYZER}  # field -> default: left out of the
# id at its default, so configurations written before the field existed keep their id


@dataclasses.dataclass(frozen=True)
class RetrievalConfig:
    """A retrieval configuration (see the module docstring).

    ``model``: a catalog name, Hub id or local directory; None for BM25 alone (chunk sizes then count words).
    ``revision``: the model identity this configuration was decided on (Hub revision or file hash); when set,
    loading a model with another identity is refused. ``backend`` (torch or openvino) and ``precision`` (auto,
    fp32, bf16, int8: openvino only) choose how models run (:mod:`bge_explorer.models.backends`). ``instruction``: None = the model's own query
    instruction, "" = none, any other string is prefixed to each query as is. ``chunk_size`` None: one chunk
    per document, truncated at the model's max length. ``bm25``: the BM25 analyzer
    (:data:`~bge_explorer.retrieval.bm25_index.ANALYZERS`: ``stemmed`` or ``lucene``). ``weights``: ``{mode: weight}`` for fusion (missing
    ones: the fusion's default). ``k``: chunks retrieved per query; the reranker rescores the first ``top_n``.
    """

    model: str | None = DEFAULT_MODEL
    pooling: str | None = None
    model_class: str | None = None
    revision: str | None = None
    backend: str = backends.DEFAULT_BACKEND
    precision: str = "auto"
    instruction: str | None = None
    chunk_size: int | None = DEFAULT_SIZE
    overlap: int = DEFAULT_OVERLAP
    modes: tuple[str, ...] = ("dense",)
    fusion: str = AUTO
    weights: tuple[tuple[str, float], ...] = ()
    rrf_k: int = RRF_K
    bm25: str = DEFAULT_ANALYZER
    reranker: str | None = None
    top_n: int = DEFAULT_TOP_N
    k: int = DEFAULT_K
    index: str = INDEX_BACKENDS[0]
    label: str = ""

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731  (frozen dataclass)
        for name in ("model", "pooling", "model_class", "revision", "reranker"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(name, f"must be a string, not {type(value).__name__}")
            set_(name, value.strip() or None if isinstance(value, str) else None)
        if self.instruction is not None and not isinstance(self.instruction, str):
            raise ConfigError("instruction", f"must be a string or null, not {type(self.instruction).__name__}")
        if not isinstance(self.label, str):
            raise ConfigError("label", f"must be a string, not {type(self.label).__name__}")
        set_("modes", parse_modes(self.modes))
        set_("weights", _weight_pairs(self.weights))
        for name in ("chunk_size", "overlap", "rrf_k", "top_n", "k"):
            set_(name, _int(name, getattr(self, name), allow_none=name == "chunk_size"))
        if self.chunk_size is not None and self.chunk_size < 1:
            set_("chunk_size", None)  # 0 or less: whole documents
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise ConfigError("pooling", f"must be one of {', '.join(POOLINGS)}, not {self.pooling!r}")
        if self.model_class is not None and self.model_class not in MODEL_CLASSES:
            raise ConfigError("model_class", f"must be one of {', '.join(MODEL_CLASSES)}, not {self.model_class!r}")
        backends.check(self.backend, self.precision)
        if self.fusion not in (AUTO, *FUSIONS):
            raise ConfigError("fusion", f"must be one of {AUTO}, {', '.join(FUSIONS)}, not {self.fusion!r}")
        if not isinstance(self.bm25, str) or self.bm25 not in ANALYZERS:
            raise ConfigError("bm25", f"must be one of {', '.join(ANALYZERS)}, not {self.bm25!r}")
        if self.index not in INDEX_BACKENDS:
            raise ConfigError("index", f"must be one of {', '.join(INDEX_BACKENDS)}, not {self.index!r}")
        if self.overlap < 0 or (self.chunk_size is not None and self.overlap >= self.chunk_size):
            raise ConfigError("overlap", f"must be at least 0 and below the chunk size; got {self.overlap}")
        for name in ("rrf_k", "top_n", "k"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be at least 1; got {getattr(self, name)}")
        named = set(self.modes) - {HYBRID}
        stray = [m for m, _ in self.weights if named and m not in named]
        if stray:
            raise ConfigError("weights", f"name mode(s) not in modes: {', '.join(stray)}")
        if self.model is None and any(registry.get(m).needs for m in named):
            raise ConfigError("model", f"modes {', '.join(sorted(m for m in named if registry.get(m).needs))} "
                                       "need an embedding model; only bm25 works without one")
        if self.model is None and self.modes == (HYBRID,):
            set_("modes", ("bm25",))

    # -- derived ---------------------------------------------------------------------------------------------

    @property
    def weight_map(self) -> dict[str, float]:
        return dict(self.weights)

    @property
    def fused(self) -> bool:
        """Whether more than one mode is combined (or the model's own modes, ``hybrid``)."""
        return len(self.modes) > 1 or self.modes == (HYBRID,)

    @property
    def needs_model(self) -> bool:
        """Whether an embedding model computes scores (every mode but text-only ones like BM25)."""
        return self.model is not None and (self.modes == (HYBRID,) or any(registry.get(m).needs for m in self.modes))

    @property
    def id(self) -> str:
        """A stable 12-hex-digit id: the hash of every field but the label. Fields added since 0.2 (``backend``)
        count only when not at their default, so the ids of earlier configurations stay."""
        fields = self.to_dict()
        fields.pop("label")
        for name, default in ADDED_FIELDS.items():
            if fields[name] == default:
                fields.pop(name)
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]

    def with_(self, **changes) -> RetrievalConfig:
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """A readable label: the given one, or model + modes + instruction + reranker + chunking."""
        if self.label:
            return self.label
        parts = []
        if self.needs_model:
            parts.append(self.model.rstrip("/").split("/")[-1])
            if self.backend != backends.DEFAULT_BACKEND:
                parts.append(f"{self.backend} {self.precision}")
        if self.fused:
            w = self.weight_map
            mix = " + ".join(f"{m} {w[m]:g}" if m in w else m for m in self.modes)
            parts.append(f"{mix} ({self.fusion})" if self.modes != (HYBRID,) else f"hybrid ({self.fusion})")
        elif self.modes != ("dense",):
            parts.append(self.modes[0].upper() if self.modes == ("bm25",) else self.modes[0])
        if self.needs_model:
            parts.append("model's instruction" if self.instruction is None else
                         "no instruction" if self.instruction == "" else f"instruction {self.instruction.strip()[:40]!r}")
        if self.reranker:
            parts.append(f"rerank top {self.top_n} with {self.reranker.rstrip('/').split('/')[-1]}")
        if self.chunk_size:
            parts.append(f"chunks of {self.chunk_size}/{self.overlap}")
        else:
            parts.append("whole documents")
        return ", ".join(parts)

    # -- serialisation ---------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; ``modes`` a list, ``weights`` a mapping."""
        out = dataclasses.asdict(self)
        out["modes"] = list(self.modes)
        out["weights"] = dict(self.weights)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "configuration") -> RetrievalConfig:
        """Build from a mapping (unknown keys are refused, naming them and ``where``)."""
        if not isinstance(data, Mapping):
            raise ConfigError(where, f"must be a mapping of fields, not {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = [k for k in data if k not in known]
        if unknown:
            raise ConfigError(where, f"unknown field(s) {', '.join(map(str, unknown))}; the fields are "
                                     f"{', '.join(sorted(known))}")
        return cls(**dict(data))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_text(cls, text: str, *, where: str = "configuration") -> RetrievalConfig:
        """Parse JSON or YAML text (YAML is a superset of JSON)."""
        return cls.from_dict(_parse(text, where), where=where)

    @classmethod
    def load(cls, path: str | Path) -> RetrievalConfig:
        """Read a configuration file (.json, .yaml or .yml). A file exported from an experiment may hold the
        configuration under ``config``; that is read too."""
        data = _parse(_read(path), str(path))
        if isinstance(data, Mapping) and isinstance(data.get("config"), Mapping):
            data = data["config"]
        return cls.from_dict(data, where=str(path))


def parse_weights(text: str | None, order: Sequence[str], field: str = "weights") -> dict[str, float] | None:
    """``"dense=0.4, sparse=0.2"`` -> ``{"dense": 0.4, "sparse": 0.2}``; ``"0.4, 0.2"`` -> the same in ``order``.
    None for empty text. Raises ConfigError naming ``field``."""
    if not text or not text.strip():
        return None
    out: dict[str, float] = {}
    parts = [p.strip() for p in text.split(",") if p.strip()]
    for i, part in enumerate(parts):
        if "=" in part:
            name, value = (x.strip() for x in part.split("=", 1))
        else:
            if i >= len(order):
                raise ConfigError(field, f"{len(parts)} positional weights for {len(order)} modes "
                                         f"({', '.join(order)}); name them as mode=weight")
            name, value = order[i], part
        if name.lower() not in registry.REGISTRY:
            raise ConfigError(field, f"unknown mode {name[:40]!r}; the modes are {', '.join(registry.names())}")
        try:
            out[name.lower()] = float(value)
        except ValueError:
            raise ConfigError(field, f"{text[:80]!r} is not a list of mode=weight numbers") from None
    return out


def _read(path: str | Path, limit: int = 1 << 20) -> str:
    try:
        with open(path, "rb") as f:
            raw = f.read(limit + 1)
    except OSError as exc:
        raise ConfigError(str(path), f"cannot be read: {exc.strerror or exc}") from None
    if len(raw) > limit:
        raise ConfigError(str(path), f"is over {limit // 1024} KiB; a configuration file is small")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(str(path), "is not UTF-8 text") from None


def _parse(text: str, where: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(where + line, f"is not valid YAML or JSON: {getattr(exc, 'problem', None) or exc}") from None


def parse_modes(value: Any) -> tuple[str, ...]:
    """Mode names from a list or a "+"-joined string, in registry order; ``("hybrid",)`` alone. Raises ConfigError."""
    if isinstance(value, str):
        value = [v for v in value.replace(",", "+").split("+")]
    if not isinstance(value, (list, tuple)):
        raise ConfigError("modes", f"must be a list of mode names, not {type(value).__name__}")
    names = [str(v).strip().lower() for v in value if str(v).strip()]
    if not names:
        raise ConfigError("modes", "name at least one mode")
    if HYBRID in names:
        if len(names) > 1:
            raise ConfigError("modes", "'hybrid' stands for the model's own modes: use it alone, or name the modes")
        return (HYBRID,)
    for name in names:
        registry.get(name)  # raises ConfigError for an unknown mode
    order = registry.names()
    return tuple(sorted(dict.fromkeys(names), key=order.index))


def _weight_pairs(value: Any) -> tuple[tuple[str, float], ...]:
    if value is None:
        return ()
    pairs: Sequence = value.items() if isinstance(value, Mapping) else value
    out = {}
    try:
        for mode, weight in pairs:
            if str(mode) not in registry.REGISTRY:
                raise ConfigError("weights", f"unknown mode {str(mode)!r}; the modes are {', '.join(registry.names())}")
            out[str(mode)] = float(weight)
    except (TypeError, ValueError):
        raise ConfigError("weights", "must map mode names to numbers, e.g. {dense: 0.7, bm25: 0.3}") from None
    bad = [m for m, w in out.items() if not w >= 0]
    if bad:
        raise ConfigError("weights", f"must be at least 0 (and a number); check {', '.join(bad)}")
    return tuple(sorted(out.items(), key=lambda kv: registry.names().index(kv[0])))


def _int(name: str, value: Any, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool):
        raise ConfigError(name, f"must be a whole number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(name, f"must be a whole number, not {str(value)[:40]!r}") from None
    if number != int(number):
        raise ConfigError(name, f"must be a whole number, not {value!r}")
    return int(number)
