"""What a score means, and where the threshold goes: scores of judged pairs against their judgments.

BGE rerankers output a raw logit (unbounded; FlagEmbedding's ``normalize=True`` maps it through the sigmoid
to 0-1). Neither is a probability of relevance: the scale depends on the model and the domain, so a
threshold has to be read off the user's own judgments. BGE embedding models are trained with a low
contrastive temperature (0.01-0.02), so cosine similarities crowd into 0.6-1 even for unrelated texts: only
their order is meaningful, and a fixed cosine threshold transfers badly between corpora.

For pairs with a score s and a judgment (relevant: grade >= 1), predicting "relevant" when s >= t gives, for
every candidate threshold t (each distinct score):

    precision(t) = TP / (TP + FP),  recall(t) = TP / (TP + FN),  F1 = 2 P R / (P + R)

:func:`best_f1` is the threshold with the highest F1 (the highest such t on ties: the strictest rule with
that F1); :func:`threshold_for_precision` the lowest t whose precision reaches a target (the most recall at
that precision).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import pandas as pd

from bge_explorer.data.qrels import Judgments
from bge_explorer.errors import ExplorerError
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.retrieval.pipeline import resolve_instruction


@dataclasses.dataclass(frozen=True)
class Threshold:
    """A score threshold and what it does on the judged pairs (predict relevant when score >= value)."""

    value: float
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int


def threshold_table(scores: Sequence[float], relevant: Sequence[bool]) -> pd.DataFrame:
    """One row per distinct score t, highest first: threshold, tp, fp, fn, precision, recall, f1 of
    "score >= t". (n,) scores and (n,) labels; at least one relevant pair is needed."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(relevant, dtype=bool)
    if s.shape != y.shape or s.ndim != 1 or len(s) == 0:
        raise ExplorerError("calibration needs scores and judgments of the same pairs (at least one)")
    if not np.isfinite(s).all():
        raise ExplorerError("calibration scores must be finite numbers")
    if not y.any():
        raise ExplorerError("calibration needs at least one relevant judged pair")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    tp, fp = np.cumsum(y), np.cumsum(~y)
    last = np.r_[s[1:] != s[:-1], True]  # the last pair of each run of equal scores: counts at t = that score
    tp, fp, t = tp[last], fp[last], s[last]
    fn = int(y.sum()) - tp
    precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(precision),
                   where=(precision + recall) > 0)
    return pd.DataFrame({"threshold": t, "tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall,
                         "f1": f1})


def _row(table: pd.DataFrame, i: int) -> Threshold:
    r = table.iloc[i]
    return Threshold(float(r["threshold"]), float(r["precision"]), float(r["recall"]), float(r["f1"]),
                     int(r["tp"]), int(r["fp"]), int(r["fn"]))


def best_f1(scores: Sequence[float], relevant: Sequence[bool]) -> Threshold:
    """The threshold with the highest F1 on the judged pairs (the highest threshold among ties)."""
    table = threshold_table(scores, relevant)
    return _row(table, int(np.argmax(table["f1"].to_numpy())))


def threshold_for_precision(scores: Sequence[float], relevant: Sequence[bool], precision: float) -> Threshold | None:
    """The lowest threshold whose precision is at least ``precision`` (0-1), or None when none reaches it."""
    if not 0 < precision <= 1:
        raise ExplorerError(f"the target precision must be in (0, 1], not {precision}")
    table = threshold_table(scores, relevant)
    ok = np.flatnonzero(table["precision"].to_numpy() >= precision - 1e-12)
    return _row(table, int(ok[-1])) if len(ok) else None


def sigmoid(logits: Sequence[float]) -> np.ndarray:
    """FlagEmbedding's ``normalize=True``: 1 / (1 + exp(-logit))."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


RERANKED_CHUNKS = 3  # per judged document: its chunks closest to the query that the cross-encoder scores


def judged_pairs(session, judgments: Judgments, config: RetrievalConfig) -> pd.DataFrame:
    """The scores of every judged (query, document) pair under ``config`` on the session's corpus: one row per
    pair with query, doc_id, grade, relevant, ``cosine`` (the best chunk's dense score, with the config's
    instruction) and, when the configuration has a reranker, ``logit`` and ``sigmoid`` (the best of the
    document's RERANKED_CHUNKS chunks closest to the query). Documents not in the corpus are left out."""
    state = session.state_for(config)
    vectors = state.vectors
    if vectors is None:
        raise ExplorerError("calibration needs a dense index: choose an embedding model")
    instruction = resolve_instruction(config, state)
    reranker = session.reranker(config) if config.reranker else None
    doc_ids = state.chunks.table["doc_id"].astype(str).to_numpy()
    rows_of: dict[str, np.ndarray] = {d: np.flatnonzero(doc_ids == d) for d in set(judgments.doc_ids)}
    queries = list(judgments.queries)
    encoded = state.embedder.encode_queries([judgments.queries[q] for q in queries], instruction)
    out = []
    for qid, query_vector in zip(queries, encoded):
        text = judgments.queries[qid]
        for doc_id, grade in judgments.qrels[qid].items():
            rows = rows_of.get(str(doc_id), np.empty(0, np.int64))
            if len(rows) == 0:
                continue
            cosines = vectors[rows] @ query_vector
            row = {"query": text, "doc_id": str(doc_id), "grade": int(grade), "relevant": grade >= 1,
                   "cosine": float(cosines.max())}
            if reranker is not None:
                closest = rows[np.argsort(-cosines, kind="stable")[:RERANKED_CHUNKS]]
                logits = session.rerank_cache.logits(reranker, text, state.chunks.passages(closest))
                row["logit"] = float(logits.max())
                row["sigmoid"] = float(sigmoid([row["logit"]])[0])
            out.append(row)
    if not out:
        raise ExplorerError("none of the judged documents is in the corpus")
    return pd.DataFrame(out)
