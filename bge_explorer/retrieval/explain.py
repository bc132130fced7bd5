"""Why a chunk matched a query: M3 lexical weights and their overlap, ColBERT token alignment, BM25 terms.

Plain data for a UI to draw (tables and a similarity matrix with token strings); nothing here renders.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from bge_explorer.retrieval.sparse_index import LexicalWeights, as_arrays

Decode = Callable[[Sequence[int]], list[str]]


@dataclasses.dataclass
class LexicalExplanation:
    """``query`` and ``passage``: tables (token_id, token, weight), heaviest first. ``overlap``: the tokens in
    both, (token_id, token, query_weight, passage_weight, contribution = product), biggest contribution first.
    ``score`` = sum of contributions = M3's lexical matching score of the pair."""

    query: pd.DataFrame
    passage: pd.DataFrame
    overlap: pd.DataFrame
    score: float


def _weights_table(weights: LexicalWeights, decode: Decode, top: int | None) -> pd.DataFrame:
    ids, values = as_arrays(weights)
    order = np.lexsort((ids, -values))[:top]
    ids, values = ids[order], values[order]
    return pd.DataFrame({"token_id": ids, "token": decode(ids.tolist()), "weight": values.astype(np.float64)})


def explain_lexical(query_weights: LexicalWeights, passage_weights: LexicalWeights, decode: Decode,
                    top: int | None = 20) -> LexicalExplanation:
    """Lexical weights of a query and a passage as tokens (``top`` heaviest of each; None = all) and every
    shared token with its contribution ``w_query * w_passage``."""
    q_ids, q_w = as_arrays(query_weights)
    p_ids, p_w = as_arrays(passage_weights)
    shared, qi, pi = np.intersect1d(q_ids, p_ids, assume_unique=True, return_indices=True)
    contribution = q_w[qi] * p_w[pi]  # float32 products, as FlagEmbedding multiplies them
    order = np.lexsort((shared, -contribution))
    overlap = pd.DataFrame({
        "token_id": shared[order], "token": decode(shared[order].tolist()),
        "query_weight": q_w[qi][order].astype(np.float64), "passage_weight": p_w[pi][order].astype(np.float64),
        "contribution": contribution[order].astype(np.float64),
    })
    return LexicalExplanation(_weights_table(query_weights, decode, top), _weights_table(passage_weights, decode, top),
                              overlap, float(contribution.sum(dtype=np.float64)))


@dataclasses.dataclass
class ColbertAlignment:
    """ColBERT MaxSim of one query and one chunk, token by token.

    ``similarity``: (query tokens, chunk tokens) dot products, the heat map; ``query_tokens`` and
    ``passage_tokens`` label its rows and columns (CLS left out, final SEP/EOS kept, as M3 does).
    ``best[i]``: the chunk token query token i matches best, with similarity ``best_similarity[i]``;
    ``score`` = mean of ``best_similarity`` = the ColBERT score.
    """

    query_tokens: list[str]
    passage_tokens: list[str]
    similarity: np.ndarray
    best: np.ndarray
    best_similarity: np.ndarray
    score: float

    def table(self) -> pd.DataFrame:
        """One row per query token: query_token, best_passage_token, passage_position, similarity."""
        return pd.DataFrame({"query_token": self.query_tokens,
                             "best_passage_token": [self.passage_tokens[j] for j in self.best],
                             "passage_position": self.best, "similarity": self.best_similarity.astype(np.float64)})


def colbert_alignment(query_vecs: np.ndarray, passage_vecs: np.ndarray, query_tokens: Sequence[str],
                      passage_tokens: Sequence[str]) -> ColbertAlignment:
    """Alignment of query token vectors (nq, d) with passage token vectors (np, d), tokens as strings."""
    if len(query_tokens) != len(query_vecs) or len(passage_tokens) != len(passage_vecs):
        raise ValueError("one token string per vector is needed")
    sims = np.asarray(query_vecs, np.float32) @ np.asarray(passage_vecs, np.float32).T
    best = sims.argmax(axis=1)
    best_sim = sims[np.arange(len(sims)), best]
    return ColbertAlignment(list(query_tokens), list(passage_tokens), sims, best, best_sim,
                            float(best_sim.sum() / max(len(best_sim), 1)))


def explain_bm25(bm25, query: str, row: int) -> pd.DataFrame:
    """BM25 per query term for one passage: term, contribution (they sum to the BM25 score), biggest first."""
    terms = list(dict.fromkeys(bm25.query_tokens(query)))
    retriever = bm25.retriever
    # one score vector per distinct term: BM25 is a sum over query terms (a repeated term counts again)
    counts = pd.Series(bm25.query_tokens(query)).value_counts() if terms else pd.Series(dtype=int)
    contributions = [float(retriever.get_scores_from_ids([retriever.vocab_dict[t]])[row]) * int(counts[t])
                     for t in terms]
    table = pd.DataFrame({"term": terms, "contribution": contributions})
    return table.sort_values("contribution", ascending=False, kind="stable").reset_index(drop=True)


@dataclasses.dataclass
class Explanation:
    """Why chunk ``row`` matched: M3 lexical overlap, ColBERT alignment, BM25 terms (None where not available)."""

    row: int
    lexical: LexicalExplanation | None
    colbert: ColbertAlignment | None
    bm25: pd.DataFrame | None


def explain(state, query: str, row: int, *, instruction: str = "", top: int | None = 20) -> Explanation:
    """Why chunk ``row`` of an index state matched ``query``: lexical overlap and ColBERT alignment when the model
    produces lexical weights and multi-vectors (the chunk's weights come from the session's cache, its token
    vectors from the ColBERT part if built, else they are computed for this one chunk), and BM25 per-term
    contributions (the BM25 part, built on first use)."""
    from bge_explorer.models.embedders import LEXICAL, MULTIVECTOR

    lexical = colbert = None
    embedder = state.embedder
    if {LEXICAL, MULTIVECTOR} <= state.produces:
        text, passage = instruction + query, state.passages[row]
        got = embedder.encode([text], (LEXICAL, MULTIVECTOR))
        passage_weights = state.cache.get(embedder, [passage], (LEXICAL,))[LEXICAL][0]
        lexical = explain_lexical(got[LEXICAL][0], passage_weights, embedder.decode_tokens, top)
        p_vecs = (state.part("colbert").store.chunk(row) if state.has("colbert")
                  else embedder.encode([passage], (MULTIVECTOR,))[MULTIVECTOR][0])
        q_ids, p_ids = embedder.token_ids(text)[1:], embedder.token_ids(passage)[1:]
        colbert = colbert_alignment(got[MULTIVECTOR][0], p_vecs, embedder.decode_tokens(q_ids),
                                    embedder.decode_tokens(p_ids))
    return Explanation(int(row), lexical, colbert, explain_bm25(state.part("bm25").index, query, row))
