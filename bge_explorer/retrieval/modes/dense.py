"""Dense retrieval: inner product over the model's L2-normalised chunk vectors (= cosine), searched by the index
backend the state names (:mod:`bge_explorer.indexes`: exact FAISS by default; scores are always exact)."""
from __future__ import annotations

import numpy as np

from bge_explorer import indexes
from bge_explorer.models.embedders import DENSE
from bge_explorer.pickling import ProcessLocal
from bge_explorer.retrieval.modes.base import FIRST_STAGE, FirstStagePart, Mode, QueryInput, register


class DensePart(ProcessLocal, FirstStagePart):
    _process_local = {"index": lambda self: indexes.build(self.backend, self.vectors)}

    def __init__(self, vectors: np.ndarray, backend: str = "faiss-flat"):
        """``vectors``: (n, dim) float32 unit rows; ``backend``: an :mod:`bge_explorer.indexes` name."""
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.backend = backend
        self.index = indexes.build(backend, self.vectors)
        self.report = self.index.report  # parameters, build seconds, measured recall@10 of an approximate backend
        self.nbytes = int(self.vectors.nbytes) + self.index.nbytes()


    def score(self, query: QueryInput, rows: np.ndarray) -> np.ndarray:
        return (self.vectors[rows] @ np.asarray(query.encoded[DENSE], np.float32)).astype(np.float32)

    def search_many(self, queries, k):
        if not queries:
            return []
        _, rows = self.index.search(np.stack([q.encoded[DENSE] for q in queries]), k)  # ids = rows
        return [r[r >= 0] for r in rows]


class Dense(Mode):
    name, label, needs, role, m3_weight = "dense", "dense", DENSE, FIRST_STAGE, 0.4
    description = "one vector per chunk, cosine similarity (FAISS exact, or the configured index)"

    def build(self, state, progress=None):
        return DensePart(state.cache.embed(state.embedder, state.passages, progress), state.index)

    def estimate_bytes(self, state):
        return len(state.chunks) * state.embedder.dim * 4 if state.embedder is not None else 0


register(Dense())
