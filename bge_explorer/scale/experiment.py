"""Judgments, evaluation and experiments on an index you already have (a Milvus or Qdrant collection, Parquet
shards), through :mod:`bge_explorer.scale.connect`.

The store holds the vectors and the chunks; nothing is copied out but the candidates of each query. So the
configurations an experiment compares are those that share the store's embedding model: the query
instruction, the reranker and its depth (``top_n``), and hybrid retrieval that re-scores the fetched candidates
with BM25 (``modes: [dense, bm25]`` with any fusion; BM25 cannot find what the dense search did not fetch, said
in the notes). A configuration naming another model is refused.

Per query: the store's top :data:`CANDIDATES` chunks (:func:`~bge_explorer.scale.connect.search`), fused with
BM25 over their texts when asked, ranked by document (a document scores as its best chunk), its top ``top_n``
documents reranked by the cross-encoder on their best chunks (through the session's reranker cache), then scored against the
judgments exactly as :func:`~bge_explorer.evaluation.evaluate.evaluate` scores (same metrics, same result type),
so :func:`~bge_explorer.evaluation.experiment.summarise` gives the intervals, Holm-adjusted tests, wins/ties/
losses, judged@10 and condensed nDCG of the in-memory experiments.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from bge_explorer.data.qrels import Judgments
from bge_explorer.errors import ConfigError
from bge_explorer.evaluation.evaluate import DEPTH, KS, EvaluationResult, first_relevant
from bge_explorer.evaluation.experiment import METRICS, ExperimentPlan, ExperimentResult, summarise
from bge_explorer.evaluation.metrics import score_rankings
from bge_explorer.evaluation.significance import N_RESAMPLES
from bge_explorer.retrieval import fusion as fz
from bge_explorer.retrieval.bm25_index import BM25Index
from bge_explorer.retrieval.config import AUTO, RetrievalConfig
from bge_explorer.retrieval.rerank import RerankCache
from bge_explorer.scale.connect import FETCH_LIMIT, Connection, search

CANDIDATES = min(FETCH_LIMIT, 2 * DEPTH)  # chunks fetched per query: enough for DEPTH documents when chunked
MODES = ({"dense"}, {"dense", "bm25"})
Progress = Callable[[str, int, int], None]


def check_config(connection: Connection, config: RetrievalConfig, where: str = "configuration") -> None:
    """Refuse what a connected store cannot run: another embedding model, or modes other than dense (+ BM25)."""
    if config.model and config.model != connection.embedder.spec.name:
        raise ConfigError(f"{where}.model", f"{config.model!r} is not the store's embedding model "
                                            f"({connection.embedder.spec.name}); a connected index compares "
                                            "instructions, rerankers, depths and BM25 fusion over its own vectors")
    if set(config.modes) not in MODES:
        raise ConfigError(f"{where}.modes", f"a connected index runs dense or dense + bm25, not "
                                            f"{'+'.join(config.modes)}")
    if config.fusion == "m3":
        raise ConfigError(f"{where}.fusion", "M3's weighted sum combines dense, sparse and colbert only; fuse dense "
                                             "and bm25 with rrf, weighted or a grid fusion")


def _fused(ranking, config: RetrievalConfig) -> np.ndarray:
    """(n,) the fetched chunks' scores under ``config``: the store's dense scores, or their fusion with BM25 over
    the fetched texts."""
    dense = ranking.score
    if "bm25" not in config.modes:
        return dense
    bm25 = BM25Index(ranking.chunks.passages()).scores(ranking.query)
    scores = {"dense": dense, "bm25": np.asarray(bm25, np.float64)}
    ranks = {m: fz.ranks(s) for m, s in scores.items()}
    name = "rrf" if config.fusion == AUTO else config.fusion  # auto: RRF, as the planner picks off BGE-M3
    weights = fz.resolve_weights(scores, config.weight_map)
    return fz.FUSIONS[name].combine(scores, ranks, weights, config.rrf_k)


def _by_document(doc_ids: np.ndarray, order: np.ndarray) -> tuple[list[str], list[int]]:
    """Chunk positions best first -> (document ids best first, each once: a document ranks at its best chunk;
    the position of each one's best chunk)."""
    first: dict[str, int] = {}
    for position in order.tolist():
        first.setdefault(doc_ids[position], position)
    return list(first), list(first.values())


def evaluate_connection(connection: Connection, judgments: Judgments, config: RetrievalConfig, *,
                        rerank_cache: RerankCache | None = None, depth: int = DEPTH, ks: Sequence[int] = KS,
                        progress: Progress | None = None) -> EvaluationResult:
    """Evaluate ``config`` on the store for ``judgments`` (see the module docstring). ``config.instruction`` None:
    the store's instruction. Judged documents the store never returns count as not found."""
    from bge_explorer.models.loading import load_reranker

    check_config(connection, config)
    rerank_cache = rerank_cache or RerankCache()
    reranker = (load_reranker(config.reranker, backend=config.backend, precision=config.precision)
                if config.reranker else None)  # as Session.reranker loads it
    query_ids = list(judgments.queries)
    queries = [judgments.queries[q] for q in query_ids]
    qrels = [judgments.qrels[q] for q in query_ids]
    rankings, reranked_rankings, timings = [], [] if reranker else None, {"search_s": 0.0, "rerank_s": 0.0}
    for i, query in enumerate(queries):
        start = time.perf_counter()
        ranking = search(connection, query, k=CANDIDATES, instruction=config.instruction)
        scores = _fused(ranking, config)
        order = np.lexsort((np.arange(len(scores)), -scores))
        docs, best = _by_document(ranking.chunks.table["doc_id"].astype(str).to_numpy(), order)
        docs, best = docs[:depth], best[:depth]
        rankings.append(docs)
        timings["search_s"] += time.perf_counter() - start
        if reranker is not None:  # as evaluate() does: the top n documents, each by its best chunk
            start = time.perf_counter()
            n = min(config.top_n, len(docs))
            logits = rerank_cache.logits(reranker, query, ranking.chunks.passages(best[:n]))
            reranked_rankings.append([docs[j] for j in np.argsort(-logits, kind="stable")] + docs[n:])
            timings["rerank_s"] += time.perf_counter() - start
        if progress:
            progress("search", i + 1, len(queries))
    retrieval = score_rankings(rankings, qrels, ks)
    retrieval.index = pd.Index(query_ids, name="query_id")
    reranked = None
    if reranked_rankings is not None:
        reranked = score_rankings(reranked_rankings, qrels, ks)
        reranked.index = retrieval.index
    instruction = connection.instruction if config.instruction is None else config.instruction
    resolved = {"label": config.describe(), "id": config.id, "retrieval_config": config.to_dict(),
                "store": connection.where, "model": connection.embedder.spec.name,
                "model_identity": connection.embedder.identity, "instruction": instruction,
                "modes": list(config.modes), "reranker": config.reranker,
                "top_n": config.top_n if config.reranker else None, "candidates": CANDIDATES,
                "queries": len(query_ids)}
    notes = list(judgments.notes) + list(connection.notes)
    if "bm25" in config.modes:
        notes.append(f"BM25 re-scores the {CANDIDATES} chunks the dense search fetched; it finds nothing else")
    timings = {k: round(v, 3) for k, v in timings.items()}
    return EvaluationResult(resolved, query_ids, queries, retrieval, reranked, rankings, reranked_rankings,
                            first_relevant(rankings, qrels),
                            first_relevant(reranked_rankings, qrels) if reranked_rankings is not None else None,
                            notes, timings)


def run_connected_experiment(connection: Connection, judgments: Judgments, plan: ExperimentPlan, *,
                             rerank_cache: RerankCache | None = None, metrics: Sequence[str] = METRICS,
                             progress: Progress | None = None, n_resamples: int = N_RESAMPLES,
                             seed: int = 0) -> ExperimentResult:
    """Every configuration of ``plan`` on the store (checked first, all of them), then the experiment's summary.
    Reranker scores are shared across configurations through ``rerank_cache``."""
    for i, config in enumerate(plan.configurations):
        check_config(connection, config, f"configurations[{i}]")
    rerank_cache = rerank_cache or RerankCache()
    results = {}
    for config in plan.configurations:
        tagged = ((lambda stage, done, total, _n=config.label: progress(f"{_n}: {stage}", done, total))
                  if progress else None)
        results[config.label] = evaluate_connection(connection, judgments, config, rerank_cache=rerank_cache,
                                                    progress=tagged)
    return summarise(plan, results, judgments, metrics, n_resamples=n_resamples, seed=seed)
