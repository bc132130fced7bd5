"""Cross-encoder scores remembered per (reranker, query, passage), so changing top n, k, modes or the
instruction never scores a pair twice; a top-n sweep costs the deepest setting only."""
from __future__ import annotations

import threading
from typing import Callable, Sequence

import numpy as np

from bge_explorer.models.rerankers import Reranker
from bge_explorer.pickling import ProcessLocal
from bge_explorer.retrieval.embedding_cache import digest


class RerankCache(ProcessLocal):
    """``{(reranker cache key: identity, max length, backend, precision; query): {passage digest: logit}}`` for one
    session."""

    def __init__(self) -> None:
        self._store: dict[tuple, dict[bytes, float]] = {}
        self._lock = threading.Lock()
        self.pairs_scored = 0  # pairs sent to a cross-encoder, for "no work twice" checks


    def unscored(self, reranker: Reranker, query: str, passages: Sequence[str]) -> int:
        """How many distinct (query, passage) pairs of ``passages`` the cross-encoder has not scored yet."""
        with self._lock:
            store = self._store.get(self._key(reranker, query), {})
            return len({d for d in map(digest, passages) if d not in store})

    @staticmethod
    def _key(reranker: Reranker, query: str) -> tuple:
        return (*reranker.cache_key, query)

    def logits(self, reranker: Reranker, query: str, passages: Sequence[str],
               progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """(n,) raw logits of (query, passage) pairs, scoring only pairs not seen before."""
        key = self._key(reranker, query)
        digests = [digest(p) for p in passages]
        with self._lock:
            store = self._store.setdefault(key, {})
            missing = list(dict.fromkeys(d for d in digests if d not in store))
        if missing:
            text_of = dict(zip(digests, passages))
            got = reranker.score(query, [text_of[d] for d in missing], progress)
            with self._lock:
                store.update(zip(missing, got.tolist()))
                self.pairs_scored += len(missing)
        elif progress:
            progress(len(passages), len(passages))
        return np.array([store[d] for d in digests], dtype=np.float64)
