"""One user's workspace: corpus, chunks, embeddings and index. Models are shared; nothing else is."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .chunking import DEFAULT_OVERLAP, DEFAULT_SIZE, Chunks, chunk_documents
from .corpus import Corpus, OnError, load_corpus
from .embedder import Embedder, Progress
from .embedding_cache import EmbeddingCache
from .errors import ExplorerError
from .index import DenseIndex
from .limits import Limits
from .reranker import Reranker
from .search import DEFAULT_K, DEFAULT_TOP_N, SearchResults, search


class Session:
    """Holds what one user built. Switching model, chunking or corpus rebuilds only what changed:
    embeddings are looked up in the session's :class:`EmbeddingCache` first."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits.from_env()
        self.corpus: Corpus | None = None
        self.cache = EmbeddingCache()
        self.embedder: Embedder | None = None
        self.chunks: Chunks | None = None
        self.vectors: np.ndarray | None = None
        self.index: DenseIndex | None = None

    def load_corpus(self, paths: Sequence[str | Path], *, on_error: OnError = "raise", **options) -> Corpus:
        """Read files (see :func:`bge_explorer.corpus.load_corpus`); the previous index is dropped."""
        self.limits.check_files(paths)
        return self.set_corpus(load_corpus(paths, on_error=on_error, **options))

    def set_corpus(self, corpus: Corpus) -> Corpus:
        self.corpus, self.chunks, self.vectors, self.index = corpus, None, None, None
        return corpus

    def build_index(self, embedder: Embedder, chunk_size: int | None = DEFAULT_SIZE, overlap: int = DEFAULT_OVERLAP,
                    progress: Progress | None = None) -> Chunks:
        """Chunk with the model's tokenizer, embed (cached chunks are not re-embedded), index."""
        if self.corpus is None:
            raise ExplorerError("Load a corpus first.")
        chunks = chunk_documents(self.corpus.documents, embedder.tokenizer, chunk_size, overlap)
        if len(chunks) == 0:
            raise ExplorerError("The corpus has no text to index: every chunk was empty.")
        self.limits.check_chunks(len(chunks))
        vectors = self.cache.embed(embedder, chunks.passages(), progress)
        self.embedder, self.chunks, self.vectors, self.index = embedder, chunks, vectors, DenseIndex(vectors)
        return chunks

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
