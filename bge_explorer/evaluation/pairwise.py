"""Two configurations compared over a query set without judgments (what OpenSearch's pairwise experiment shows).

Per query, the two document rankings (a document ranked by its best chunk, as in evaluation) are compared
at k with :func:`~bge_explorer.retrieval.compare.compare_lists`: overlap@k, Jaccard@k and extrapolated
rank-biased overlap (p = 0.9), plus the documents that moved; the means over the query set summarise it.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import pandas as pd

from bge_explorer.retrieval.compare import RBO_P, compare_lists
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.retrieval.pipeline import retrieve
from bge_explorer.retrieval.results import Ranking
from bge_explorer.session import Session


@dataclasses.dataclass
class PairwiseResult:
    """``per_query``: query, overlap, jaccard, rbo, same_rank, and A's and B's top k document ids."""

    label_a: str
    label_b: str
    k: int
    per_query: pd.DataFrame

    def means(self) -> dict[str, float]:
        return {c: float(self.per_query[c].mean()) for c in ("overlap", "jaccard", "rbo", "same_rank")}

    def to_dict(self) -> dict:
        return {"a": self.label_a, "b": self.label_b, "k": self.k, "means": self.means(),
                "per_query": self.per_query.to_dict(orient="records")}


def documents(ranking: Ranking) -> list[str]:
    """Document ids of what a user gets (reranked top n first), each once, at the rank of its best chunk."""
    doc_ids = ranking.chunks.table["doc_id"].astype(str).to_numpy()
    return list(dict.fromkeys(doc_ids[ranking.final_rows()]))


def compare_configurations(session: Session, a: RetrievalConfig, b: RetrievalConfig, queries: Sequence[str],
                           k: int = 10, p: float = RBO_P) -> PairwiseResult:
    """Run A and B over ``queries`` on the session's corpus (each on its own index state; encodings shared
    through the session's caches) and compare their top-k documents per query. The configurations retrieve
    at least ``4 k`` chunks, so that chunked corpora still give k documents."""
    ranked_a = retrieve(session, a.with_(k=max(4 * k, a.k)), queries)
    ranked_b = retrieve(session, b.with_(k=max(4 * k, b.k)), queries)
    rows = []
    for query, ra, rb in zip(queries, ranked_a, ranked_b):
        da, db = documents(ra), documents(rb)
        c = compare_lists(da, db, k, p)
        rows.append({"query": query, "overlap": c.overlap, "jaccard": c.jaccard, "rbo": c.rbo,
                     "same_rank": c.same_rank, "a_top": da[:k], "b_top": db[:k]})
    return PairwiseResult(a.describe(), b.describe(), k, pd.DataFrame(rows))
