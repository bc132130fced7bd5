"""The one retrieval pipeline: ``retrieve(session, config, queries) -> [Ranking]``.

For a batch of queries under a :class:`~bge_explorer.retrieval.config.RetrievalConfig`:

1. The session gives the index state for the config's corpus, model and chunking (built once, cached).
2. The planner (:mod:`~bge_explorer.retrieval.planner`) picks the modes to run.
3. The model encodes instruction + query once for every output the plan needs (dense, lexical,
   multi-vector); text-only modes (BM25) read the query as typed.
4. Each first stage returns its top ``k``; the candidates are their union. Every mode in play scores every
   candidate exactly, one mode's score or the fusion ranks them, and the best ``k`` (ties: lower chunk row
   first) form the :class:`~bge_explorer.retrieval.results.Ranking`.
5. A reranker, when configured, scores the first ``top_n`` rows (cached per query and passage).
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np

from bge_explorer.errors import ConfigError
from bge_explorer.models.embedders import DENSE
from bge_explorer.models.rerankers import Reranker
from bge_explorer.retrieval import fusion as fz
from bge_explorer.retrieval import modes as registry
from bge_explorer.retrieval.bm25_index import ANALYZERS
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.retrieval.planner import Plan, plan
from bge_explorer.retrieval.rerank import RerankCache
from bge_explorer.retrieval.results import Ranking
from bge_explorer.retrieval.state import IndexState

BATCH = 64  # queries encoded and searched together

Progress = Callable[[int, int], None]


def resolve_instruction(config: RetrievalConfig, state: IndexState) -> str:
    """The instruction the model's modes prefix to each query: the config's, else the model's own."""
    if config.instruction is not None:
        return config.instruction
    return state.embedder.spec.instruction if state.embedder is not None else ""


def encode_queries(state: IndexState, the_plan: Plan, queries: Sequence[str], instruction: str
                   ) -> list[registry.QueryInput]:
    """Each query as the plan's modes read it: one model pass over instruction + query for every output needed."""
    outputs = list(dict.fromkeys(registry.get(m).needs for m in the_plan.computed if registry.get(m).needs))
    encoded = state.embedder.encode([instruction + q for q in queries], outputs) if outputs else {}
    return [registry.QueryInput(q, {o: encoded[o][i] for o in outputs}) for i, q in enumerate(queries)]


def rank(state: IndexState, the_plan: Plan, queries: Sequence[str], instruction: str, k: int, *,
         rrf_k: int = fz.RRF_K, progress: Progress | None = None) -> list[Ranking]:
    """Steps 3-4 above for every query, in batches of :data:`BATCH`: one :class:`Ranking` (top ``k``) per query."""
    parts = {m: state.part(m) for m in the_plan.computed}
    combine = fz.FUSIONS[the_plan.fusion].combine if the_plan.fusion else None
    out: list[Ranking] = []
    queries = list(queries)
    for start in range(0, len(queries), BATCH):
        inputs = encode_queries(state, the_plan, queries[start:start + BATCH], instruction)
        hits = {m: parts[m].search_many(inputs, k) for m in the_plan.stages}
        for i, query in enumerate(inputs):
            pools = [hits[m][i] for m in the_plan.stages]
            cand = np.unique(np.concatenate(pools)).astype(np.int64) if pools else np.empty(0, np.int64)
            scores = {m: np.asarray(parts[m].score(query, cand)) for m in the_plan.computed}
            ranks = {m: fz.ranks(s) for m, s in scores.items()}
            if combine is None:
                fused = np.asarray(scores[the_plan.modes[0]], np.float64)
            else:
                fused = combine({m: scores[m] for m in the_plan.modes}, {m: ranks[m] for m in the_plan.modes},
                                the_plan.weights, rrf_k)
            order = np.lexsort((cand, -fused))[:k]
            out.append(Ranking(query.text, instruction, state.chunks, cand[order], fused[order],
                               {m: s[order] for m, s in scores.items()}, {m: r[order] for m, r in ranks.items()},
                               the_plan, query_vector=query.encoded.get(DENSE)))
        if progress:
            progress(min(start + BATCH, len(queries)), len(queries))
    return out


def rerank(ranking: Ranking, reranker: Reranker, top_n: int, cache: RerankCache,
           progress: Progress | None = None) -> Ranking:
    """Score the first ``top_n`` rows with the cross-encoder (in place; returns the ranking)."""
    n = min(int(top_n), len(ranking.rows))
    passages = ranking.chunks.passages(ranking.rows[:n])
    ranking.rerank_logits = cache.logits(reranker, ranking.query, passages, progress)
    ranking.reranker = reranker.spec.name
    ranking.__dict__.pop("table", None)  # the cached table predates the reranker's columns
    return ranking


FIRST_RERANK_STEP = 1  # pairs in the first streamed batch: on screen fast (0.19-0.29 s for XLM-R base on 2 cores)


def rerank_steps(ranking: Ranking, reranker: Reranker, top_n: int, cache: RerankCache,
                 first: int = FIRST_RERANK_STEP) -> Iterator[Ranking]:
    """Rerank the first ``top_n`` rows a batch at a time, yielding the ranking after each batch: reranked over
    its first ``first`` rows, then ``first + batch_size``, ... up to ``top_n`` (the last yield equals
    :func:`rerank` with ``top_n``). Pairs scored before come from ``cache``: when all are there, one yield."""
    n = min(int(top_n), len(ranking.rows))
    if cache.unscored(reranker, ranking.query, ranking.chunks.passages(ranking.rows[:n])) == 0:
        yield rerank(ranking, reranker, n, cache)
        return
    m = min(first, n)
    while True:
        yield rerank(ranking, reranker, m, cache)
        if m >= n:
            return
        m = min(m + reranker.batch_size, n)


def retrieve(session, config: RetrievalConfig, queries: Sequence[str], *, state: IndexState | None = None,
             progress: Progress | None = None, rerank_progress: Progress | None = None) -> list[Ranking]:
    """Run ``config`` over ``queries`` on ``session``'s corpus: one :class:`Ranking` per query, reranked when
    the config names a reranker. ``state`` (default: the session's state for the config) is the index to use.

    Raises :class:`~bge_explorer.errors.ExplorerError` subclasses for bad input (over a limit, a mode the
    index cannot serve, a model that cannot load)."""
    state = state or session.state_for(config, progress)
    instruction = resolve_instruction(config, state)
    for query in queries:
        session.limits.check_query(query, config.k, instruction)
    session.limits.check_k(config.top_n, "top n")
    the_plan = plan(config, state)
    if "bm25" in the_plan.computed and state.bm25_settings != ANALYZERS[config.bm25]:
        raise ConfigError("bm25", f"the configuration asks for the {config.bm25!r} analyzer, but this index was "
                                  f"built with {state.bm25_settings.describe()}")
    rankings = rank(state, the_plan, queries, instruction, config.k, rrf_k=config.rrf_k)
    if config.reranker:
        reranker = session.reranker(config)
        for ranking in rankings:
            rerank(ranking, reranker, config.top_n, session.rerank_cache, rerank_progress)
    return rankings
