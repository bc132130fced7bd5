"""Evaluating a retrieval configuration on labelled queries: nDCG, Recall, MRR and MAP at 1, 3, 5, 10, 100.

Metrics are trec_eval's (:mod:`bge_explorer.evaluation.metrics`). Judgments refer to documents: when the
corpus is chunked, a document's score is the best score of its chunks, and retrieval asks the pipeline for
as many chunks as it takes to see 100 distinct documents. With a reranker, the top ``top_n`` documents (each
represented by its best chunk) are rescored by the cross-encoder and put in its order; the documents below
keep their retrieval order. Every mode goes through the one pipeline
(:func:`bge_explorer.retrieval.pipeline.rank`); a configuration without an embedding model (BM25 alone)
loads none.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from bge_explorer.data.qrels import Judgments, Missing
from bge_explorer.errors import ExplorerError
from bge_explorer.evaluation.metrics import KS, MEASURES, first_relevant, score_rankings
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.retrieval.pipeline import rank, resolve_instruction
from bge_explorer.retrieval.planner import Plan, plan
from bge_explorer.retrieval.state import IndexState
from bge_explorer.session import Session

DEPTH = max(KS)  # documents ranked per query

StageProgress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; stages: ``"embed"``, ``"search"``, ``"rerank"`` and a mode's
build (``"colbert vectors"``)."""

DocRanking = tuple[np.ndarray, np.ndarray, np.ndarray]  # (doc codes, doc scores, best chunk rows), best first


def documents_of(scores: np.ndarray, row_ids: np.ndarray, chunk_docs: np.ndarray,
                 depth: int = DEPTH) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Chunk hits -> document rankings: a document's score is the best score of its chunks.

    ``scores``, ``row_ids``: (m, k) from the index, best first; ``chunk_docs``: (n_chunks,) document
    codes (ints) of the chunk rows. Returns per query (doc codes, doc scores, best chunk rows), best
    first, at most ``depth`` documents. Rows of -1 (padding) are ignored.
    """
    out = []
    for s, r in zip(scores, row_ids):
        valid = r >= 0
        s, r = s[valid], r[valid]
        codes = chunk_docs[r]
        _, first = np.unique(codes, return_index=True)  # the first hit of a document is its best chunk
        first = np.sort(first)[:depth]
        out.append((codes[first], s[first].astype(np.float64), r[first]))
    return out


def retrieve_documents(state: IndexState, the_plan: Plan, queries: Sequence[str], instruction: str, *,
                       depth: int = DEPTH, rrf_k: int = 60) -> tuple[list[DocRanking], np.ndarray]:
    """Rank documents for each query through the pipeline, asking for as many chunks as it takes to see
    ``depth`` distinct documents (or all). Returns (per query (doc codes, scores, best chunk rows), doc ids)."""
    chunks = state.chunks
    doc_ids, chunk_docs = np.unique(chunks.table["doc_id"].to_numpy(dtype=object).astype(str), return_inverse=True)
    n_chunks, n_docs = len(chunks), len(doc_ids)
    want = min(depth, n_docs)
    per_doc = n_chunks / max(n_docs, 1)
    k = min(n_chunks, want if per_doc == 1 else int(math.ceil(want * per_doc * 2)))
    results: list = [None] * len(queries)
    todo = list(range(len(queries)))
    while todo:
        rankings = rank(state, the_plan, [queries[i] for i in todo], instruction, k, rrf_k=rrf_k)
        short = []
        for i, ranking in zip(todo, rankings):
            results[i] = documents_of([ranking.score], [ranking.rows], chunk_docs, depth)[0]
            if len(results[i][0]) < want and k < n_chunks and len(ranking.rows) >= k:
                short.append(i)  # more chunks exist that could bring new documents
        todo = short
        k = min(n_chunks, k * 4)
    return results, doc_ids


@dataclasses.dataclass
class EvaluationResult:
    """Metrics of one configuration on one set of judged queries.

    ``retrieval`` and ``reranked`` (None without a reranker) are per-query metric tables indexed by
    query id; ``rankings`` and ``reranked_rankings`` the ranked document ids (up to 100 per query);
    ``first_relevant*`` the rank of the first relevant document (None beyond the ranking depth).
    """

    config: dict
    query_ids: list[str]
    queries: list[str]
    retrieval: pd.DataFrame
    reranked: pd.DataFrame | None
    rankings: list[list[str]]
    reranked_rankings: list[list[str]] | None
    first_relevant: list[int | None]
    first_relevant_reranked: list[int | None] | None
    notes: list[str] = dataclasses.field(default_factory=list)
    timings: dict = dataclasses.field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.config.get("label", "")

    @property
    def final(self) -> pd.DataFrame:
        """Per-query metrics of what a user would get: after reranking when there is a reranker."""
        return self.reranked if self.reranked is not None else self.retrieval

    def means(self, stage: str = "retrieval") -> dict[str, float]:
        table = self.retrieval if stage == "retrieval" else self.reranked if stage == "reranked" else self.final
        if table is None:
            raise ExplorerError("this configuration has no reranker")
        return {name: float(value) for name, value in table.mean().items()}

    def summary(self) -> pd.DataFrame:
        """Mean metrics: one row per metric, columns ``retrieval`` and (with a reranker) ``reranked``."""
        out = pd.DataFrame({"retrieval": self.retrieval.mean()})
        if self.reranked is not None:
            out["reranked"] = self.reranked.mean()
        out.index.name = "metric"
        return out

    def table(self, stage: str = "retrieval") -> pd.DataFrame:
        """Mean metrics as a grid: rows nDCG/Recall/MRR/MAP, columns @1 ... @100."""
        means = self.means(stage)
        ks = sorted({int(name.split("@")[1]) for name in means})
        return pd.DataFrame([[means[f"{m}@{k}"] for k in ks] for m in MEASURES],
                            index=pd.Index(MEASURES, name=stage), columns=[f"@{k}" for k in ks])

    def per_query(self) -> pd.DataFrame:
        """One row per query: id, text, rank of the first relevant document (before and after reranking),
        the retrieval metrics, and the reranked ones prefixed ``reranked_``."""
        out = pd.DataFrame({"query_id": self.query_ids, "query": self.queries,
                            "first_relevant": pd.array(self.first_relevant, dtype="Int64")})
        if self.first_relevant_reranked is not None:
            out["first_relevant_reranked"] = pd.array(self.first_relevant_reranked, dtype="Int64")
        out = pd.concat([out, self.retrieval.reset_index(drop=True)], axis=1)
        if self.reranked is not None:
            out = pd.concat([out, self.reranked.reset_index(drop=True).add_prefix("reranked_")], axis=1)
        return out

    def to_dict(self) -> dict:
        """``{"config", "retrieval", "reranked", "per_query", "notes", "timings"}``, JSON-ready."""
        rows = []
        for i, qid in enumerate(self.query_ids):
            rows.append({
                "query_id": qid, "query": self.queries[i],
                "first_relevant": self.first_relevant[i],
                "first_relevant_reranked": (self.first_relevant_reranked[i]
                                            if self.first_relevant_reranked is not None else None),
                "retrieval": {k: float(v) for k, v in self.retrieval.iloc[i].items()},
                "reranked": ({k: float(v) for k, v in self.reranked.iloc[i].items()}
                             if self.reranked is not None else None),
            })
        return {"config": self.config, "retrieval": self.means("retrieval"),
                "reranked": self.means("reranked") if self.reranked is not None else None,
                "per_query": rows, "notes": self.notes, "timings": self.timings}


def _stage(progress: StageProgress | None, stage: str):
    if progress is None:
        return None
    return lambda done, total: progress(stage, done, total)


def evaluate(session: Session, judgments: Judgments, config: RetrievalConfig, *,
             progress: StageProgress | None = None, depth: int = DEPTH, ks: Sequence[int] = KS,
             missing: Missing = "raise") -> EvaluationResult:
    """Evaluate ``config`` on the session's corpus and ``judgments``: retrieval, and reranking when the
    configuration has a reranker. Encodings come from (and go to) the session's caches, so configurations
    sharing a model and chunking encode the corpus once.

    ``missing``: what to do with judgments of documents not in the corpus (see :meth:`Judgments.check_corpus`)."""
    if session.corpus is None:
        raise ExplorerError("Load a corpus first (or give a BEIR dataset with its corpus.jsonl).")
    judgments = judgments.check_corpus(session.corpus.documents["doc_id"].astype(str), missing)
    embedder = session.embedder_for(config)
    encoded_before = embedder.corpus_texts_encoded if embedder is not None else 0
    timings: dict[str, float] = {}

    start = time.perf_counter()
    state = session.state_for(config, _stage(progress, "embed"))
    the_plan = plan(config, state)
    for mode in the_plan.computed:
        state.part(mode, _stage(progress, f"{mode} vectors"))
    instruction = resolve_instruction(config, state) if state.embedder is not None else ""
    timings["index_s"] = round(time.perf_counter() - start, 3)

    query_ids = list(judgments.queries)
    queries = [judgments.queries[q] for q in query_ids]
    for query in queries:
        session.limits.check_query(query, None, instruction)
    qrels = [judgments.qrels[q] for q in query_ids]
    start = time.perf_counter()
    if progress:
        progress("search", 0, len(queries))
    docs, doc_ids = retrieve_documents(state, the_plan, queries, instruction, depth=depth, rrf_k=config.rrf_k)
    if progress:
        progress("search", len(queries), len(queries))
    rankings = [doc_ids[codes].tolist() for codes, _, _ in docs]
    timings["search_s"] = round(time.perf_counter() - start, 3)
    retrieval = score_rankings(rankings, qrels, ks)
    retrieval.index = pd.Index(query_ids, name="query_id")

    reranked = reranked_rankings = first_after = None
    if config.reranker:
        reranker = session.reranker(config)
        start = time.perf_counter()
        reranked_rankings = []
        for i, (query, (codes, _, rows)) in enumerate(zip(queries, docs)):
            n = min(config.top_n, len(codes))
            logits = session.rerank_cache.logits(reranker, query, state.chunks.passages(rows[:n]))
            order = np.argsort(-logits, kind="stable")
            reranked_rankings.append([rankings[i][j] for j in order] + rankings[i][n:])
            if progress:
                progress("rerank", i + 1, len(queries))
        timings["rerank_s"] = round(time.perf_counter() - start, 3)
        reranked = score_rankings(reranked_rankings, qrels, ks)
        reranked.index = retrieval.index
        first_after = first_relevant(reranked_rankings, qrels)

    scorer = state.embedder
    resolved = {
        "label": config.describe(), "id": config.id, "retrieval_config": config.to_dict(),
        "mode": "hybrid" if the_plan.fusion else the_plan.modes[0],
        "fusion": the_plan.fusion, "components": list(the_plan.modes), "weights": the_plan.weights or None,
        "bm25": state.bm25_settings.describe() if "bm25" in the_plan.computed else None,
        "model": config.model if embedder is not None else None,
        "model_identity": embedder.identity if embedder is not None else None,
        "pooling": scorer.spec.pooling if scorer else None, "max_length": scorer.spec.max_length if scorer else None,
        "precision": embedder.precision if embedder is not None else None,
        "instruction": instruction, "reranker": config.reranker,
        "top_n": config.top_n if config.reranker else None,
        "chunk_size": config.chunk_size, "overlap": config.overlap if config.chunk_size else None,
        "chunk_unit": ("tokens" if embedder is not None else "words") if config.chunk_size else None,
        "document_score": ("best chunk" if config.chunk_size else
                           "whole document (one chunk" + (", truncated)" if scorer else ")")),
        "queries": len(query_ids), "documents": int(len(session.corpus.documents)), "chunks": len(state.chunks),
        "passages_embedded": embedder.corpus_texts_encoded - encoded_before if embedder is not None else 0,
        "index_memory_bytes": state.memory(),
    }
    notes = list(judgments.notes) + list(the_plan.notes)
    if state.chunks.dropped_empty:
        notes.append(f"{state.chunks.dropped_empty} empty document(s)/chunk(s) were not indexed")
    return EvaluationResult(resolved, query_ids, queries, retrieval, reranked, rankings, reranked_rankings,
                            first_relevant(rankings, qrels), first_after, notes, timings)
