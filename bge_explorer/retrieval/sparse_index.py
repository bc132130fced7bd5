"""Sparse retrieval over BGE-M3 lexical weights: an inverted index held as scipy CSR matrices.

M3 gives each text a weight per token id (``{token id: weight}``, the max over the token's
occurrences). Its lexical matching score of a query q and a passage p is
``sum over tokens t in both of w_q(t) * w_p(t)`` (``BGEM3FlagModel.compute_lexical_matching_score``),
i.e. the dot product of two sparse vectors over the vocabulary. Here all passages are one CSR
matrix ``chunks x vocab``; its transpose (``vocab x chunks``, one posting list per token) answers a
query by reading only the posting lists of the query's tokens.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import scipy.sparse as sp

LexicalWeights = Mapping[str, float] | Mapping[int, float]
"""One text's lexical weights, ``{token id: weight}``; ids as str (FlagEmbedding) or int."""


def as_arrays(weights: LexicalWeights) -> tuple[np.ndarray, np.ndarray]:
    """``{token id: weight}`` -> (ids int64 sorted, weights float32)."""
    if not weights:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    ids = np.fromiter((int(t) for t in weights), np.int64, len(weights))
    values = np.fromiter((float(w) for w in weights.values()), np.float32, len(weights))
    order = np.argsort(ids)
    return ids[order], values[order]


def lexical_matrix(weights: Sequence[LexicalWeights], vocab_size: int) -> sp.csr_matrix:
    """Per-text lexical weights -> CSR (n_texts, vocab_size) float32. Ids outside the vocabulary are dropped."""
    pairs = [as_arrays(w) for w in weights]
    lengths = np.fromiter((len(ids) for ids, _ in pairs), np.int64, len(pairs))
    ids = np.concatenate([ids for ids, _ in pairs]) if pairs else np.empty(0, np.int64)
    values = np.concatenate([v for _, v in pairs]) if pairs else np.empty(0, np.float32)
    rows = np.repeat(np.arange(len(pairs)), lengths)
    keep = (ids >= 0) & (ids < vocab_size)
    matrix = sp.csr_matrix((values[keep], (rows[keep], ids[keep])), shape=(len(pairs), vocab_size), dtype=np.float32)
    matrix.sum_duplicates()
    return matrix


def _csr_bytes(matrix: sp.csr_matrix) -> int:
    return int(matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes)


class SparseIndex:
    """Lexical-weight index over n chunks. ``matrix``: CSR (n, vocab); ``postings``: its transpose as CSR.

    Scores are M3's lexical matching scores, computed in float32 as FlagEmbedding does.
    """

    def __init__(self, matrix: sp.csr_matrix):
        self.matrix = sp.csr_matrix(matrix, dtype=np.float32)
        self.postings = self.matrix.T.tocsr()  # vocab x chunks: row t = the chunks holding token t
        self.postings.sort_indices()

    @classmethod
    def from_weights(cls, weights: Sequence[LexicalWeights], vocab_size: int) -> SparseIndex:
        return cls(lexical_matrix(weights, vocab_size))

    def __len__(self) -> int:
        return self.matrix.shape[0]

    @property
    def vocab_size(self) -> int:
        return self.matrix.shape[1]

    @property
    def nbytes(self) -> int:
        """Memory of both CSR matrices (chunk-major and the posting lists)."""
        return _csr_bytes(self.matrix) + _csr_bytes(self.postings)

    def _query(self, query: LexicalWeights) -> tuple[np.ndarray, np.ndarray]:
        ids, values = as_arrays(query)
        keep = ids < self.vocab_size
        return ids[keep], values[keep]

    def scores(self, query: LexicalWeights) -> np.ndarray:
        """(n,) float32: the lexical matching score of ``query`` with every chunk (0 where no token is shared)."""
        ids, values = self._query(query)
        if len(ids) == 0:
            return np.zeros(len(self), np.float32)
        return np.asarray(self.postings[ids].T @ values, dtype=np.float32).ravel()

    def scores_many(self, queries: Sequence[LexicalWeights]) -> np.ndarray:
        """(m, n) float32 for m queries at once (one sparse product)."""
        q = lexical_matrix(queries, self.vocab_size)
        return np.asarray((q @ self.postings).toarray(), dtype=np.float32)

    def score_rows(self, query: LexicalWeights, rows: np.ndarray) -> np.ndarray:
        """Scores of ``query`` with the given chunk rows only: (len(rows),) float32."""
        ids, values = self._query(query)
        q = np.zeros(self.vocab_size, np.float32)
        q[ids] = values
        return np.asarray(self.matrix[np.asarray(rows, dtype=np.int64)] @ q, dtype=np.float32).ravel()

    def search(self, query: LexicalWeights, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` chunks: scores (k',) float32 and rows (k',) int64, best first; only chunks sharing a
        token with the query (score > 0) are returned, so k' <= k. Ties keep row order."""
        return top_k(self.scores(query), k)

    def row_weights(self, row: int) -> dict[int, float]:
        """One chunk's lexical weights ``{token id: weight}``."""
        start, end = self.matrix.indptr[row], self.matrix.indptr[row + 1]
        return dict(zip(self.matrix.indices[start:end].tolist(), self.matrix.data[start:end].tolist()))


def top_k(scores: np.ndarray, k: int, positive_only: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of a score vector, best first (ties: lower row first): (scores, rows int64)."""
    candidates = np.flatnonzero(scores > 0) if positive_only else np.arange(len(scores))
    k = min(int(k), len(candidates))
    if k < 1:
        return np.empty(0, scores.dtype), np.empty(0, np.int64)
    values = scores[candidates]
    if k < len(candidates):
        part = np.argpartition(-values, k - 1)[:k]
        threshold = values[part].min()
        # take every candidate tied at the threshold so the stable sort below decides ties by row
        part = np.flatnonzero(values >= threshold)
        candidates, values = candidates[part], values[part]
    order = np.lexsort((candidates, -values))[:k]
    return values[order], candidates[order].astype(np.int64)
