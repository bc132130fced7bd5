"""One user's workspace: corpus, caches and index states. Models are shared by the process; nothing else is.

A :class:`Session` owns everything built for its user: the passage encoding cache (dense vectors and
BGE-M3 lexical weights), the reranker score cache, the index state the user built (``current``) and a few
recent states for other configurations (evaluation, experiments). Switching model, chunking or corpus
rebuilds only what changed. :meth:`Session.child` makes a session for another corpus (an uploaded
benchmark) that shares the caches, so nothing is encoded twice.
"""
from __future__ import annotations

import collections
import threading
from pathlib import Path
from typing import Sequence

from bge_explorer import settings as settings_module
from bge_explorer.data.chunking import DEFAULT_OVERLAP, DEFAULT_SIZE, Chunks, chunk_documents
from bge_explorer.data.judging import JudgmentStore
from bge_explorer.data.corpus import Corpus, OnError, load_corpus
from bge_explorer.errors import ConfigError, ExplorerError
from bge_explorer.models.embedders import Embedder, Progress
from bge_explorer.models.rerankers import Reranker
from bge_explorer.pickling import ProcessLocal
from bge_explorer.retrieval.bm25_index import ANALYZERS, DEFAULT_ANALYZER, WordTokenizer
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.retrieval.embedding_cache import EmbeddingCache
from bge_explorer.retrieval.rerank import RerankCache
from bge_explorer.retrieval.results import Ranking
from bge_explorer.retrieval.state import IndexState
from bge_explorer.settings import Limits, Settings

STATES_KEPT = 3  # index states of other configurations kept besides the current one
WORDS = WordTokenizer()  # chunks by words when there is no model


class Session(ProcessLocal):
    """Holds what one user built (see the module docstring)."""

    _process_local = {"_lock": lambda self: threading.RLock()}

    def __init__(self, limits: Limits | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or settings_module.current()
        self.limits = limits or self.settings.limits
        self.corpus: Corpus | None = None
        self.cache = EmbeddingCache(self._cache_budget())
        self.rerank_cache = RerankCache()
        self.judgments = JudgmentStore()  # grades the user gives in place, keyed by (query text, document id)
        self.current: IndexState | None = None
        self.config: RetrievalConfig | None = None  # how ``current`` was built (model, chunking)
        self._states: collections.OrderedDict[tuple, IndexState] = collections.OrderedDict()
        self._lock = threading.RLock()


    def _cache_budget(self) -> int:
        return int(self.limits.max_session_mb * 2**20 / 2)  # half the session's memory for cached encodings

    def memory_bytes(self) -> int:
        """What this session keeps: the corpus text, cached encodings, and every index state's parts."""
        with self._lock:
            states = {id(s): s for s in [self.current, *self._states.values()] if s is not None}
            corpus = self.corpus
        text = int(corpus.documents["text"].str.len().sum()) if corpus is not None else 0
        return text + self.cache.nbytes + sum(sum(s.memory().values()) for s in states.values())

    # -- corpus ------------------------------------------------------------------------------------------

    def load_corpus(self, paths: Sequence[str | Path], *, on_error: OnError = "raise", **options) -> Corpus:
        """Read files (see :func:`bge_explorer.data.corpus.load_corpus`); the previous index is dropped."""
        self.limits.check_files(paths)
        return self.set_corpus(load_corpus(paths, on_error=on_error, max_chunks=self.limits.max_chunks, **options))

    def set_corpus(self, corpus: Corpus) -> Corpus:
        with self._lock:
            self.corpus, self.current, self.config = corpus, None, None
            self._states.clear()
        return corpus

    def child(self, corpus: Corpus) -> Session:
        """A session over another corpus sharing this one's caches and settings (its states are its own)."""
        other = Session(self.limits, self.settings)
        other.cache, other.rerank_cache = self.cache, self.rerank_cache
        other.set_corpus(corpus)
        return other

    def close(self) -> None:
        """Drop the corpus, states and caches (the session's memory)."""
        with self._lock:
            self.corpus, self.current, self.config = None, None, None
            self._states.clear()
            self.cache, self.rerank_cache = EmbeddingCache(self._cache_budget()), RerankCache()
            self.judgments = JudgmentStore()

    # -- chunks and index states ----------------------------------------------------------------------------

    def chunk(self, tokenizer, chunk_size: int | None, overlap: int) -> Chunks:
        """The corpus's chunks under the chunk limit (see :func:`chunk_documents`); the session is unchanged.

        Raises ExplorerError without a corpus or when every chunk is empty, LimitError past the chunk limit.
        """
        corpus = self.corpus
        if corpus is None:
            raise ExplorerError("Load a corpus first.")
        chunks = chunk_documents(corpus.documents, tokenizer, chunk_size, overlap, max_chunks=self.limits.max_chunks)
        if len(chunks) == 0:
            raise ExplorerError("The corpus has no text to index: every chunk was empty.")
        self.limits.check_chunks(len(chunks))
        return chunks

    def state(self, embedder: Embedder | None, chunk_size: int | None, overlap: int, *,
              tokenizer=None, bm25: str = DEFAULT_ANALYZER, index: str = "faiss-flat") -> IndexState:
        """The index state of the corpus under ``embedder`` (None: BM25 only), chunking and BM25 analyzer, from
        the recent ones or new. ``tokenizer`` chunks (default: the embedder's; without one, words)."""
        tokenizer = tokenizer or (embedder.tokenizer if embedder is not None else WORDS)
        overlap = overlap if chunk_size else 0
        with self._lock:
            corpus = self.corpus
            key = (id(corpus), embedder.cache_key if embedder is not None else None, id(tokenizer), chunk_size,
                   overlap, bm25, index)
            if self.current is not None and self.current.key == key:
                return self.current
            if key in self._states:
                self._states.move_to_end(key)
                return self._states[key]
        chunks = self.chunk(tokenizer, chunk_size, overlap)
        state = IndexState(chunks, embedder, self.cache, chunk_size=chunk_size, overlap=overlap,
                           bm25_settings=ANALYZERS[bm25], previous=self._all_states, key=key, limits=self.limits,
                           index=index)
        with self._lock:
            if self.corpus is corpus:
                self._states[key] = state
                while len(self._states) > STATES_KEPT:
                    self._states.popitem(last=False)
        return state

    def states(self) -> list[IndexState]:
        """The current index state and the recent ones this session keeps (other models or chunkings)."""
        return self._all_states()

    def _all_states(self) -> list[IndexState]:
        with self._lock:
            return [s for s in [self.current, *self._states.values()] if s is not None]

    def state_for(self, config: RetrievalConfig, progress: Progress | None = None) -> IndexState:
        """The index state a configuration runs on: its model (loaded once per process) and chunking, with the
        parts of its first-stage modes built. Raises ConfigError when the model's identity differs from
        ``config.revision``."""
        embedder = self.embedder_for(config)
        scorer = embedder if config.needs_model else None
        state = self.state(scorer, config.chunk_size, config.overlap,
                           tokenizer=embedder.tokenizer if embedder is not None else None, bm25=config.bm25,
                           index=config.index)
        if scorer is not None and "dense" in scorer.produces:
            state.part("dense", progress)  # the build users wait for; M3's lexical weights come in the same pass
        return state

    def embedder_for(self, config: RetrievalConfig) -> Embedder | None:
        """The configuration's embedding model: None when no mode uses one and nothing is chunked by its tokenizer
        (BM25 alone over whole documents loads no model)."""
        if config.model is None or not (config.needs_model or config.chunk_size):
            return None
        from bge_explorer.models.loading import load_embedder

        embedder = load_embedder(config.model, pooling=config.pooling, model_class=config.model_class,
                                 backend=config.backend, precision=config.precision)
        if config.revision and embedder.identity != config.revision:
            raise ConfigError("revision", f"the configuration was made with {config.model} at {config.revision}, "
                                          f"but the model found has identity {embedder.identity}")
        return embedder

    def reranker(self, config: RetrievalConfig) -> Reranker:
        from bge_explorer.models.loading import load_reranker

        return load_reranker(config.reranker, backend=config.backend, precision=config.precision)

    # -- the user's own index ---------------------------------------------------------------------------------

    def build_index(self, embedder: Embedder, chunk_size: int | None = DEFAULT_SIZE, overlap: int = DEFAULT_OVERLAP,
                    progress: Progress | None = None) -> Chunks:
        """Chunk with the model's tokenizer, embed (cached passages are not re-encoded) and make it ``current``."""
        state = self.state(embedder, chunk_size, overlap)
        state.part("dense", progress)
        self._make_current(state, RetrievalConfig(model=embedder.spec.name, pooling=embedder.spec.pooling,
                                                  model_class=embedder.spec.model_class, backend=embedder.backend,
                                                  precision=embedder.precision if embedder.precision != "fp16"
                                                  else "auto",
                                                  chunk_size=chunk_size, overlap=overlap))
        return state.chunks

    def chunk_only(self, tokenizer=None, chunk_size: int | None = None, overlap: int = 0) -> Chunks:
        """Chunk without a model, for BM25-only search. ``tokenizer`` None splits on whitespace (chunk size in
        words); ``chunk_size`` None keeps one chunk per document."""
        state = self.state(None, chunk_size, overlap, tokenizer=tokenizer)
        self._make_current(state, RetrievalConfig(model=None, modes=("bm25",), chunk_size=chunk_size,
                                                  overlap=overlap if chunk_size else 0))
        return state.chunks

    def _make_current(self, state: IndexState, config: RetrievalConfig) -> None:
        with self._lock:
            self._states.pop(state.key, None)
            if self.current is not None and self.current is not state:
                self._states[self.current.key] = self.current
                while len(self._states) > STATES_KEPT:
                    self._states.popitem(last=False)
            self.current, self.config = state, config

    def index_state(self) -> IndexState:
        if self.current is None:
            raise ExplorerError("Build the index first.")
        return self.current

    @property
    def chunks(self) -> Chunks | None:
        return self.current.chunks if self.current is not None else None

    @property
    def embedder(self) -> Embedder | None:
        return self.current.embedder if self.current is not None else None

    @property
    def vectors(self):
        return self.current.vectors if self.current is not None else None

    def search(self, query: str, config: RetrievalConfig | None = None, *,
               rerank_progress: Progress | None = None) -> Ranking:
        """One query on the current index. ``config`` (default: how the index was built) gives the instruction,
        modes, fusion, weights, k, reranker and top n; its model and chunking fields are those of the index."""
        from bge_explorer.retrieval.pipeline import retrieve

        state = self.index_state()
        if not query.strip():
            raise ExplorerError("Type a query.")
        return retrieve(self, config or self.config, [query], state=state, rerank_progress=rerank_progress)[0]
