"""Retrieval metrics exactly as trec_eval computes them (and so pytrec_eval, BEIR and MTEB).

- a document is relevant when its judged score is 1 or more; unjudged documents count as non-relevant;
- ``ndcg@k``: gain = the judged score (negative scores count 0), discount ``1 / log2(rank + 1)``, divided
  by the DCG of the ideal ordering of all judged documents (trec_eval ``ndcg_cut_k``);
- ``recall@k``: relevant documents in the top k / all relevant documents (``recall_k``);
- ``mrr@k``: 1 / rank of the first relevant document in the top k, else 0 (``recip_rank`` of the top k);
- ``map@k``: sum of precision at each relevant rank within k / all relevant documents (``map_cut_k``).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from bge_explorer.errors import ExplorerError

KS = (1, 3, 5, 10, 100)
MEASURES = ("ndcg", "recall", "mrr", "map")


def metric_names(ks: Sequence[int] = KS) -> list[str]:
    """``["ndcg@1", ..., "map@100"]``: every measure at every cutoff, measure-major."""
    return [f"{measure}@{k}" for measure in MEASURES for k in ks]


def score_rankings(rankings: Sequence[Sequence[str]], qrels: Sequence[Mapping[str, int]],
                   ks: Sequence[int] = KS) -> pd.DataFrame:
    """Per-query metrics of ranked document ids against judgments (aligned lists, best document first).

    Returns a (queries, metrics) DataFrame with the :func:`metric_names` columns. Rankings shorter
    than k count the missing ranks as non-relevant. A query without relevant judgments scores 0.
    """
    ks = sorted(set(int(k) for k in ks))
    if not ks or ks[0] < 1:
        raise ExplorerError("cutoffs must be positive integers")
    if len(rankings) != len(qrels):
        raise ExplorerError(f"{len(rankings)} rankings for {len(qrels)} judged queries")
    m, depth = len(rankings), ks[-1]
    gains = np.zeros((m, depth))
    ideal = np.zeros((m, depth))
    n_rel = np.zeros(m)
    for i, (ranked, judged) in enumerate(zip(rankings, qrels)):
        row = [judged.get(d, 0) for d in list(ranked)[:depth]]
        gains[i, :len(row)] = row
        positive = sorted((s for s in judged.values() if s > 0), reverse=True)[:depth]
        ideal[i, :len(positive)] = positive
        n_rel[i] = sum(1 for s in judged.values() if s >= 1)
    gains = np.maximum(gains, 0.0)
    relevant = gains >= 1
    ranks = np.arange(1, depth + 1)
    discount = 1.0 / np.log2(ranks + 1)
    dcg = np.cumsum(gains * discount, axis=1)
    idcg = np.cumsum(ideal * discount, axis=1)
    hits = np.cumsum(relevant, axis=1)
    ap = np.cumsum(np.where(relevant, hits / ranks, 0.0), axis=1)
    first = np.where(relevant.any(axis=1), relevant.argmax(axis=1) + 1, np.inf)
    safe_rel = np.where(n_rel > 0, n_rel, 1.0)
    columns: dict[str, np.ndarray] = {}
    for measure in MEASURES:
        for k in ks:
            c = k - 1
            if measure == "ndcg":
                value = np.divide(dcg[:, c], idcg[:, c], out=np.zeros(m), where=idcg[:, c] > 0)
            elif measure == "recall":
                value = np.where(n_rel > 0, hits[:, c] / safe_rel, 0.0)
            elif measure == "mrr":
                value = np.where(first <= k, 1.0 / first, 0.0)
            else:
                value = np.where(n_rel > 0, ap[:, c] / safe_rel, 0.0)
            columns[f"{measure}@{k}"] = value
    return pd.DataFrame(columns)


def rank_run(scores: Mapping[str, float]) -> list[str]:
    """Document ids of one query's ``{doc id: score}`` best first, ties broken as trec_eval does
    (document id in decreasing order)."""
    return [d for d, _ in sorted(scores.items(), key=lambda item: (float(item[1]), item[0]), reverse=True)]


def evaluate_run(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]],
                 ks: Sequence[int] = KS) -> pd.DataFrame:
    """A TREC-style run ``{query id: {doc id: score}}`` -> per-query metrics (index: query id) for the
    queries both in the run and the judgments, as pytrec_eval reports them."""
    ids = [q for q in run if q in qrels]
    table = score_rankings([rank_run(run[q]) for q in ids], [qrels[q] for q in ids], ks)
    table.index = pd.Index(ids, name="query_id")
    return table


def first_relevant(rankings: Sequence[Sequence[str]], qrels: Sequence[Mapping[str, int]]) -> list[int | None]:
    """Rank (1-based) of the first relevant document of each ranking, None when none is ranked."""
    out: list[int | None] = []
    for ranked, judged in zip(rankings, qrels):
        out.append(next((r for r, d in enumerate(ranked, start=1) if judged.get(d, 0) >= 1), None))
    return out
