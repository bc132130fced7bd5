"""How two embedding spaces of the same chunks compare: neighbourhood overlap and document separation."""
from __future__ import annotations

import numpy as np

DEFAULT_K = 10


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def neighbours(vectors: np.ndarray, k: int = DEFAULT_K, block: int = 2048) -> np.ndarray:
    """(n, dim) vectors -> (n, k) row numbers of each row's k nearest others by cosine (itself excluded).

    Ties are broken by row number (stable sort), so the result is deterministic."""
    unit = _unit(vectors)
    n = len(unit)
    if not 1 <= k < n:
        raise ValueError(f"k: must be between 1 and n - 1 = {n - 1}; got {k}")
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, block):
        sims = unit[start:start + block] @ unit.T
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf
        out[start:start + block] = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return out


def knn_overlap(a: np.ndarray, b: np.ndarray, k: int = DEFAULT_K) -> float:
    """Mean over chunks of |N_k(A) ∩ N_k(B)| / k: 1 when both spaces give every chunk the same k neighbours.

    ``a`` (n, dim_a) and ``b`` (n, dim_b): the same n chunks embedded by two models."""
    if len(a) != len(b):
        raise ValueError(f"b: {len(b)} vectors, but a has {len(a)}: both spaces must embed the same chunks")
    na, nb = neighbours(a, k), neighbours(b, k)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(na, nb)]))


def document_silhouette(vectors: np.ndarray, documents: np.ndarray) -> float | None:
    """Silhouette of the document labels under cosine distance (-1..1, higher: documents separate better).

    None when it is undefined: fewer than 2 documents, or every chunk its own document."""
    from sklearn.metrics import silhouette_score

    documents = np.asarray(documents)
    count = len(np.unique(documents))
    if not 2 <= count <= len(documents) - 1:
        return None
    return float(silhouette_score(np.asarray(vectors, dtype=np.float64), documents, metric="cosine"))
