"""Evaluating a retrieval configuration on labelled queries: nDCG, Recall, MRR and MAP at 1, 3, 5, 10, 100.

Metrics follow trec_eval (and so pytrec_eval, BEIR and MTEB) exactly:

- a document is relevant when its judged score is 1 or more; unjudged documents count as non-relevant;
- ``ndcg@k``: gain = the judged score (negative scores count 0), discount ``1 / log2(rank + 1)``, divided
  by the DCG of the ideal ordering of all judged documents (trec_eval ``ndcg_cut_k``);
- ``recall@k``: relevant documents in the top k / all relevant documents (``recall_k``);
- ``mrr@k``: 1 / rank of the first relevant document in the top k, else 0 (``recip_rank`` of the top k);
- ``map@k``: sum of precision at each relevant rank within k / all relevant documents (``map_cut_k``).

Judgments refer to documents. When the corpus is chunked, a document's score is the best score of its
chunks: retrieval asks the index for as many chunks as it takes to see 100 distinct documents. With
a reranker, the top ``top_n`` documents (each represented by its best chunk) are rescored by the
cross-encoder and put in its order; the documents below keep their retrieval order.

Modes other than dense (``sparse``, ``colbert``, ``bm25``, ``hybrid``) retrieve through
:meth:`bge_explorer.retrieval.hybrid.HybridIndex.retrieve` and go through the same chunk -> document rule (best
fused score of a document's chunks). ``bm25`` needs no model: without one (or without chunking) no
embedding model is loaded at all.
"""
from __future__ import annotations

import dataclasses
import math
import time
import weakref
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from bge_explorer.models.catalog import OFFLINE_MODEL
from bge_explorer.data.chunking import DEFAULT_OVERLAP, Chunks
from bge_explorer.models.embedders import Embedder
from bge_explorer.errors import ExplorerError
from bge_explorer.retrieval.dense_index import DenseIndex
from bge_explorer.data.qrels import Judgments, Missing
from bge_explorer.models.rerankers import Reranker
from bge_explorer.session import Session

KS = (1, 3, 5, 10, 100)
MEASURES = ("ndcg", "recall", "mrr", "map")
DEPTH = max(KS)  # documents ranked per query
DEFAULT_EVAL_TOP_N = 20  # documents a reranker rescores per query (BEIR uses 100; 20 keeps CPUs usable)

StageProgress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; stages: ``"embed"``, ``"search"``, ``"rerank"``."""


def metric_names(ks: Sequence[int] = KS) -> list[str]:
    """``["ndcg@1", ..., "map@100"]``: every measure at every cutoff, measure-major."""
    return [f"{measure}@{k}" for measure in MEASURES for k in ks]


# ---------------------------------------------------------------------------------------------------------
# Metrics


def score_rankings(rankings: Sequence[Sequence[str]], qrels: Sequence[Mapping[str, int]],
                   ks: Sequence[int] = KS) -> pd.DataFrame:
    """Per-query metrics of ranked document ids against judgments (aligned lists, best document first).

    Returns a (queries, metrics) DataFrame with the :func:`metric_names` columns. Rankings shorter
    than k count the missing ranks as non-relevant. A query without relevant judgments scores 0.
    """
    ks = sorted(set(int(k) for k in ks))
    if not ks or ks[0] < 1:
        raise ValueError("cutoffs must be positive integers")
    if len(rankings) != len(qrels):
        raise ValueError(f"{len(rankings)} rankings for {len(qrels)} judged queries")
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


# ---------------------------------------------------------------------------------------------------------
# Chunks -> documents


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


def retrieve_documents(embedder: Embedder, index: DenseIndex, chunks: Chunks, queries: Sequence[str],
                       instruction: str, depth: int = DEPTH,
                       ) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], np.ndarray]:
    """Rank documents for each query, searching as many chunks as it takes to see ``depth`` distinct
    documents (or all of them). Returns (per query (doc codes, scores, best chunk rows), doc ids by code)."""
    doc_ids, chunk_docs = np.unique(chunks.table["doc_id"].to_numpy(dtype=object).astype(str),
                                    return_inverse=True)
    n_chunks, n_docs = len(chunks), len(doc_ids)
    want = min(depth, n_docs)
    qvecs = embedder.encode_queries(list(queries), instruction)
    per_doc = n_chunks / max(n_docs, 1)
    k = min(n_chunks, want if per_doc == 1 else int(math.ceil(want * per_doc * 2)))
    results: list = [None] * len(queries)
    todo = np.arange(len(queries))
    while len(todo):
        scores, row_ids = index.search(qvecs[todo], k)
        ranked = documents_of(scores, row_ids, chunk_docs, depth)
        short = []
        for i, docs in zip(todo, ranked):
            results[i] = docs
            if len(docs[0]) < want and k < n_chunks:
                short.append(i)
        todo = np.array(short, dtype=np.int64)
        k = min(n_chunks, k * 4)
    return results, doc_ids


# ---------------------------------------------------------------------------------------------------------
# Configurations and results


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """One retrieval configuration to evaluate.

    ``instruction``: None uses the model's own query instruction, ``""`` none, any other string is used
    as is (it is prepended to each query). ``chunk_size`` None: one chunk per document, truncated at
    the model's max length (as MTEB does). ``reranker`` None: retrieval only.

    ``mode``: ``dense`` (FAISS, the default), ``sparse`` / ``colbert`` (BGE-M3 models), ``bm25`` (no model;
    ``model`` is then only used, if given, to chunk by its tokenizer; without one chunk sizes count words)
    or ``hybrid``, fused with ``fusion`` (``m3``, ``weighted``, ``rrf``) over ``components`` (None: the
    model's own modes, ColBERT only when named) with ``weights`` (``{mode: weight}``; see docs/hybrid.md).
    """

    model: str | None = OFFLINE_MODEL
    instruction: str | None = None
    reranker: str | None = None
    top_n: int = DEFAULT_EVAL_TOP_N
    chunk_size: int | None = None
    overlap: int = DEFAULT_OVERLAP
    pooling: str | None = None
    model_class: str | None = None
    precision: str = "auto"
    label: str = ""
    mode: str = "dense"
    fusion: str = "m3"
    weights: tuple[tuple[str, float], ...] | Mapping[str, float] | None = None
    components: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        from bge_explorer.retrieval.hybrid import FUSIONS, MODES

        if self.mode not in MODES:
            raise ExplorerError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.fusion not in FUSIONS:
            raise ExplorerError(f"fusion must be one of {', '.join(FUSIONS)}, not {self.fusion!r}")
        if self.weights is not None:
            pairs = self.weights.items() if isinstance(self.weights, Mapping) else self.weights
            weights = tuple(sorted((str(m), float(w)) for m, w in pairs))
            unknown = [m for m, _ in weights if m not in ("dense", "sparse", "colbert", "bm25")]
            if unknown:
                raise ExplorerError(f"weights name unknown mode(s) {', '.join(unknown)}; "
                                    "use dense, sparse, colbert, bm25")
            object.__setattr__(self, "weights", weights or None)
        if self.components is not None:
            components = tuple(str(c) for c in ([self.components] if isinstance(self.components, str)
                                                else self.components))
            unknown = [c for c in components if c not in ("dense", "sparse", "colbert", "bm25")]
            if unknown:
                raise ExplorerError(f"components name unknown mode(s) {', '.join(unknown)}; "
                                    "use dense, sparse, colbert, bm25")
            object.__setattr__(self, "components", components or None)

    def with_(self, **changes) -> "EvalConfig":
        return dataclasses.replace(self, **changes)

    @property
    def weight_map(self) -> dict[str, float] | None:
        return dict(self.weights) if self.weights else None  # type: ignore[arg-type]

    @property
    def needs_model(self) -> bool:
        """Whether an embedding model computes scores: every mode but BM25 alone."""
        return not (self.mode == "bm25" or (self.mode == "hybrid" and self.components == ("bm25",)))

    def describe(self, embedder: Embedder | None = None, components: Sequence[str] | None = None,
                 weights: Mapping[str, float] | None = None) -> str:
        """A short label: the given one, or model + mode + instruction + reranker + chunking."""
        if self.label:
            return self.label
        instruction = self.instruction if self.instruction is not None else (
            embedder.spec.instruction if embedder else None)
        parts = []
        if self.needs_model and self.model:
            parts.append(self.model.rstrip("/").split("/")[-1])
        if self.mode == "hybrid":
            comps = list(components or self.components or [])
            w = weights or self.weight_map or {}
            mix = " + ".join(f"{m} {w[m]:g}" if m in w else m for m in comps) or "default modes"
            parts.append(f"hybrid {self.fusion} ({mix})")
        elif self.mode != "dense":
            parts.append(self.mode.upper() if self.mode == "bm25" else self.mode)
        if self.needs_model:
            parts.append("model's instruction" if instruction is None else
                         "no instruction" if instruction == "" else f"instruction {instruction.strip()[:40]!r}")
        if self.reranker:
            parts.append(f"rerank top {self.top_n} with {self.reranker.rstrip('/').split('/')[-1]}")
        if self.chunk_size:
            parts.append(f"chunks of {self.chunk_size}")
        return ", ".join(parts)


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


def build_eval_index(session: Session, embedder: Embedder, chunk_size: int | None, overlap: int,
                     progress: StageProgress | None = None) -> tuple[Chunks, DenseIndex]:
    """Chunk the session's corpus and index it with ``embedder``, embedding through the session's cache
    (text already embedded by this model is not embedded again). The session's own index is untouched."""
    chunks = session.chunk(embedder.tokenizer, chunk_size, overlap)
    return chunks, DenseIndex(session.embed_chunks(embedder, chunks, _stage(progress, "embed")))


def _load_models(config: EvalConfig) -> tuple[Embedder | None, Reranker | None]:
    """The configuration's embedder (None for BM25 without chunking or without a model: nothing is loaded)
    and reranker."""
    from bge_explorer.models.loading import load_embedder, load_reranker

    embedder = None
    if config.needs_model or (config.model and config.chunk_size):
        if not config.model:
            raise ExplorerError(f"mode {config.mode} needs an embedding model; name one (only bm25 works without)")
        embedder = load_embedder(config.model, pooling=config.pooling, model_class=config.model_class,
                                 precision=config.precision)
    reranker = load_reranker(config.reranker, precision=config.precision) if config.reranker else None
    return embedder, reranker


# Per session: hybrid indexes of recent (model, chunking) pairs, so A/B configurations sharing a model and
# chunking reuse the sparse index, ColBERT vectors and BM25 index. Weak keys: dropped with the session.
_HYBRIDS: "weakref.WeakKeyDictionary[Session, dict]" = weakref.WeakKeyDictionary()
_HYBRIDS_KEPT = 2


def build_eval_hybrid(session: Session, embedder: Embedder | None, config: EvalConfig,
                      progress: StageProgress | None = None):
    """(chunks, HybridIndex) for a non-dense configuration, reused from an earlier configuration of this session
    with the same model and chunking. Lexical weights are computed before the dense vectors so that BGE-M3
    encodes each passage once for both; both go to the session's caches."""
    from bge_explorer.retrieval.bm25_index import WordTokenizer
    from bge_explorer.retrieval.hybrid import HybridIndex

    if session.corpus is None:
        raise ExplorerError("Load a corpus first (or give a BEIR dataset with its corpus.jsonl).")
    use_model = embedder if config.needs_model else None
    key = (id(session.corpus), embedder.cache_key if embedder is not None else None, use_model is not None,
           config.chunk_size, config.overlap if config.chunk_size else None)
    kept = _HYBRIDS.setdefault(session, {})
    if key in kept and kept[key][0] is session.corpus:
        kept[key] = kept.pop(key)  # most recently used last
        return kept[key][1], kept[key][2]
    tokenizer = embedder.tokenizer if embedder is not None else WordTokenizer()
    chunks = session.chunk(tokenizer, config.chunk_size, config.overlap)
    index = vectors = None
    if use_model is not None:
        vectors = session.embed_chunks(use_model, chunks, _stage(progress, "embed"))
        index = DenseIndex(vectors)
    hybrid = HybridIndex(chunks, use_model, index, vectors, lexical_cache=session.lexical_cache,
                         embedding_cache=session.cache)
    kept[key] = (session.corpus, chunks, hybrid)
    while len(kept) > _HYBRIDS_KEPT:
        kept.pop(next(iter(kept)))
    return chunks, hybrid


def retrieve_documents_hybrid(hybrid, chunks: Chunks, queries: Sequence[str], instruction: str, config: EvalConfig,
                              depth: int = DEPTH) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], np.ndarray]:
    """As :func:`retrieve_documents`, for any mode: fused chunk rankings -> documents by their best chunk."""
    doc_ids, chunk_docs = np.unique(chunks.table["doc_id"].to_numpy(dtype=object).astype(str), return_inverse=True)
    n_chunks, n_docs = len(chunks), len(doc_ids)
    want = min(depth, n_docs)
    per_doc = n_chunks / max(n_docs, 1)
    k = min(n_chunks, want if per_doc == 1 else int(math.ceil(want * per_doc * 2)))
    results: list = [None] * len(queries)
    todo = list(range(len(queries)))
    while todo:
        rankings = hybrid.retrieve([queries[i] for i in todo], config.mode, fusion=config.fusion,
                                   weights=config.weight_map, components=config.components,
                                   instruction=instruction, k=k)
        short = []
        for i, ranking in zip(todo, rankings):
            results[i] = documents_of([ranking.score], [ranking.rows], chunk_docs, depth)[0]
            if len(results[i][0]) < want and k < n_chunks and len(ranking.rows) >= k:
                short.append(i)  # more chunks exist that could bring new documents
        todo = short
        k = min(n_chunks, k * 4)
    return results, doc_ids


def evaluate(session: Session, judgments: Judgments, config: EvalConfig, *,
             progress: StageProgress | None = None, depth: int = DEPTH, ks: Sequence[int] = KS,
             missing: Missing = "raise") -> EvaluationResult:
    """Evaluate ``config`` on the session's corpus and ``judgments``: retrieval, and reranking when the
    configuration has a reranker. Embeddings come from (and go to) ``session.cache``.

    ``missing``: what to do with judgments of documents not in the corpus (see
    :meth:`Judgments.check_corpus`)."""
    if config.reranker and config.top_n < 1:
        raise ExplorerError("The reranker's top n must be at least 1.")
    if config.chunk_size is not None and config.chunk_size < 1:
        config = config.with_(chunk_size=None)
    if session.corpus is None:
        raise ExplorerError("Load a corpus first (or give a BEIR dataset with its corpus.jsonl).")
    judgments = judgments.check_corpus(session.corpus.documents["doc_id"].astype(str), missing)
    embedder, reranker = _load_models(config)
    if not config.needs_model:
        instruction = ""  # BM25 scores the query as typed
    else:
        instruction = embedder.spec.instruction if config.instruction is None else config.instruction
    timings: dict[str, float] = {}

    start = time.perf_counter()
    encoded_before = embedder.corpus_texts_encoded if embedder is not None else 0
    hybrid = None
    comps: tuple[str, ...] = ("dense",)
    used_weights: dict[str, float] = {}
    if config.mode == "dense":
        from bge_explorer.models.embedders import M3Embedder

        if isinstance(embedder, M3Embedder):  # one M3 pass gives the lexical weights too: a B in sparse or hybrid
            _, hybrid_for_cache = build_eval_hybrid(session, embedder, config, progress)  # mode reuses them
            chunks, index = hybrid_for_cache.chunks, hybrid_for_cache.index
        else:
            chunks, index = build_eval_index(session, embedder, config.chunk_size, config.overlap, progress)
    else:
        from bge_explorer.retrieval import fusion as fz

        chunks, hybrid = build_eval_hybrid(session, embedder, config, progress)
        if config.mode == "hybrid" and config.components is None:
            # the model's own modes, ColBERT only when named: the same whatever an earlier configuration built
            pool = fz.M3_MODES if config.fusion == "m3" else fz.MODES
            config = config.with_(components=tuple(m for m in pool if m != "colbert"
                                                   and m in hybrid.available_modes()))
        comps, _ = hybrid.plan(config.mode, config.fusion, config.components)
        if config.mode == "hybrid":
            used_weights = fz._weights(comps, config.weight_map,
                                       fz.M3_DEFAULT_WEIGHTS if config.fusion == "m3" else None)
        if "colbert" in comps or (config.mode == "colbert"):
            hybrid.enable_colbert(_stage(progress, "ColBERT vectors"))
    timings["index_s"] = round(time.perf_counter() - start, 3)

    query_ids = list(judgments.queries)
    queries = [judgments.queries[q] for q in query_ids]
    qrels = [judgments.qrels[q] for q in query_ids]
    start = time.perf_counter()
    if progress:
        progress("search", 0, len(queries))
    if hybrid is None:
        docs, doc_ids = retrieve_documents(embedder, index, chunks, queries, instruction, depth)
    else:
        try:
            docs, doc_ids = retrieve_documents_hybrid(hybrid, chunks, queries, instruction, config, depth)
        except ValueError as exc:  # a weight below 0, or all weights 0
            raise ExplorerError(str(exc)) from None
    if progress:
        progress("search", len(queries), len(queries))
    rankings = [doc_ids[codes].tolist() for codes, _, _ in docs]
    timings["search_s"] = round(time.perf_counter() - start, 3)
    retrieval = score_rankings(rankings, qrels, ks)
    retrieval.index = pd.Index(query_ids, name="query_id")

    reranked = reranked_rankings = first_after = None
    if reranker is not None:
        start = time.perf_counter()
        reranked_rankings = []
        for i, (query, (codes, _, rows)) in enumerate(zip(queries, docs)):
            n = min(config.top_n, len(codes))
            logits = reranker.score(query, chunks.passages(rows[:n]))
            order = np.argsort(-logits, kind="stable")
            reranked_rankings.append([rankings[i][j] for j in order] + rankings[i][n:])
            if progress:
                progress("rerank", i + 1, len(queries))
        timings["rerank_s"] = round(time.perf_counter() - start, 3)
        reranked = score_rankings(reranked_rankings, qrels, ks)
        reranked.index = retrieval.index
        first_after = first_relevant(reranked_rankings, qrels)

    scorer = embedder if config.needs_model else None
    resolved = {
        "label": config.describe(embedder, comps if config.mode == "hybrid" else None, used_weights or None),
        "mode": config.mode, "fusion": config.fusion if config.mode == "hybrid" else None,
        "components": list(comps), "weights": used_weights or None,
        "bm25": hybrid.bm25_settings.describe() if hybrid is not None and "bm25" in comps else None,
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
        "queries": len(query_ids), "documents": int(len(session.corpus.documents)), "chunks": len(chunks),
        "passages_embedded": embedder.corpus_texts_encoded - encoded_before if embedder is not None else 0,
    }
    if hybrid is not None:
        resolved["index_memory_bytes"] = hybrid.memory()
    notes = list(judgments.notes)
    if chunks.dropped_empty:
        notes.append(f"{chunks.dropped_empty} empty document(s)/chunk(s) were not indexed")
    return EvaluationResult(resolved, query_ids, queries, retrieval, reranked, rankings, reranked_rankings,
                            first_relevant(rankings, qrels), first_after, notes, timings)
