"""Search and rerank: a query -> one results table with retrieval and reranker ranks side by side."""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import pandas as pd

from bge_explorer.data.chunking import Chunks
from bge_explorer.models.embedders import Embedder
from bge_explorer.retrieval.dense_index import DenseIndex
from bge_explorer.models.rerankers import Reranker, sigmoid

DEFAULT_K = 100
DEFAULT_TOP_N = 20
RESULT_COLUMNS = ["rank", "chunk_id", "doc_id", "chunk", "title", "text", "score",
                  "rerank_rank", "rerank_logit", "rerank_score", "movement"]


@dataclasses.dataclass
class SearchResults:
    """One query's results. ``table`` has RESULT_COLUMNS in retrieval order (``rank`` 1..k).

    ``rerank_*`` and ``movement`` (retrieval rank minus reranker rank: positive moved up) are
    filled for the ``top_n`` rows the reranker scored and missing for the rest.
    """

    query: str
    instruction: str
    table: pd.DataFrame
    row_ids: np.ndarray
    reranker: str | None = None

    def reranked(self) -> pd.DataFrame:
        """The reranked rows in reranker order (empty without a reranker)."""
        return self.table.dropna(subset=["rerank_rank"]).sort_values("rerank_rank").reset_index(drop=True)


def retrieve(embedder: Embedder, index: DenseIndex, queries: Sequence[str], instruction: str,
             k: int) -> tuple[np.ndarray, np.ndarray]:
    """Batch search: embed ``queries`` with ``instruction``, search -> scores (m, k'), chunk row ids (m, k')."""
    return index.search(embedder.encode_queries(queries, instruction), k)


def results_table(chunks: Chunks, scores: np.ndarray, row_ids: np.ndarray) -> pd.DataFrame:
    """One query's (k,) scores and chunk row ids -> a RESULT_COLUMNS table without reranker columns filled."""
    rows = chunks.table.iloc[row_ids]
    table = pd.DataFrame({
        "rank": np.arange(1, len(row_ids) + 1),
        "chunk_id": rows["chunk_id"].to_numpy(), "doc_id": rows["doc_id"].to_numpy(),
        "chunk": rows["chunk"].to_numpy(), "title": rows["title"].to_numpy(), "text": rows["text"].to_numpy(),
        "score": scores.astype(np.float64),
        "rerank_rank": pd.array([pd.NA] * len(row_ids), dtype="Int64"),
        "rerank_logit": np.full(len(row_ids), np.nan), "rerank_score": np.full(len(row_ids), np.nan),
        "movement": pd.array([pd.NA] * len(row_ids), dtype="Int64"),
    })
    return table


def rerank_table(table: pd.DataFrame, reranker: Reranker, query: str, passages: Sequence[str],
                 top_n: int) -> pd.DataFrame:
    """Score the first ``top_n`` rows with the reranker (``passages`` aligned with them) and fill
    rerank_rank (1 = best logit; ties keep retrieval order), rerank_logit, rerank_score, movement."""
    n = min(int(top_n), len(table))
    table = table.copy()
    if n < 1:
        return table
    logits = reranker.score(query, list(passages)[:n])
    order = np.argsort(-logits, kind="stable")
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(1, n + 1)
    head = table.index[:n]
    table.loc[head, "rerank_rank"] = ranks
    table.loc[head, "rerank_logit"] = logits
    table.loc[head, "rerank_score"] = sigmoid(logits)
    table.loc[head, "movement"] = table.loc[head, "rank"].to_numpy() - ranks
    return table


def search(embedder: Embedder, index: DenseIndex, chunks: Chunks, query: str, *, instruction: str = "",
           k: int = DEFAULT_K, reranker: Reranker | None = None, top_n: int = DEFAULT_TOP_N) -> SearchResults:
    """Top ``k`` chunks for ``query`` (instruction applied to the query only), reranked top ``top_n``."""
    scores, row_ids = retrieve(embedder, index, [query], instruction, k)
    table = results_table(chunks, scores[0], row_ids[0])
    if reranker is not None:
        passages = chunks.passages(row_ids[0][:top_n])
        table = rerank_table(table, reranker, query, passages, top_n)
    return SearchResults(query, instruction, table, row_ids[0], reranker.spec.name if reranker else None)

