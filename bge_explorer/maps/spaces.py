"""How two embedding spaces of the same chunks compare: neighbourhood overlap and document separation."""
from __future__ import annotations

import numpy as np

DEFAULT_K = 10
SAMPLE = 5_000  # past this many chunks, both numbers are computed over a fixed random sample of chunks
SEED = 0


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def sample_rows(n: int, size: int = SAMPLE) -> np.ndarray:
    """All rows when n <= size, else ``size`` rows drawn without replacement (seeded: the same every time)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(SEED).choice(n, size, replace=False))


def neighbours(vectors: np.ndarray, k: int = DEFAULT_K, rows: np.ndarray | None = None,
               block: int = 2048) -> np.ndarray:
    """(n, dim) vectors -> (len(rows), k) row numbers of the k nearest others of each of ``rows`` (default: all)
    by cosine, itself excluded. Ties are broken by row number (stable sort), so the result is deterministic."""
    unit = _unit(vectors)
    n = len(unit)
    if not 1 <= k < n:
        raise ValueError(f"k: must be between 1 and n - 1 = {n - 1}; got {k}")
    rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)
    out = np.empty((len(rows), k), dtype=np.int64)
    for start in range(0, len(rows), block):
        these = rows[start:start + block]
        sims = unit[these] @ unit.T
        sims[np.arange(len(these)), these] = -np.inf
        out[start:start + block] = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return out


def knn_overlap(a: np.ndarray, b: np.ndarray, k: int = DEFAULT_K, rows: np.ndarray | None = None) -> float:
    """Mean over chunks (``rows``, default all) of |N_k(A) ∩ N_k(B)| / k: 1 when both spaces give every chunk the
    same k neighbours among all n. ``a`` (n, dim_a) and ``b`` (n, dim_b): the same n chunks, two models."""
    if len(a) != len(b):
        raise ValueError(f"b: {len(b)} vectors, but a has {len(a)}: both spaces must embed the same chunks")
    na, nb = neighbours(a, k, rows), neighbours(b, k, rows)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(na, nb)]))


def document_silhouette(vectors: np.ndarray, documents: np.ndarray, rows: np.ndarray | None = None) -> float | None:
    """Silhouette of the document labels under cosine distance (-1..1, higher: documents separate better), over
    ``rows`` (default all). None when it is undefined: fewer than 2 documents, or every chunk its own document."""
    from sklearn.metrics import silhouette_score

    rows = np.arange(len(documents)) if rows is None else np.asarray(rows)
    documents = np.asarray(documents)[rows]
    count = len(np.unique(documents))
    if not 2 <= count <= len(documents) - 1:
        return None
    return float(silhouette_score(np.asarray(vectors, dtype=np.float64)[rows], documents, metric="cosine"))
