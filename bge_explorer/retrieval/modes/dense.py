"""Dense retrieval: exact FAISS inner product over the model's L2-normalised chunk vectors (= cosine)."""
from __future__ import annotations

import numpy as np

from bge_explorer.models.embedders import DENSE
from bge_explorer.pickling import ProcessLocal
from bge_explorer.retrieval.dense_index import DenseIndex
from bge_explorer.retrieval.modes.base import FIRST_STAGE, FirstStagePart, Mode, QueryInput, register


class DensePart(ProcessLocal, FirstStagePart):
    _process_local = {"index": lambda self: DenseIndex(self.vectors)}

    def __init__(self, vectors: np.ndarray):
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.index = DenseIndex(self.vectors)
        self.nbytes = int(self.vectors.nbytes)


    def score(self, query: QueryInput, rows: np.ndarray) -> np.ndarray:
        return (self.vectors[rows] @ np.asarray(query.encoded[DENSE], np.float32)).astype(np.float32)

    def search_many(self, queries, k):
        if not queries:
            return []
        _, rows = self.index.search(np.stack([q.encoded[DENSE] for q in queries]), k)
        return [r[r >= 0] for r in rows]


class Dense(Mode):
    name, label, needs, role, m3_weight = "dense", "dense", DENSE, FIRST_STAGE, 0.4
    description = "one vector per chunk, cosine similarity (FAISS, exact)"

    def build(self, state, progress=None):
        return DensePart(state.cache.embed(state.embedder, state.passages, progress))

    def estimate_bytes(self, state):
        return len(state.chunks) * state.embedder.dim * 4 if state.embedder is not None else 0


register(Dense())
