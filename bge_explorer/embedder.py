"""Embedders: a FlagEmbedding model wrapped with its identity, device, precision and a lock.

One class per backend behind :func:`bge_explorer.models.load_embedder`:
:class:`FlagEmbedder` (``FlagModel``, CLS or mean pooling) and :class:`M3Embedder`
(``BGEM3FlagModel``, dense vectors). Both return L2-normalised float32 arrays of shape (n, dim).
"""
from __future__ import annotations

import abc
import threading
from typing import Callable, Sequence

import numpy as np

from .catalog import ModelSpec
from .devices import autocast

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` while a corpus is embedded."""

BLOCK = 512  # texts per progress step; each block is sorted by length inside FlagEmbedding


class Embedder(abc.ABC):
    """A loaded embedding model. Safe to share between threads (calls are serialised)."""

    def __init__(self, spec: ModelSpec, model, identity: str, device: str, precision: str, batch_size: int):
        self.spec, self.model, self.identity = spec, model, identity
        self.device, self.precision, self.batch_size = device, precision, batch_size
        self.tokenizer = model.tokenizer
        self.dim = spec.dim or int(model.model.config.hidden_size)
        self.corpus_texts_encoded = 0  # how many passages this model has embedded, for "no work twice" checks
        self._lock = threading.Lock()

    @property
    def cache_key(self) -> tuple:
        """What embeddings depend on besides the text: model identity, pooling, max length, precision."""
        return (self.identity, self.spec.pooling, self.spec.max_length, self.precision)

    @abc.abstractmethod
    def _encode(self, texts: list[str]) -> np.ndarray:
        """(n,) texts -> (n, dim) float32 unit vectors, in order."""

    def encode_corpus(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """Embed passages (no instruction). (n,) texts -> (n, dim) float32, unit norm."""
        texts = list(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths share a block
        for start in range(0, len(texts), BLOCK):
            idx = order[start:start + BLOCK]
            out[idx] = self._encode([texts[i] for i in idx])
            self.corpus_texts_encoded += len(idx)
            if progress:
                progress(min(start + BLOCK, len(texts)), len(texts))
        return out

    def encode_queries(self, queries: Sequence[str], instruction: str = "") -> np.ndarray:
        """Embed queries, each prefixed with ``instruction`` (exact string). (n,) -> (n, dim)."""
        return self._encode([instruction + q for q in queries])

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text under this model's tokenizer, special tokens excluded."""
        with self._lock:
            ids = self.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
        return [len(x) for x in ids]


class FlagEmbedder(Embedder):
    """``FlagModel``: BGE v1.5 and any BERT-like encoder with CLS or mean pooling."""

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        with self._lock, autocast(self.precision, self.device):
            vectors = self.model.encode(texts, batch_size=self.batch_size, max_length=self.spec.max_length)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)


class M3Embedder(Embedder):
    """``BGEM3FlagModel``: bge-m3's dense vectors."""

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        with self._lock, autocast(self.precision, self.device):
            out = self.model.encode(texts, batch_size=self.batch_size, max_length=self.spec.max_length,
                                    return_dense=True, return_sparse=False, return_colbert_vecs=False)
        return np.asarray(out["dense_vecs"], dtype=np.float32).reshape(len(texts), -1)
