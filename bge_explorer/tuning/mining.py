"""Hard negatives mined with the current configuration's index, as FlagEmbedding's ``hn_mine`` does.

For each *training* query (never a held-out one) the configuration ranks the corpus through the one pipeline
(:func:`~bge_explorer.retrieval.pipeline.retrieve`); a document ranks at its best chunk. The candidates are the
documents at 0-based positions ``low`` to ``high - 1`` of that ranking (``ranking[low:high]``, FlagEmbedding's
``range_for_sampling``: the default ``10-100`` skips the top 10, where unjudged relevant documents are most
likely, and stops at rank 100), minus

- every judged positive of the query (grade >= the relevance threshold), and
- every document judged (any grade) for a held-out query: nothing of a held-out query reaches training.

Optionally a cross-encoder filters false negatives: a candidate whose reranker sigmoid is above
``filter_above`` is dropped (and listed with its score). From what is left, ``count`` negatives are sampled
without replacement with a seeded generator (one ``numpy.random.default_rng(seed)`` drawn query after query in
training order), kept in rank order. A sampled negative is *suspicious*, for a preview, when the reranker
scores it at least :data:`SUSPICIOUS_SCORE` (sigmoid), or when its word set is a near-duplicate of a
positive's: Jaccard ``|A & B| / |A | B| >= NEAR_DUPLICATE`` over lower-cased words.
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from bge_explorer.data.qrels import Judgments
from bge_explorer.errors import Cancelled, ConfigError, ExplorerError
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.tuning.split import HeldOutSplit

DEFAULT_LOW, DEFAULT_HIGH, DEFAULT_COUNT = 10, 100, 7  # "10-100:7"
SUSPICIOUS_SCORE = 0.5  # reranker sigmoid at or above which a kept negative is flagged
NEAR_DUPLICATE = 0.8  # word-set Jaccard with a positive at or above which a negative is flagged
BATCH = 64  # queries ranked between cancel checks
WORD = re.compile(r"\w+")

Progress = Callable[[int, int], None]
CancelCheck = Callable[[], bool]


@dataclasses.dataclass(frozen=True)
class NegativeSampling:
    """Sample ``count`` negatives from ranking positions ``low`` to ``high - 1`` (0-based; text ``low-high:count``)."""

    low: int = DEFAULT_LOW
    high: int = DEFAULT_HIGH
    count: int = DEFAULT_COUNT

    def __post_init__(self) -> None:
        if not (isinstance(self.low, int) and isinstance(self.high, int) and isinstance(self.count, int)):
            raise ConfigError("negatives", "low, high and count are whole numbers")
        if not 0 <= self.low < self.high:
            raise ConfigError("negatives", f"the window {self.low}-{self.high} needs 0 <= low < high")
        if self.count < 1:
            raise ConfigError("negatives", f"the count must be at least 1, not {self.count}")

    @classmethod
    def parse(cls, text: str) -> NegativeSampling:
        """``"10-100:7"`` -> positions 10-99, 7 negatives; ``"10-100"`` keeps the default count."""
        match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*(?::\s*(\d+))?\s*", text or "")
        if not match:
            raise ConfigError("negatives", f"{str(text)[:40]!r} is not LOW-HIGH[:COUNT], e.g. 10-100:7")
        low, high, count = match.groups()
        return cls(int(low), int(high), int(count) if count else DEFAULT_COUNT)

    def __str__(self) -> str:
        return f"{self.low}-{self.high}:{self.count}"


def jaccard(a: str, b: str) -> float:
    """``|A & B| / |A | B|`` of the lower-cased word sets of ``a`` and ``b`` (0 when both are empty)."""
    x, y = set(WORD.findall(a.lower())), set(WORD.findall(b.lower()))
    return len(x & y) / len(x | y) if x or y else 0.0


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


@dataclasses.dataclass
class MinedQuery:
    """One training query: its positives and sampled negatives (document ids; negatives in rank order), the
    0-based rank of each negative, reranker sigmoids where a reranker ran, the flagged and the dropped ones."""

    query_id: str
    query: str
    positives: list[str]
    negatives: list[str]
    ranks: dict[str, int]
    reranker_scores: dict[str, float]
    suspicious: dict[str, str]  # doc id -> why
    dropped: dict[str, str]  # doc id -> why (false-negative filter)


@dataclasses.dataclass
class MinedSet:
    """The mined training queries (those left with at least one negative) and how they were mined."""

    queries: list[MinedQuery]
    sampling: NegativeSampling
    seed: int
    config: RetrievalConfig
    relevance: int
    reranker: str | None
    filter_above: float | None
    notes: list[str]

    def preview(self) -> pd.DataFrame:
        """One row per (query, document) used or dropped: query, doc id, role (positive, negative, dropped),
        rank (0-based; None for positives), reranker sigmoid (NaN without a reranker), and why it is flagged."""
        rows = []
        for q in self.queries:
            for doc in q.positives:
                rows.append((q.query_id, q.query, doc, "positive", None, q.reranker_scores.get(doc, math.nan), ""))
            for doc in q.negatives:
                rows.append((q.query_id, q.query, doc, "negative", q.ranks[doc], q.reranker_scores.get(doc, math.nan),
                             q.suspicious.get(doc, "")))
            for doc, why in q.dropped.items():
                rows.append((q.query_id, q.query, doc, "dropped", q.ranks[doc], q.reranker_scores.get(doc, math.nan),
                             why))
        frame = pd.DataFrame(rows, columns=["query_id", "query", "doc_id", "role", "rank", "reranker_sigmoid", "flag"])
        return frame.astype({"rank": "Int64"})

    def to_dict(self) -> dict[str, Any]:
        """What the model card keeps: the mining parameters and counts (not the texts)."""
        return {"negatives": str(self.sampling), "seed": self.seed, "config": self.config.to_dict(),
                "config_id": self.config.id, "relevance_threshold": self.relevance, "reranker": self.reranker,
                "filter_above": self.filter_above, "queries": len(self.queries),
                "negatives_total": sum(len(q.negatives) for q in self.queries),
                "suspicious": sum(len(q.suspicious) for q in self.queries),
                "dropped": sum(len(q.dropped) for q in self.queries), "notes": list(self.notes)}


def document_texts(session) -> dict[str, str]:
    """Document id -> the text a model reads for it: ``title + " " + text`` with a title, else the text (as
    :meth:`~bge_explorer.data.chunking.Chunks.passages`)."""
    docs = session.corpus.documents
    return {str(d): f"{t} {x}" if t else x for d, t, x in zip(docs["doc_id"], docs["title"].fillna(""), docs["text"])}


def _doc_rankings(session, config: RetrievalConfig, queries: Sequence[str], depth: int) -> list[list[str]]:
    """Per query, document ids best first (a document at its best chunk), at least ``depth`` where the corpus
    has them, through :func:`~bge_explorer.retrieval.pipeline.retrieve` with the reranker off."""
    from bge_explorer.retrieval.pipeline import retrieve

    state = session.state_for(config)
    table = state.chunks.table
    n_chunks, n_docs = len(table), table["doc_id"].nunique()
    k = depth if n_chunks == n_docs else math.ceil(depth * n_chunks / n_docs * 2)
    k = max(1, min(n_chunks, session.limits.max_k, k))
    rankings = retrieve(session, config.with_(k=k, reranker=None), list(queries), state=state)
    doc_ids = table["doc_id"].astype(str).to_numpy()
    return [list(dict.fromkeys(doc_ids[r.rows].tolist())) for r in rankings]


def mine(session, judgments: Judgments, split: HeldOutSplit, config: RetrievalConfig, *,
         sampling: NegativeSampling = NegativeSampling(), seed: int = 0, relevance: int = 1,
         reranker: str | None = None, filter_above: float | None = None, progress: Progress | None = None,
         cancel: CancelCheck | None = None) -> MinedSet:
    """Hard negatives for the training queries of ``split`` (see the module docstring) on ``session``'s corpus
    ranked by ``config``. ``reranker`` (a name or path) scores the candidates: it flags, and with
    ``filter_above`` (a sigmoid in (0, 1)) drops, likely false negatives. ``progress(done, total)`` counts
    queries; ``cancel()`` returning True stops the mining between batches (raises Cancelled).

    Raises ExplorerError without a corpus, ConfigError for a relevance below 1, a bad threshold or a filter without
    a reranker."""
    if session.corpus is None:
        raise ExplorerError("Load a corpus first (the documents to mine negatives from).")
    if isinstance(relevance, bool) or not isinstance(relevance, int) or relevance < 1:
        raise ConfigError("relevance", f"the lowest grade of a positive is a whole number of at least 1, not "
                                       f"{relevance!r}")
    if filter_above is not None and not (reranker and 0 < filter_above < 1):
        raise ConfigError("filter_above", "needs a reranker and a sigmoid threshold between 0 and 1")
    judgments = judgments.check_corpus(session.corpus.documents["doc_id"].astype(str))
    texts = document_texts(session)
    held_docs = {d for q in split.held_out for d in judgments.qrels.get(q, {})}
    scorer = session.reranker(config.with_(reranker=reranker)) if reranker else None
    rng = np.random.default_rng(seed)
    mined, notes, empty = [], [], []
    train = list(split.train)
    for start in range(0, len(train), BATCH):
        if cancel and cancel():
            raise Cancelled("Mining was stopped.")
        ids = train[start:start + BATCH]
        rankings = _doc_rankings(session, config, [judgments.queries[q] for q in ids], sampling.high)
        for qid, ranking in zip(ids, rankings):
            one = _mine_one(session, qid, judgments, ranking, held_docs, texts, sampling, rng, relevance, scorer,
                            filter_above)
            (mined if one.negatives else empty).append(one)
        if progress:
            progress(min(start + BATCH, len(train)), len(train))
    if empty:
        notes.append(f"{len(empty)} training quer(y/ies) had no candidate negative in positions "
                     f"{sampling.low}-{sampling.high - 1} and were left out (e.g. {empty[0].query_id!r})")
    short = sum(1 for q in mined if len(q.negatives) < sampling.count)
    if short:
        notes.append(f"{short} quer(y/ies) got fewer than {sampling.count} negatives (the window held fewer "
                     "candidates); FlagEmbedding repeats them to fill the group")
    if not mined:
        raise ExplorerError("no training query has a negative to learn from: widen the window (--negatives) or "
                            "judge more queries")
    return MinedSet(mined, sampling, seed, config, relevance, scorer.spec.name if scorer else None, filter_above,
                    notes)


def _mine_one(session, qid: str, judgments: Judgments, ranking: list[str], held_docs: set[str],
              texts: Mapping[str, str], sampling: NegativeSampling, rng: np.random.Generator, relevance: int,
              scorer, filter_above: float | None) -> MinedQuery:
    query = judgments.queries[qid]
    positives = [d for d, g in judgments.qrels[qid].items() if g >= relevance]
    ranks = {d: r for r, d in enumerate(ranking)}
    excluded = held_docs | set(positives)
    window = [d for d in ranking[sampling.low:sampling.high] if d not in excluded]
    scores: dict[str, float] = {}
    dropped: dict[str, str] = {}
    if scorer is not None and window:
        logits = session.rerank_cache.logits(scorer, query, [texts[d] for d in window])
        scores = dict(zip(window, sigmoid(logits).tolist()))
        if filter_above is not None:
            dropped = {d: f"reranker {scores[d]:.3f} > {filter_above:g}" for d in window if scores[d] > filter_above}
            window = [d for d in window if d not in dropped]
    if len(window) > sampling.count:
        keep = np.sort(rng.choice(len(window), sampling.count, replace=False))
        window = [window[i] for i in keep]
    suspicious = {}
    for d in window:
        reasons = []
        if d in scores and scores[d] >= SUSPICIOUS_SCORE:
            reasons.append(f"reranker {scores[d]:.3f}")
        near = max((jaccard(texts[d], texts[p]) for p in positives), default=0.0)
        if near >= NEAR_DUPLICATE:
            reasons.append(f"near-duplicate of a positive (Jaccard {near:.2f})")
        if reasons:
            suspicious[d] = "; ".join(reasons)
    return MinedQuery(qid, query, positives, window, {d: ranks[d] for d in [*window, *dropped]}, scores, suspicious,
                      dropped)
