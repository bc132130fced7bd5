"""Hybrid retrieval: dense, M3 sparse, M3 ColBERT and BM25 over one chunk table, fused per query.

A :class:`HybridIndex` holds one session's retrieval state for the current chunks and builds each part
the first time a mode needs it: the sparse index (M3 lexical weights, kept per passage in a
:class:`LexicalCache` so re-chunking or switching back never re-encodes), the ColBERT token store
(only when turned on; reused row by row when rebuilt for the same model) and the BM25 index (no model
needed). Changing mode, fusion or weights reuses everything already built: a search then only
encodes the query.

Search pipeline for one query (``k`` per first-stage retriever, default 100):

1. First stage: each of dense (FAISS), sparse and BM25 that the mode uses returns its top ``k``.
   ColBERT is not a first stage: it rescores the union of the dense and sparse candidates.
2. Candidates = the union. Every mode in play scores every candidate exactly; its ``rank`` is over
   the candidates (for a candidate in that mode's own top k this equals its rank in the full corpus).
3. Fusion (mode ``hybrid``): ``m3`` = BGE-M3's ``compute_score`` weighted sum of raw dense, sparse and
   ColBERT scores; ``weighted`` = weighted sum of per-query min-max normalised scores; ``rrf`` =
   reciprocal rank fusion (k = 60). A single mode ranks by its own score.
4. The best ``k`` by fused score (ties: lower chunk row first) form the table; a reranker may follow.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from bge_explorer.retrieval import fusion as fz
from bge_explorer.retrieval.bm25_index import BM25Index, BM25Settings
from bge_explorer.data.chunking import Chunks
from bge_explorer.retrieval.colbert_store import ColbertStore, estimate_bytes
from bge_explorer.models.embedders import Embedder, M3Embedder, Progress
from bge_explorer.retrieval.embedding_cache import EmbeddingCache
from bge_explorer.errors import ExplorerError
from bge_explorer.retrieval.explain import ColbertAlignment, LexicalExplanation, colbert_alignment, explain_bm25, explain_lexical
from bge_explorer.retrieval.dense_index import DenseIndex
from bge_explorer.models.rerankers import Reranker
from bge_explorer.retrieval.search import DEFAULT_K, DEFAULT_TOP_N, SearchResults, rerank_table, results_table
from bge_explorer.retrieval.sparse_index import SparseIndex

Mode = Literal["dense", "sparse", "colbert", "bm25", "hybrid"]
Fusion = Literal["m3", "weighted", "rrf"]
MODES: tuple[str, ...] = ("dense", "sparse", "colbert", "bm25", "hybrid")
FUSIONS: tuple[str, ...] = ("m3", "weighted", "rrf")


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class LexicalCache:
    """M3 lexical weights per (model cache key, passage text), kept for a session: never encoded twice.

    Small (tens of weights per passage). When ``embedding_cache`` is given, the dense vectors computed in
    the same pass are stored there too, so a later dense index build for the same model encodes nothing.
    """

    def __init__(self) -> None:
        self._store: dict[tuple, dict[bytes, dict[str, float]]] = {}

    def weights(self, embedder: M3Embedder, passages: Sequence[str], progress: Progress | None = None,
                embedding_cache: EmbeddingCache | None = None) -> list[dict[str, float]]:
        store = self._store.setdefault(embedder.cache_key, {})
        digests = [_digest(p) for p in passages]
        missing = list(dict.fromkeys(d for d in digests if d not in store))
        if missing:
            text_of = dict(zip(digests, passages))
            texts = [text_of[d] for d in missing]
            got = embedder.encode_passages(texts, dense=embedding_cache is not None, sparse=True, progress=progress)
            store.update(zip(missing, got.lexical))
            if embedding_cache is not None:
                embedding_cache.add(embedder, texts, got.dense)
        elif progress:
            progress(len(passages), len(passages))
        return [store[d] for d in digests]

    def count(self, embedder: Embedder) -> int:
        """How many passages' weights are kept for this model."""
        return len(self._store.get(embedder.cache_key, {}))


@dataclasses.dataclass
class Ranking:
    """One query's fused ranking: ``rows`` (k',) chunk rows best first, ``score`` (k',) fused scores, and per
    mode in play ``scores[mode]`` / ``ranks[mode]`` (k',) aligned with ``rows``."""

    rows: np.ndarray
    score: np.ndarray
    scores: dict[str, np.ndarray]
    ranks: dict[str, np.ndarray]


@dataclasses.dataclass
class HybridResults(SearchResults):
    """:class:`SearchResults` plus how they were fused. ``table`` = RESULT_COLUMNS (``rank``/``score`` are the
    fused rank and score) followed by ``<mode>_score`` and ``<mode>_rank`` for each mode in play."""

    mode: str = "dense"
    fusion: str | None = None
    components: tuple[str, ...] = ()
    weights: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Explanation:
    """Why chunk ``row`` matched: M3 lexical overlap, ColBERT alignment, BM25 terms (None where not available)."""

    row: int
    lexical: LexicalExplanation | None
    colbert: ColbertAlignment | None
    bm25: pd.DataFrame | None


class HybridIndex:
    """Retrieval state of one chunk table. ``embedder`` None = BM25 only; ``index``/``vectors`` are the
    session's dense index and chunk vectors (dense mode). Sparse and ColBERT need an M3 embedder."""

    def __init__(self, chunks: Chunks, embedder: Embedder | None = None, index: DenseIndex | None = None,
                 vectors: np.ndarray | None = None, *, lexical_cache: LexicalCache | None = None,
                 embedding_cache: EmbeddingCache | None = None, bm25_settings: BM25Settings | None = None,
                 colbert_dtype: str = "float16"):
        self.chunks, self.embedder, self.index, self.vectors = chunks, embedder, index, vectors
        self.lexical_cache = lexical_cache or LexicalCache()
        self.embedding_cache = embedding_cache
        self.bm25_settings = bm25_settings or BM25Settings()
        self.colbert_dtype = colbert_dtype
        self._passages: list[str] | None = None
        self._sparse: SparseIndex | None = None
        self._colbert: ColbertStore | None = None
        self._colbert_keys: list[bytes] | None = None
        self._bm25: BM25Index | None = None

    # -- parts -------------------------------------------------------------------------------------

    @property
    def passages(self) -> list[str]:
        if self._passages is None:
            self._passages = self.chunks.passages()
        return self._passages

    @property
    def is_m3(self) -> bool:
        return isinstance(self.embedder, M3Embedder)

    def _need_m3(self, what: str) -> M3Embedder:
        if not self.is_m3:
            name = self.embedder.spec.name if self.embedder else "no model"
            raise ExplorerError(f"{what} needs a BGE-M3 model (model class m3); the index was built with {name}.")
        return self.embedder  # type: ignore[return-value]

    def available_modes(self) -> list[str]:
        """Modes this index can serve: dense with a dense index, sparse/colbert with M3, bm25 always, hybrid."""
        modes = (["dense"] if self.index is not None else []) + (["sparse", "colbert"] if self.is_m3 else [])
        return modes + ["bm25", "hybrid"]

    def sparse_index(self, progress: Progress | None = None) -> SparseIndex:
        """The M3 lexical-weight index, built on first use (encodes only passages not in the cache)."""
        if self._sparse is None:
            embedder = self._need_m3("Sparse retrieval")
            weights = self.lexical_cache.weights(embedder, self.passages, progress, self.embedding_cache)
            self._sparse = SparseIndex.from_weights(weights, embedder.vocab_size)
        return self._sparse

    def bm25_index(self) -> BM25Index:
        if self._bm25 is None:
            self._bm25 = BM25Index(self.passages, self.bm25_settings)
        return self._bm25

    @property
    def colbert_enabled(self) -> bool:
        return self._colbert is not None

    def colbert_estimate_bytes(self) -> int:
        """Memory the ColBERT store would take, before building it: one vector per passage token plus the final
        SEP/EOS, truncated as the model truncates (a tokenizer pass, no model run)."""
        embedder = self._need_m3("ColBERT")
        counts = np.asarray(embedder.count_tokens(self.passages), np.int64)
        tokens = int(np.minimum(counts + 1, embedder.spec.max_length - 1).sum())
        return estimate_bytes(tokens, embedder.colbert_dim, self.colbert_dtype)

    def enable_colbert(self, progress: Progress | None = None, reuse: HybridIndex | None = None) -> ColbertStore:
        """Build (once) the ColBERT token store. Rows of ``reuse`` (another index of the same model, e.g. before
        re-chunking) with the same passage text are copied, not re-encoded."""
        if self._colbert is not None:
            return self._colbert
        embedder = self._need_m3("ColBERT")
        keys = [_digest(p) for p in self.passages]
        known: dict[bytes, np.ndarray] = {}
        if (reuse is not None and reuse._colbert is not None and reuse.embedder is not None
                and reuse.embedder.cache_key == embedder.cache_key):
            known = {k: reuse._colbert.chunk(r) for r, k in enumerate(reuse._colbert_keys or []) if k in set(keys)}
        missing = list(dict.fromkeys(k for k in keys if k not in known))
        if missing:
            text_of = dict(zip(keys, self.passages))
            got = embedder.encode_passages([text_of[k] for k in missing], dense=False, sparse=False, colbert=True,
                                           progress=progress)
            known.update(zip(missing, got.colbert))
        self._colbert = ColbertStore([known[k] for k in keys], self.colbert_dtype)
        self._colbert_keys = keys
        return self._colbert

    def disable_colbert(self) -> None:
        """Drop the ColBERT token store and free its memory."""
        self._colbert, self._colbert_keys = None, None

    def memory(self) -> dict[str, int]:
        """Bytes held per built part: dense (vectors), sparse (both CSR matrices), colbert, bm25."""
        out = {}
        if self.vectors is not None:
            out["dense"] = int(self.vectors.nbytes)
        if self._sparse is not None:
            out["sparse"] = self._sparse.nbytes
        if self._colbert is not None:
            out["colbert"] = self._colbert.nbytes
        if self._bm25 is not None:
            out["bm25"] = self._bm25.nbytes
        return out

    # -- planning ----------------------------------------------------------------------------------

    def plan(self, mode: Mode, fusion: Fusion = "m3", components: Sequence[str] | None = None
             ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(components fused, first-stage retrievers) for a mode. Raises ExplorerError for what this index
        cannot do (e.g. sparse without M3, dense without a dense index, BM25 inside M3's weighted sum)."""
        if mode not in MODES:
            raise ExplorerError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if mode != "hybrid":
            comps: tuple[str, ...] = (mode,)
        else:
            if fusion not in FUSIONS:
                raise ExplorerError(f"fusion must be one of {', '.join(FUSIONS)}, not {fusion!r}")
            if components is None:
                pool = fz.M3_MODES if fusion == "m3" else fz.MODES
                components = [m for m in pool if m in self.available_modes()
                              and (m != "colbert" or self.colbert_enabled)]
            comps = tuple(m for m in fz.MODES if m in set(components))
            if not comps:
                raise ExplorerError("hybrid search needs at least one of dense, sparse, colbert, bm25")
            if fusion == "m3" and "bm25" in comps:
                raise ExplorerError("M3's weighted sum combines dense, sparse and colbert only; "
                                    "use weighted or rrf fusion to mix in BM25")
        for m in comps:
            if m not in self.available_modes():
                raise ExplorerError(f"mode {m} is not available here: "
                                    + ("sparse and colbert need a BGE-M3 model" if m in ("sparse", "colbert")
                                       else "build the dense index first"))
        stages = tuple(m for m in comps if m in ("dense", "sparse", "bm25"))
        if "colbert" in comps and not {"dense", "sparse"} & set(stages):
            stages = tuple(m for m in ("dense", "sparse") if m in self.available_modes()) + stages
        return comps, stages

    # -- retrieval ---------------------------------------------------------------------------------

    def retrieve(self, queries: Sequence[str], mode: Mode = "dense", *, fusion: Fusion = "m3",
                 weights: Mapping[str, float] | None = None, components: Sequence[str] | None = None,
                 instruction: str = "", k: int = DEFAULT_K, rrf_k: int = fz.RRF_K) -> list[Ranking]:
        """Batch retrieval: one :class:`Ranking` (top ``k``) per query. ``instruction`` prefixes the query for
        the model's modes (not BM25). ``weights``: ``{mode: weight}``; for ``m3`` fusion missing ones default to
        dense 0.4, sparse 0.2, colbert 0.4, otherwise to 1."""
        comps, stages = self.plan(mode, fusion, components)
        computed = tuple(m for m in fz.MODES if m in set(comps) | set(stages))
        queries = list(queries)
        model_texts = [instruction + q for q in queries]
        q_dense = q_lex = q_col = None
        if self.is_m3 and {"dense", "sparse", "colbert"} & set(computed):
            got = self.embedder.encode_m3(model_texts, dense="dense" in computed,  # type: ignore[union-attr]
                                          sparse="sparse" in computed, colbert="colbert" in computed)
            q_dense, q_lex, q_col = got.dense, got.lexical, got.colbert
        elif "dense" in computed:
            q_dense = self.embedder.encode_queries(queries, instruction)  # type: ignore[union-attr]
        sparse = self.sparse_index() if "sparse" in computed else None
        colbert = self.enable_colbert() if "colbert" in computed else None
        bm25 = self.bm25_index() if "bm25" in computed else None
        dense_hits = self.index.search(q_dense, k) if "dense" in stages else None  # type: ignore[union-attr]

        out = []
        for i, query in enumerate(queries):
            pools, bm25_all = [], None
            if dense_hits is not None:
                pools.append(dense_hits[1][i][dense_hits[1][i] >= 0])
            if "sparse" in stages:
                pools.append(sparse.search(q_lex[i], k)[1])  # type: ignore[union-attr,index]
            if "bm25" in stages:
                bm25_all = bm25.scores(query)  # type: ignore[union-attr]
                pools.append(fusion_top(bm25_all, k))
            cand = np.unique(np.concatenate(pools)) if pools else np.empty(0, np.int64)
            scores: dict[str, np.ndarray] = {}
            for m in computed:
                if m == "dense":
                    scores[m] = self._dense_scores(q_dense[i], cand)  # type: ignore[index]
                elif m == "sparse":
                    scores[m] = sparse.score_rows(q_lex[i], cand)  # type: ignore[union-attr,index]
                elif m == "colbert":
                    scores[m] = colbert.scores(q_col[i], cand)  # type: ignore[union-attr,index]
                else:
                    scores[m] = (bm25_all if bm25_all is not None else bm25.scores(query))[cand]  # type: ignore
            ranks = {m: fz.ranks(s) for m, s in scores.items()}
            used = {m: scores[m] for m in comps}
            if len(comps) == 1 and mode != "hybrid":
                fused = np.asarray(used[comps[0]], np.float64)
            elif fusion == "m3":
                fused = fz.m3_weighted_sum(used, weights)
            elif fusion == "weighted":
                fused = fz.normalized_weighted_sum(used, weights)
            else:
                fused = fz.rrf({m: ranks[m] for m in comps}, rrf_k, weights)
            order = np.lexsort((cand, -fused))[:k]
            out.append(Ranking(cand[order].astype(np.int64), fused[order],
                               {m: s[order] for m, s in scores.items()}, {m: r[order] for m, r in ranks.items()}))
        return out

    def _dense_scores(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        if self.vectors is None:
            raise ExplorerError("dense scores need the chunk vectors")
        return (self.vectors[rows] @ np.asarray(q, np.float32)).astype(np.float32)

    def search(self, query: str, mode: Mode = "dense", *, fusion: Fusion = "m3",
               weights: Mapping[str, float] | None = None, components: Sequence[str] | None = None,
               instruction: str = "", k: int = DEFAULT_K, rrf_k: int = fz.RRF_K,
               reranker: Reranker | None = None, top_n: int = DEFAULT_TOP_N) -> HybridResults:
        """One query -> :class:`HybridResults`: the fused top ``k`` with a score and rank column per mode in
        play; the reranker (if any) then scores the first ``top_n`` rows as in :func:`bge_explorer.retrieval.search.search`."""
        if not query.strip():
            raise ExplorerError("Type a query.")
        comps, _ = self.plan(mode, fusion, components)
        ranking = self.retrieve([query], mode, fusion=fusion, weights=weights, components=components,
                                instruction=instruction, k=k, rrf_k=rrf_k)[0]
        table = results_table(self.chunks, ranking.score, ranking.rows)
        for m in fz.MODES:
            if m in ranking.scores:
                table[f"{m}_score"] = ranking.scores[m].astype(np.float64)
                table[f"{m}_rank"] = ranking.ranks[m]
        if reranker is not None:
            table = rerank_table(table, reranker, query, self.chunks.passages(ranking.rows[:top_n]), top_n)
        used_weights = {}
        if mode == "hybrid" and fusion == "m3":
            used_weights = fz._weights(comps, weights, fz.M3_DEFAULT_WEIGHTS)
        elif mode == "hybrid":
            used_weights = fz._weights(comps, weights)
        return HybridResults(query, instruction, table, ranking.rows, reranker.spec.name if reranker else None,
                             mode=mode, fusion=fusion if mode == "hybrid" else None, components=comps,
                             weights=used_weights)

    # -- explanation -------------------------------------------------------------------------------

    def explain(self, query: str, row: int, *, instruction: str = "", top: int | None = 20) -> Explanation:
        """Why chunk ``row`` matched ``query``: lexical overlap and ColBERT alignment (M3 models; the chunk's
        weights come from the lexical cache, its token vectors are computed for this one chunk if ColBERT is
        off) and BM25 per-term contributions."""
        lexical = colbert = None
        if self.is_m3:
            embedder: M3Embedder = self.embedder  # type: ignore[assignment]
            text = instruction + query
            passage = self.passages[row]
            got = embedder.encode_m3([text], dense=False, sparse=True, colbert=True)
            lexical = explain_lexical(got.lexical[0], self.lexical_cache.weights(embedder, [passage])[0],
                                      embedder.decode_tokens, top)
            p_vecs = (self._colbert.chunk(row) if self._colbert is not None
                      else embedder.encode_m3([passage], dense=False, sparse=False, colbert=True).colbert[0])
            q_ids, p_ids = embedder.token_ids(text)[1:], embedder.token_ids(passage)[1:]
            colbert = colbert_alignment(got.colbert[0], p_vecs, embedder.decode_tokens(q_ids),
                                        embedder.decode_tokens(p_ids))
        return Explanation(int(row), lexical, colbert, explain_bm25(self.bm25_index(), query, row))


def fusion_top(scores: np.ndarray, k: int) -> np.ndarray:
    """Rows of the ``k`` best positive scores."""
    from bge_explorer.retrieval.sparse_index import top_k

    return top_k(scores, k)[1]
