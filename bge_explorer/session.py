"""One user's workspace: corpus, chunks, embeddings and index. Models are shared; nothing else is."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from bge_explorer.data.chunking import DEFAULT_OVERLAP, DEFAULT_SIZE, Chunks, chunk_documents
from bge_explorer.data.corpus import Corpus, OnError, load_corpus
from bge_explorer.models.embedders import Embedder, M3Embedder, Progress
from bge_explorer.retrieval.embedding_cache import EmbeddingCache
from bge_explorer.errors import ExplorerError
from bge_explorer.retrieval.hybrid import HybridIndex, HybridResults, LexicalCache
from bge_explorer.retrieval.dense_index import DenseIndex
from bge_explorer import settings
from bge_explorer.settings import Limits
from bge_explorer.models.rerankers import Reranker
from bge_explorer.retrieval.search import DEFAULT_K, DEFAULT_TOP_N, SearchResults, search


class Session:
    """Holds what one user built. Switching model, chunking or corpus rebuilds only what changed:
    embeddings are looked up in the session's :class:`EmbeddingCache` first."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or settings.current().limits
        self.corpus: Corpus | None = None
        self.cache = EmbeddingCache()
        self.embedder: Embedder | None = None
        self.chunks: Chunks | None = None
        self.vectors: np.ndarray | None = None
        self.index: DenseIndex | None = None
        self.lexical_cache = LexicalCache()  # M3 lexical weights, like ``cache`` for dense vectors
        self._hybrid: HybridIndex | None = None

    def load_corpus(self, paths: Sequence[str | Path], *, on_error: OnError = "raise", **options) -> Corpus:
        """Read files (see :func:`bge_explorer.data.corpus.load_corpus`); the previous index is dropped."""
        self.limits.check_files(paths)
        return self.set_corpus(load_corpus(paths, on_error=on_error, **options))

    def set_corpus(self, corpus: Corpus) -> Corpus:
        self.corpus, self.chunks, self.vectors, self.index = corpus, None, None, None
        return corpus

    def build_index(self, embedder: Embedder, chunk_size: int | None = DEFAULT_SIZE, overlap: int = DEFAULT_OVERLAP,
                    progress: Progress | None = None) -> Chunks:
        """Chunk with the model's tokenizer, embed (cached chunks are not re-embedded), index."""
        chunks = self.chunk(embedder.tokenizer, chunk_size, overlap)
        vectors = self.embed_chunks(embedder, chunks, progress)
        self.embedder, self.chunks, self.vectors, self.index = embedder, chunks, vectors, DenseIndex(vectors)
        return chunks

    def chunk(self, tokenizer, chunk_size: int | None, overlap: int) -> Chunks:
        """The corpus's chunks under the chunk limit (see :func:`chunk_documents`); the session is unchanged.

        Raises ExplorerError without a corpus or when every chunk is empty, LimitError past the chunk limit.
        """
        if self.corpus is None:
            raise ExplorerError("Load a corpus first.")
        chunks = chunk_documents(self.corpus.documents, tokenizer, chunk_size, overlap,
                                 max_chunks=self.limits.max_chunks)
        if len(chunks) == 0:
            raise ExplorerError("The corpus has no text to index: every chunk was empty.")
        self.limits.check_chunks(len(chunks))
        return chunks

    def embed_chunks(self, embedder: Embedder, chunks: Chunks, progress: Progress | None = None) -> np.ndarray:
        """(n,) chunks -> (n, dim) vectors from the session's cache, encoding only new passages. For BGE-M3 the
        one encoding pass also keeps the lexical weights, so sparse search later encodes nothing."""
        passages = chunks.passages()
        if isinstance(embedder, M3Embedder):
            self.lexical_cache.weights(embedder, passages, progress, self.cache)
        return self.cache.embed(embedder, passages, progress)

    def require_index(self) -> tuple[Embedder, Chunks, DenseIndex]:
        if self.index is None or self.embedder is None or self.chunks is None:
            raise ExplorerError("Build the index first.")
        return self.embedder, self.chunks, self.index

    def search(self, query: str, *, instruction: str | None = None, k: int = DEFAULT_K,
               reranker: Reranker | None = None, top_n: int = DEFAULT_TOP_N) -> SearchResults:
        """Search the index; ``instruction=None`` uses the model's default query instruction."""
        embedder, chunks, index = self.require_index()
        if not query.strip():
            raise ExplorerError("Type a query.")
        self.limits.check_query(query, k)
        if instruction is None:
            instruction = embedder.spec.instruction
        return search(embedder, index, chunks, query, instruction=instruction, k=k, reranker=reranker, top_n=top_n)

    # -- hybrid retrieval (see bge_explorer.retrieval.hybrid) ------------------------------------------------

    def chunk_only(self, tokenizer=None, chunk_size: int | None = None, overlap: int = 0) -> Chunks:
        """Chunk the corpus without embedding, for BM25-only search. ``tokenizer`` None splits on whitespace
        (chunk size in words); ``chunk_size`` None keeps one chunk per document. Drops any dense index."""
        from bge_explorer.retrieval.bm25_index import WordTokenizer

        chunks = self.chunk(tokenizer or WordTokenizer(), chunk_size, overlap)
        self.embedder, self.chunks, self.vectors, self.index = None, chunks, None, None
        return chunks

    def hybrid(self) -> HybridIndex:
        """The :class:`~bge_explorer.retrieval.hybrid.HybridIndex` of the current chunks, kept while chunks, model and index
        stay the same, so changing mode or weights never re-encodes. A new one (after re-chunking or a model
        change) reuses the session's lexical weights and, for the same model, the ColBERT vectors."""
        if self.chunks is None:
            raise ExplorerError("Build the index first.")
        old = self._hybrid
        if old is None or old.chunks is not self.chunks or old.embedder is not self.embedder or old.index is not self.index:
            new = HybridIndex(self.chunks, self.embedder, self.index, self.vectors, lexical_cache=self.lexical_cache,
                              embedding_cache=self.cache)
            if old is not None and old.colbert_enabled and new.is_m3:
                new.enable_colbert(reuse=old)
            self._hybrid = new
        return self._hybrid

    def hybrid_search(self, query: str, mode: str = "hybrid", *, instruction: str | None = None, k: int = DEFAULT_K,
                      reranker: Reranker | None = None, top_n: int = DEFAULT_TOP_N, **options) -> HybridResults:
        """Search in any mode (dense, sparse, colbert, bm25, hybrid); ``options`` go to
        :meth:`bge_explorer.retrieval.hybrid.HybridIndex.search` (fusion, weights, components, rrf_k)."""
        if not query.strip():
            raise ExplorerError("Type a query.")
        self.limits.check_query(query, k)
        if instruction is None:
            instruction = self.embedder.spec.instruction if self.embedder is not None else ""
        return self.hybrid().search(query, mode, instruction=instruction, k=k, reranker=reranker, top_n=top_n,
                                    **options)
