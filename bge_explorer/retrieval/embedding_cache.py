"""Corpus embeddings remembered per (model identity, pooling, max length, precision, passage text).

Changing the query instruction, reranker or k never touches this cache's contents; re-chunking
embeds only the chunks whose text is new. Kept per session by default: a cache shared across
visitors would let one learn from timing that another uploaded the same text.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from bge_explorer.models.embedders import Embedder, Progress


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class EmbeddingCache:
    """Maps each embedder's ``cache_key`` to {passage digest: vector}. Vectors of two models never mix."""

    def __init__(self) -> None:
        self._store: dict[tuple, dict[bytes, np.ndarray]] = {}

    def embed(self, embedder: Embedder, passages: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """(n,) passages -> (n, dim) float32, encoding only the passages not seen before with this model."""
        store = self._store.setdefault(embedder.cache_key, {})
        digests = [_digest(p) for p in passages]
        missing = list(dict.fromkeys(d for d in digests if d not in store))
        if missing:
            text_of = dict(zip(digests, passages))
            vectors = embedder.encode_corpus([text_of[d] for d in missing], progress=progress)
            store.update(zip(missing, vectors))
        elif progress:
            progress(len(passages), len(passages))
        if not passages:
            return np.empty((0, embedder.dim), np.float32)
        return np.stack([store[d] for d in digests])

    def add(self, embedder: Embedder, passages: Sequence[str], vectors: np.ndarray) -> None:
        """Remember vectors computed elsewhere for ``passages`` (e.g. M3's dense vectors from a sparse pass)."""
        store = self._store.setdefault(embedder.cache_key, {})
        for passage, vector in zip(passages, np.asarray(vectors, dtype=np.float32)):
            store.setdefault(_digest(passage), vector)

    def models(self) -> list[tuple]:
        """Cache keys of the models with stored embeddings."""
        return list(self._store)
