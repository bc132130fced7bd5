"""FAISS in this process: exact inner product (``faiss-flat``), HNSW (``faiss-hnsw``) and IVF-PQ (``faiss-ivfpq``).

The approximate ones choose their parameters from the corpus size and dim (:func:`hnsw_params`,
:func:`ivfpq_params`; IVF4096,PQ128 for 10M x 1024) and are trained on a sample; :func:`bge_explorer.indexes.build`
measures their recall@10 against exact search. Ids and payloads are kept beside the FAISS index (row i of
the index = ``ids[i]``).
"""
from __future__ import annotations

import abc
import math

import faiss
import numpy as np
import pandas as pd

from bge_explorer.errors import ConfigError
from bge_explorer.indexes.base import ModelIdentity, VectorIndex, register

faiss.cvar.distance_compute_blas_threshold = 20  # batched queries use BLAS (3x faster for 100 queries)
TRAIN_PER_CENTROID = 39  # FAISS's own minimum of training points per centroid
MIN_TRAIN = 16 * TRAIN_PER_CENTROID  # 4-bit codebooks, the smallest IVF-PQ trains
MAX_TRAIN = 256 * 1024  # training sample cap (k-means cost grows with it, quality barely past this)


class FaissIndex(VectorIndex):
    """Common part: a FAISS index over rows, our int64 ids per row and an optional payload table."""

    def __init__(self, dim: int, identity: ModelIdentity | None = None, read_only: bool = False):
        super().__init__(dim, identity, read_only)
        self._index = self._make()
        self._ids = np.empty(0, np.int64)
        self._payload: pd.DataFrame | None = None
        self.report.update(self.params())

    @abc.abstractmethod
    def _make(self) -> faiss.Index:
        """The empty FAISS index of this backend (flat, HNSW, IVF-PQ), for ``self.dim``."""

    def params(self) -> dict:
        """The parameters chosen (reported at build time)."""
        return {}

    def count(self) -> int:
        return int(self._index.ntotal)

    def _add(self, vectors, ids, payload):
        if not self._index.is_trained:
            self.train(vectors)
        self._index.add(vectors)
        self._ids = np.concatenate([self._ids, ids])
        if payload is not None:
            payload = payload.assign(id=ids)
            self._payload = payload if self._payload is None else pd.concat([self._payload, payload], ignore_index=True)

    def _search(self, queries, k):
        scores, rows = self._index.search(queries, k)
        return scores, np.where(rows >= 0, self._ids[np.maximum(rows, 0)], -1)

    def _fetch(self, ids):
        if self._payload is None:
            return pd.DataFrame({"id": ids[np.isin(ids, self._ids)]})
        table = self._payload.set_index("id")
        return table.loc[[i for i in ids.tolist() if i in table.index]].reset_index()

    def ids(self) -> np.ndarray:
        return self._ids.copy()

    def vectors(self, ids):
        ids = np.asarray(ids, np.int64)
        order = np.argsort(self._ids, kind="stable")
        at = np.searchsorted(self._ids, ids, sorter=order)
        found = at < len(order)
        rows = order[np.minimum(at, len(order) - 1)] if len(order) else at
        if len(ids) and not (found.all() and (self._ids[rows] == ids).all()):
            unknown = ids[~found | (self._ids[rows] != ids)]
            raise ConfigError("index", f"ids not in the {self.name} index: {unknown[:5].tolist()}")
        return self._index.reconstruct_batch(rows.astype(np.int64)) if len(ids) else np.empty((0, self.dim), np.float32)

    def nbytes(self) -> int:
        return int(faiss.serialize_index(self._index).nbytes) + self._ids.nbytes if self.count() else 0


@register
class FlatIndex(FaissIndex):
    """Exact inner product (cosine on unit vectors), on GPU when faiss has one. (n, dim) x 4 bytes."""

    name, exact = "faiss-flat", True

    def __init__(self, dim: int, identity: ModelIdentity | None = None, read_only: bool = False,
                 use_gpu: bool | None = None):
        """``use_gpu`` None: on GPU 0 when faiss has one."""
        self.on_gpu = faiss.get_num_gpus() > 0 if use_gpu is None else use_gpu
        super().__init__(dim, identity, read_only)

    def _make(self):
        index = faiss.IndexFlatIP(self.dim)
        if self.on_gpu:
            index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
        return index

    def nbytes(self) -> int:
        return self.count() * self.dim * 4 + self._ids.nbytes


def hnsw_params(n: int) -> dict:
    """HNSW links per node M, construction depth and search depth for n vectors (more links for larger graphs)."""
    m = 16 if n < 1_000_000 else 32
    return {"M": m, "efConstruction": 80 if n < 1_000_000 else 200, "efSearch": 64 if n < 1_000_000 else 128}


@register
class HNSWIndex(FaissIndex):
    """FAISS HNSW graph over flat vectors: no training, (n, dim) x 4 + n x M x 8 bytes."""

    name, sized = "faiss-hnsw", True

    def __init__(self, dim: int, identity: ModelIdentity | None = None, read_only: bool = False,
                 expected: int = 100_000, **params):
        self._params = {**hnsw_params(expected), **params}
        super().__init__(dim, identity, read_only)

    def params(self) -> dict:
        return {"params": dict(self._params)}

    def _make(self):
        index = faiss.IndexHNSWFlat(self.dim, self._params["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self._params["efConstruction"]
        index.hnsw.efSearch = self._params["efSearch"]
        return index


def ivfpq_params(n: int, dim: int) -> dict:
    """IVF lists (a power of two near sqrt(n), at most n / 39 so each list trains), PQ sub-quantisers m (the largest
    divisor of dim up to dim / 8: 8 dims per byte), bits per code (8, fewer when n cannot train 256 centroids),
    lists probed (a sixteenth, 4 to 64). 10M x 1024 -> IVF4096, PQ128x8, nprobe 64."""
    nlist = 2 ** max(2, round(math.log2(math.sqrt(max(n, 1)))))
    nlist = max(4, min(nlist, 2 ** int(math.log2(max(4, n // TRAIN_PER_CENTROID)))))
    m = max(d for d in range(1, max(1, dim // 8) + 1) if dim % d == 0)
    nbits = max(4, min(8, int(math.log2(max(16, n // TRAIN_PER_CENTROID)))))
    return {"nlist": nlist, "m": m, "nbits": nbits, "nprobe": min(nlist, max(4, min(64, nlist // 16)))}


@register
class IVFPQIndex(FaissIndex):
    """FAISS IVF-PQ: coarse k-means lists, product-quantised codes (m bytes per vector at 8 bits), trained on a
    sample of at most MAX_TRAIN vectors."""

    name, sized = "faiss-ivfpq", True

    def __init__(self, dim: int, identity: ModelIdentity | None = None, read_only: bool = False,
                 expected: int = 100_000, **params):
        self._params = {**ivfpq_params(expected, dim), **params}
        super().__init__(dim, identity, read_only)

    def params(self) -> dict:
        return {"params": dict(self._params)}

    def _make(self):
        p = self._params
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(self.dim), self.dim, p["nlist"], p["m"], p["nbits"],
                                 faiss.METRIC_INNER_PRODUCT)
        index.nprobe = p["nprobe"]
        return index

    def train(self, sample: np.ndarray) -> None:
        """Train on (s, dim) vectors; ConfigError("index") below MIN_TRAIN (PQ codebooks cannot be fitted)."""
        sample = np.ascontiguousarray(sample, np.float32)
        if len(sample) < MIN_TRAIN:
            raise ConfigError("index", f"IVF-PQ needs at least {MIN_TRAIN} vectors to train its {2 ** 4}-centroid "
                                       f"codebooks, got {len(sample)}; at this size exact faiss-flat is the index")
        if len(sample) > MAX_TRAIN:
            sample = sample[np.random.default_rng(0).choice(len(sample), MAX_TRAIN, replace=False)]
        self._index.train(sample)
        self.report["trained_on"] = len(sample)
