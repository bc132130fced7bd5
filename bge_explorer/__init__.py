"""BGE Explorer: choose and tune a retrieval stack (BGE embedder, query instruction, reranker) on your data.

The engine is plain Python, usable without the UI::

    from bge_explorer import Session, load_embedder, load_reranker
    session = Session()
    session.load_corpus(["assets/sample_corpus.jsonl"])
    session.build_index(load_embedder("all-MiniLM-L6-v2"))
    results = session.search("when was the eiffel tower built", reranker=None)
    print(results.table)
"""
from .ab import run_ab
from .catalog import CATALOG, ModelSpec, resolve_spec
from .chunking import Chunks, chunk_documents
from .corpus import Corpus, load_corpus
from .errors import CorpusError, ExplorerError, LimitError, ModelLoadError
from .evaluation import EvalConfig, EvaluationResult, evaluate
from .hybrid import HybridIndex, HybridResults
from .index import DenseIndex
from .models import MODEL_CACHE, load_embedder, load_embedder_with_fallback, load_reranker
from .qrels import load_beir
from .search import SearchResults, retrieve, search
from .session import Session

__all__ = ["CATALOG", "ModelSpec", "resolve_spec", "Chunks", "chunk_documents", "Corpus", "load_corpus",
           "CorpusError", "ExplorerError", "LimitError", "ModelLoadError", "DenseIndex", "HybridIndex",
           "HybridResults", "MODEL_CACHE", "load_embedder", "load_embedder_with_fallback", "load_reranker",
           "SearchResults", "retrieve", "search", "Session", "EvalConfig", "EvaluationResult", "evaluate", "run_ab",
           "load_beir"]
