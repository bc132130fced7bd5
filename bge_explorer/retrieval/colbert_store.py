"""ColBERT late interaction over BGE-M3 multi-vectors, used to rescore a candidate set.

M3 gives each text one unit vector per token after CLS. The score of a query q (tokens i) and a
passage p (tokens j) is MaxSim averaged over the query tokens:
``colbert(q, p) = (1 / |q|) * sum_i max_j <q_i, p_j>`` (``BGEM3FlagModel.colbert_score``).

Token vectors are large (bge-m3: 1,024 floats per token), so a :class:`ColbertStore` is built only
when the user turns ColBERT on, keeps every chunk's tokens in one contiguous array (float16 by
default: half the memory, scores within ~1e-3 of float32), and scores only the rows asked for.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def colbert_score(query: np.ndarray, passage: np.ndarray) -> float:
    """MaxSim of one query (nq, d) and one passage (np, d): the mean over query tokens of the best dot product."""
    sims = np.asarray(query, np.float32) @ np.asarray(passage, np.float32).T
    return float(sims.max(axis=1).sum() / len(query))


def estimate_bytes(n_tokens: int, dim: int, dtype: str | np.dtype = "float16") -> int:
    """Memory of ``n_tokens`` token vectors of ``dim`` floats (plus offsets), before building a store."""
    return int(n_tokens) * int(dim) * np.dtype(dtype).itemsize


class ColbertStore:
    """Every chunk's token vectors, concatenated: ``vectors`` (total tokens, dim) and ``offsets`` (n + 1,),
    chunk r owning rows ``offsets[r]:offsets[r + 1]``."""

    def __init__(self, per_chunk: Sequence[np.ndarray], dtype: str | np.dtype = "float16"):
        self.dtype = np.dtype(dtype)
        lengths = np.fromiter((len(v) for v in per_chunk), np.int64, len(per_chunk))
        if np.any(lengths == 0):
            raise ValueError("every chunk needs at least one token vector")
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        dim = per_chunk[0].shape[1] if len(per_chunk) else 0
        self.vectors = np.empty((int(self.offsets[-1]), dim), self.dtype)
        for r, v in enumerate(per_chunk):  # building only; scoring below has no per-chunk loop
            self.vectors[self.offsets[r]:self.offsets[r + 1]] = v

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    @property
    def n_tokens(self) -> int:
        return int(self.offsets[-1])

    @property
    def nbytes(self) -> int:
        return int(self.vectors.nbytes + self.offsets.nbytes)

    def bytes_per_1k_chunks(self) -> float:
        return self.nbytes / max(len(self), 1) * 1000

    def chunk(self, row: int) -> np.ndarray:
        """One chunk's token vectors, float32 (n_tokens, dim)."""
        return self.vectors[self.offsets[row]:self.offsets[row + 1]].astype(np.float32)

    def scores(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """MaxSim scores of ``query`` (nq, dim) with the chunks ``rows``: (len(rows),) float32.

        One gather of the candidates' token rows, one matmul, one segmented max (``np.maximum.reduceat``).
        """
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return np.empty(0, np.float32)
        query = np.asarray(query, np.float32)
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        lengths = ends - starts
        seg = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # where each candidate starts in the gather
        token_rows = np.arange(int(lengths.sum())) + np.repeat(starts - seg, lengths)
        sims = query @ self.vectors[token_rows].astype(np.float32).T  # (nq, candidate tokens)
        best = np.maximum.reduceat(sims, seg, axis=1)  # (nq, len(rows))
        return (best.sum(axis=0) / len(query)).astype(np.float32)

    def alignment(self, query: np.ndarray, row: int) -> np.ndarray:
        """(nq, n_chunk_tokens) float32 similarities of every query token with every token of one chunk."""
        return np.asarray(query, np.float32) @ self.chunk(row).T
