"""What one (corpus, embedding model, chunking) has built: the chunks and each mode's index part.

Parts are built the first time a plan needs them, through the session's encoding cache, and kept while
the state lives; changing the instruction, modes, fusion, weights, reranker, k or top n reuses all of
them, so a search then encodes only the query. The owning :class:`~bge_explorer.session.Session` keeps a
few recent states; a new state for the same model can reuse rows of an older one's parts (ColBERT).
"""
from __future__ import annotations

import threading
from typing import Callable, Iterable

import numpy as np

from bge_explorer.data.chunking import Chunks
from bge_explorer.errors import ExplorerError
from bge_explorer.models.embedders import Embedder, Progress
from bge_explorer.retrieval import modes as registry
from bge_explorer.retrieval.bm25_index import BM25Settings
from bge_explorer.pickling import ProcessLocal
from bge_explorer.retrieval.embedding_cache import EmbeddingCache
from bge_explorer.settings import Limits


def _no_states() -> list:
    return []


class IndexState(ProcessLocal):
    """Chunks of one corpus under one model (``embedder`` None: BM25 only) and the parts built over them."""

    def __init__(self, chunks: Chunks, embedder: Embedder | None, cache: EmbeddingCache, *,
                 chunk_size: int | None = None, overlap: int = 0, bm25_settings: BM25Settings | None = None,
                 colbert_dtype: str = "float16", index: str = "faiss-flat",
                 previous: Callable[[], Iterable[IndexState]] | None = None, key: tuple = (),
                 limits: Limits | None = None) -> None:
        self.chunks, self.embedder, self.cache, self.key = chunks, embedder, cache, key
        self.chunk_size, self.overlap = chunk_size, overlap
        self.bm25_settings = bm25_settings or BM25Settings()
        self.colbert_dtype = colbert_dtype
        self.index = index  # the dense part's index backend (bge_explorer.indexes)
        self._previous = previous or _no_states
        self._parts: dict[str, registry.Part] = {}
        self._lock = threading.Lock()
        self._passages: list[str] | None = None
        self._estimates: dict[str, int] = {}
        self.limits = limits


    @property
    def passages(self) -> list[str]:
        """(n,) the text each chunk row is encoded from (title + text)."""
        if self._passages is None:
            self._passages = self.chunks.passages()
        return self._passages

    @property
    def produces(self) -> frozenset[str]:
        """What the embedder produces (dense, lexical, multivector); empty without one."""
        return self.embedder.produces if self.embedder is not None else frozenset()

    @property
    def model_name(self) -> str:
        return self.embedder.spec.name if self.embedder is not None else "BM25 only"

    def available_modes(self) -> list[str]:
        return [name for name, mode in registry.REGISTRY.items() if mode.unavailable(self) is None]

    def has(self, mode: str) -> bool:
        return mode in self._parts

    def part(self, mode: str, progress: Progress | None = None) -> registry.Part:
        """The mode's part, built on first use. Raises ExplorerError when this state cannot serve the mode."""
        with self._lock:
            if mode in self._parts:
                return self._parts[mode]
            spec = registry.get(mode)
            reason = spec.unavailable(self)
            if reason:
                raise ExplorerError(reason)
            if self.limits is not None:
                self.limits.check_memory(self.estimate_bytes(mode) + sum(self.memory().values()),
                                         f"the {spec.label} index of {len(self.chunks):,} chunks")
            part = spec.build(self, progress)
            self._parts[mode] = part
            return part

    def drop(self, mode: str) -> None:
        """Free a built part (e.g. ColBERT's token store)."""
        with self._lock:
            self._parts.pop(mode, None)

    def reusable_parts(self, mode: str) -> list[registry.Part]:
        """Built parts of ``mode`` in the session's other recent states, for a build to copy rows from."""
        return [s._parts[mode] for s in self._previous() if s is not self and mode in s._parts]

    def memory(self) -> dict[str, int]:
        """Bytes held per built part."""
        return {name: part.nbytes for name, part in self._parts.items()}

    def estimate_bytes(self, mode: str) -> int:
        """The mode's memory estimate for these chunks (computed once: it may take a tokenizer pass)."""
        if mode not in self._estimates:
            self._estimates[mode] = registry.get(mode).estimate_bytes(self)
        return self._estimates[mode]

    @property
    def vectors(self) -> np.ndarray | None:
        """(n, dim) dense chunk vectors when the dense part is built (the map projects these)."""
        part = self._parts.get("dense")
        return getattr(part, "vectors", None)
