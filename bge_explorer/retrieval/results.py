"""One query's ranking, the results type every caller shares (CLI table, app tables, exports, evaluation).

A :class:`Ranking` holds chunk rows best first with the fused score, each mode's score and rank, and,
after reranking, the cross-encoder's logits for the first ``top_n`` rows. :attr:`Ranking.table` lays it
out as one DataFrame: RESULT_COLUMNS, then ``<mode>_score`` and ``<mode>_rank`` per mode in play.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd

from bge_explorer.data.chunking import Chunks
from bge_explorer.models.rerankers import sigmoid

RESULT_COLUMNS = ["rank", "chunk_id", "doc_id", "chunk", "title", "text", "page", "start", "end", "score",
                  "rerank_rank", "rerank_logit", "rerank_score", "movement"]


@dataclasses.dataclass(eq=False)
class Ranking:
    """``rows`` (k,) int64 chunk rows best first; ``score`` (k,) fused (or the one mode's) scores; ``scores`` and
    ``ranks``: ``{mode: (k,)}`` for every mode computed (ranks among the candidates, 1 = best; for a row in that
    mode's own top k this is its rank in the whole corpus). ``rerank_logits`` (n,) for ``rows[:n]`` when a
    reranker ran. ``plan`` is the :class:`~bge_explorer.retrieval.planner.Plan` that made it; ``query_vector`` the
    query's dense vector when the plan encoded one (the map places the query with it)."""

    query: str
    instruction: str
    chunks: Chunks
    rows: np.ndarray
    score: np.ndarray
    scores: dict[str, np.ndarray]
    ranks: dict[str, np.ndarray]
    plan: object = None
    reranker: str | None = None
    rerank_logits: np.ndarray | None = None
    query_vector: np.ndarray | None = None  # (dim,) the query's dense vector, when the plan encoded one

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(self.scores)

    def rerank_order(self) -> np.ndarray:
        """Positions 0..n-1 of the reranked rows in reranker order (ties keep retrieval order)."""
        if self.rerank_logits is None:
            return np.empty(0, np.int64)
        return np.argsort(-self.rerank_logits, kind="stable")

    def final_rows(self) -> np.ndarray:
        """What a user gets: the reranked top n in reranker order, then the rest in retrieval order."""
        n = 0 if self.rerank_logits is None else len(self.rerank_logits)
        return np.concatenate([self.rows[:n][self.rerank_order()], self.rows[n:]]).astype(np.int64)

    @functools.cached_property
    def table(self) -> pd.DataFrame:
        """RESULT_COLUMNS in retrieval order (``rank`` 1..k), then a score and rank column per mode computed.

        ``rerank_*`` and ``movement`` (retrieval rank minus reranker rank: positive moved up) are filled for
        the rows the reranker scored and missing for the rest."""
        k = len(self.rows)
        chunks = self.chunks.table.iloc[self.rows]
        table = pd.DataFrame({
            "rank": np.arange(1, k + 1),
            **{c: chunks[c].to_numpy() for c in ("chunk_id", "doc_id", "chunk", "title", "text")},
            "page": pd.array(chunks["page"].to_numpy(), dtype="Int64"),
            "start": chunks["start"].to_numpy(), "end": chunks["end"].to_numpy(),
            "score": np.asarray(self.score, np.float64),
            "rerank_rank": pd.array([pd.NA] * k, dtype="Int64"),
            "rerank_logit": np.full(k, np.nan), "rerank_score": np.full(k, np.nan),
            "movement": pd.array([pd.NA] * k, dtype="Int64"),
        })
        if self.rerank_logits is not None and len(self.rerank_logits):
            n = len(self.rerank_logits)
            ranks = np.empty(n, np.int64)
            ranks[self.rerank_order()] = np.arange(1, n + 1)
            table.loc[:n - 1, "rerank_rank"] = ranks
            table.loc[:n - 1, "rerank_logit"] = self.rerank_logits
            table.loc[:n - 1, "rerank_score"] = sigmoid(self.rerank_logits)
            table.loc[:n - 1, "movement"] = np.arange(1, n + 1) - ranks
        for mode in self.scores:
            table[f"{mode}_score"] = np.asarray(self.scores[mode], np.float64)
            table[f"{mode}_rank"] = self.ranks[mode]
        return table

    def reranked(self) -> pd.DataFrame:
        """The reranked rows in reranker order (empty without a reranker)."""
        return self.table.dropna(subset=["rerank_rank"]).sort_values("rerank_rank").reset_index(drop=True)
