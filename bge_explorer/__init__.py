"""BGE Explorer: choose and tune a retrieval stack (BGE embedder, query instruction, modes, reranker) on your data.

The engine is plain Python, usable without the UI::

    from bge_explorer import RetrievalConfig, Session, load_embedder
    session = Session()
    session.load_corpus(["assets/sample_corpus.jsonl"])
    session.build_index(load_embedder("all-MiniLM-L6-v2"))
    ranking = session.search("when was the eiffel tower built", session.config.with_(modes="dense+bm25"))
    print(ranking.table)

Layers (see docs/architecture.md): ``data`` (corpus, chunking, qrels), ``models`` (catalog, loading,
embedders, rerankers), ``retrieval`` (config, modes, planner, pipeline, results), ``evaluation``,
``maps``; ``app`` (Gradio) and ``cli`` sit on top and the engine imports neither.
"""
from bge_explorer.data.chunking import Chunks, chunk_documents
from bge_explorer.data.corpus import Corpus, load_corpus
from bge_explorer.data.qrels import load_beir
from bge_explorer.errors import ConfigError, CorpusError, ExplorerError, LimitError, ModelLoadError
from bge_explorer.evaluation.evaluate import EvaluationResult, evaluate
from bge_explorer.evaluation.significance import run_ab
from bge_explorer.models.catalog import CATALOG, ModelSpec, resolve_spec
from bge_explorer.models.loading import MODEL_CACHE, load_embedder, load_embedder_with_fallback, load_reranker
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.retrieval.pipeline import retrieve
from bge_explorer.retrieval.results import Ranking
from bge_explorer.session import Session

__all__ = ["CATALOG", "ModelSpec", "resolve_spec", "Chunks", "chunk_documents", "Corpus", "load_corpus",
           "ConfigError", "CorpusError", "ExplorerError", "LimitError", "ModelLoadError", "MODEL_CACHE",
           "load_embedder", "load_embedder_with_fallback", "load_reranker", "RetrievalConfig", "retrieve", "Ranking",
           "Session", "EvaluationResult", "evaluate", "run_ab", "load_beir"]
