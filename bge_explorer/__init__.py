"""BGE Explorer: choose and tune a retrieval stack (BGE embedder, query instruction, reranker) on your data.

The engine is plain Python, usable without the UI::

    from bge_explorer import Session, load_embedder, load_reranker
    session = Session()
    session.load_corpus(["assets/sample_corpus.jsonl"])
    session.build_index(load_embedder("all-MiniLM-L6-v2"))
    results = session.search("when was the eiffel tower built", reranker=None)
    print(results.table)
"""
from bge_explorer.evaluation.significance import run_ab
from bge_explorer.models.catalog import CATALOG, ModelSpec, resolve_spec
from bge_explorer.data.chunking import Chunks, chunk_documents
from bge_explorer.data.corpus import Corpus, load_corpus
from bge_explorer.errors import CorpusError, ExplorerError, LimitError, ModelLoadError
from bge_explorer.evaluation.evaluate import EvalConfig, EvaluationResult, evaluate
from bge_explorer.retrieval.hybrid import HybridIndex, HybridResults
from bge_explorer.retrieval.dense_index import DenseIndex
from bge_explorer.models.loading import MODEL_CACHE, load_embedder, load_embedder_with_fallback, load_reranker
from bge_explorer.data.qrels import load_beir
from bge_explorer.retrieval.search import SearchResults, retrieve, search
from bge_explorer.session import Session

__all__ = ["CATALOG", "ModelSpec", "resolve_spec", "Chunks", "chunk_documents", "Corpus", "load_corpus",
           "CorpusError", "ExplorerError", "LimitError", "ModelLoadError", "DenseIndex", "HybridIndex",
           "HybridResults", "MODEL_CACHE", "load_embedder", "load_embedder_with_fallback", "load_reranker",
           "SearchResults", "retrieve", "search", "Session", "EvalConfig", "EvaluationResult", "evaluate", "run_ab",
           "load_beir"]
