"""Base classes and the registry of retrieval modes (see :mod:`bge_explorer.retrieval.modes`)."""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable, Literal, Mapping, Protocol, Sequence

import numpy as np

FIRST_STAGE, RESCORER = "first_stage", "rescorer"
Role = Literal["first_stage", "rescorer"]
Progress = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True)
class QueryInput:
    """One query as the modes see it: ``text`` as typed (no instruction) and ``encoded[output]``, the model's
    encoding of instruction + text for each output the plan needs (a (dim,) vector for ``dense``)."""

    text: str
    encoded: Mapping[str, Any]


class IndexState(Protocol):
    """What a mode reads from an index state (:class:`bge_explorer.retrieval.state.IndexState`)."""

    chunks: Any  # Chunks: the chunk table
    embedder: Any  # Embedder | None
    cache: Any  # EmbeddingCache: the session's passage encodings
    colbert_dtype: str
    bm25_settings: Any
    index: str  # the dense index backend (bge_explorer.indexes)

    @property
    def passages(self) -> list[str]: ...

    @property
    def produces(self) -> frozenset[str]: ...

    def reusable_parts(self, mode: str) -> list[Part]: ...


class Part(abc.ABC):
    """A mode's index over one chunk table (row i = chunk i)."""

    nbytes: int = 0

    @abc.abstractmethod
    def score(self, query: QueryInput, rows: np.ndarray) -> np.ndarray:
        """(len(rows),) float scores of ``query`` with the given chunk rows."""


class FirstStagePart(Part):
    """A part that also finds candidates in the whole corpus (a first-stage mode's part)."""

    @abc.abstractmethod
    def search_many(self, queries: Sequence[QueryInput], k: int) -> list[np.ndarray]:
        """Per query, the rows (k',) int64 of its top ``k`` chunks, best first (k' <= k)."""


class Mode(abc.ABC):
    """A retrieval mode (see the module docstring). Subclasses set the class attributes and :meth:`build`."""

    name: str
    label: str
    needs: str | None = None  # the embedder output its scores come from; None: the query text only
    role: Role = FIRST_STAGE
    m3_weight: float | None = None  # its default weight in M3's weighted sum; None: not an M3 score
    in_hybrid: bool = True  # part of "hybrid" (the model's own modes) without being named
    candidates_from: tuple[str, ...] = ()  # rescorers: the first stages whose hits it rescores
    requires: str | None = None  # the models that can serve it, for people (default: "a model that produces ...")
    description: str = ""

    @abc.abstractmethod
    def build(self, state: IndexState, progress: Progress | None = None) -> Part:
        """Build this mode's part over ``state``'s chunks (encoding through the session's caches)."""

    def estimate_bytes(self, state: IndexState) -> int:
        """Memory the part would take, before building it."""
        return 0

    def unavailable(self, state: IndexState) -> str | None:
        """Why this mode cannot run on ``state`` (None when it can)."""
        if self.needs is None or self.needs in state.produces:
            return None
        model = state.embedder.spec.name if state.embedder is not None else "no embedding model (BM25 only)"
        needed = self.requires or f"a model that produces {self.needs} vectors"
        return f"{self.label} needs {needed}; the index was built with {model}"


REGISTRY: dict[str, Mode] = {}


def register(mode: Mode) -> Mode:
    """Add ``mode`` to the registry (replacing one of the same name); returns it."""
    REGISTRY[mode.name] = mode
    return mode


def unregister(name: str) -> None:
    REGISTRY.pop(name, None)


def get(name: str) -> Mode:
    from bge_explorer.errors import ConfigError

    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError("modes", f"unknown mode {name!r}; the modes are {', '.join(REGISTRY)}") from None


def names() -> list[str]:
    """Registered modes in registry order (the order of score columns and of fusion)."""
    return list(REGISTRY)

