"""The decision a user leaves with: the winning configuration with its evidence, and code that runs it.

:func:`decision` is a mapping (written as YAML or JSON) that ``--config FILE`` reads back: ``config`` (every
field of the :class:`~bge_explorer.retrieval.config.RetrievalConfig`, with the model's identity as
``revision``, so a different model under the same name is refused), the resolved model facts (pooling, max
length, instruction), the metrics with their intervals, and what it was decided on (the query set and a
SHA-256 of its judgments).

:func:`render_code` writes that configuration as a script for FlagEmbedding (``FlagModel`` + ``FlagReranker``:
the same model calls the engine makes, so its top k equals the app's for whole-document configurations;
tested), LangChain (``HuggingFaceBgeEmbeddings`` with the query instruction) or LlamaIndex
(``HuggingFaceEmbedding`` with ``query_instruction``).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from bge_explorer.data.qrels import Judgments
from bge_explorer.errors import ExplorerError
from bge_explorer.retrieval.config import RetrievalConfig

TARGETS = ("flagembedding", "langchain", "llamaindex")


def judgments_digest(judgments: Judgments) -> str:
    """SHA-256 of the judgments (query texts and graded documents, sorted): names what a decision rests on."""
    canonical = sorted((judgments.queries[q], d, int(g)) for q, judged in judgments.qrels.items()
                       for d, g in judged.items())
    return hashlib.sha256(json.dumps(canonical, ensure_ascii=False).encode()).hexdigest()


def decision(config: RetrievalConfig, resolved: Mapping[str, Any], judgments: Judgments,
             metrics: Mapping[str, Any] | None = None, *, baseline: str | None = None,
             vs_baseline: Mapping[str, Any] | None = None) -> dict:
    """The exported decision. ``resolved``: an evaluation's resolved facts (``EvaluationResult.config``: model
    identity, pooling, max length, instruction); ``metrics``: ``{metric: {mean, ci_low, ci_high}}`` or means."""
    identity = resolved.get("model_identity")
    pinned = config.with_(revision=identity) if identity and config.model else config
    return {
        "config": pinned.to_dict(),
        "id": pinned.id,
        "model": {"name": config.model, "identity": identity, "pooling": resolved.get("pooling"),
                  "max_length": resolved.get("max_length"), "precision": resolved.get("precision"),
                  "instruction": resolved.get("instruction")},
        "metrics": dict(metrics or {}),
        "baseline": baseline,
        "vs_baseline": dict(vs_baseline) if vs_baseline else None,
        "decided_on": {"queries": len(judgments.queries), "source": judgments.source,
                       "judgments": sum(len(j) for j in judgments.qrels.values()),
                       "judgments_sha256": judgments_digest(judgments)},
    }


def render_code(config: RetrievalConfig, resolved: Mapping[str, Any], target: str = "flagembedding") -> str:
    """A script running ``config``'s dense retrieval (and reranker) with ``target``'s library. ``resolved`` gives
    what the configuration leaves to the model: pooling, max length and the instruction actually used."""
    if target not in TARGETS:
        raise ExplorerError(f"the code target must be one of {', '.join(TARGETS)}, not {target!r}")
    if not config.model or "dense" not in (config.modes if config.modes != ("hybrid",) else ("dense",)):
        raise ExplorerError("code is rendered for dense retrieval with an embedding model (the configuration "
                            f"has modes {', '.join(config.modes)})")
    facts = dict(model=config.model, instruction=resolved.get("instruction") or "",
                 pooling=resolved.get("pooling") or "cls", max_length=int(resolved.get("max_length") or 512),
                 k=config.k, reranker=config.reranker, top_n=config.top_n, title=config.describe(), id=config.id)
    return {"flagembedding": _flagembedding, "langchain": _langchain, "llamaindex": _llamaindex}[target](**facts)


_CORPUS = '''

def load_corpus(path):
    """A JSONL corpus, one {"_id", "title", "text"} per line -> (ids, passages: title + " " + text)."""
    ids, passages = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                doc = json.loads(line)
                ids.append(str(doc["_id"]))
                passages.append(f"{doc['title']} {doc['text']}" if doc.get("title") else doc["text"])
    return ids, passages
'''


def _flagembedding(*, model, instruction, pooling, max_length, k, reranker, top_n, title, id) -> str:
    rerank_import = ", FlagReranker" if reranker else ""
    rerank_setup = (f"reranker = FlagReranker({reranker!r}, max_length={max_length}, use_fp16=False, "
                    f"devices=\"cpu\")\nTOP_N = {top_n}\n") if reranker else ""
    rerank_step = '''
    pairs = [(query, passages[i]) for i in top[:TOP_N]]
    logits = np.asarray(reranker.compute_score(pairs), dtype=np.float64).reshape(-1)
    order = np.argsort(-logits, kind="stable")
    top = np.concatenate([top[:TOP_N][order], top[TOP_N:]])''' if reranker else ""
    return f'''"""Retrieval configuration {id} ({title}), exported by BGE Explorer: FlagEmbedding."""
import json
import sys

import numpy as np
from FlagEmbedding import FlagModel{rerank_import}

INSTRUCTION = {instruction!r}  # prefixed to every query exactly as written
K = {k}
model = FlagModel({model!r}, query_instruction_for_retrieval=INSTRUCTION or None, query_instruction_format="{{}}{{}}",
                  pooling_method={pooling!r}, normalize_embeddings=True, query_max_length={max_length},
                  passage_max_length={max_length}, use_fp16=False, devices="cpu")
{rerank_setup}{_CORPUS}

def search(query, ids, passages, vectors):
    """The top K (document id, score), reranked when the configuration has a reranker."""
    scores = vectors @ model.encode_queries([query])[0]
    top = np.argsort(-scores, kind="stable")[:K]{rerank_step}
    return [(ids[i], float(scores[i])) for i in top]


if __name__ == "__main__":  # python this.py corpus.jsonl "query" ["another query" ...]
    ids, passages = load_corpus(sys.argv[1])
    vectors = model.encode_corpus(passages)
    for number, query in enumerate(sys.argv[2:]):
        for doc_id, score in search(query, ids, passages, vectors):
            print(number, doc_id, round(score, 6), sep="\\t")
'''


def _langchain(*, model, instruction, pooling, max_length, k, reranker, top_n, title, id) -> str:
    rerank = (f"\n# Reranker: rescore the top {top_n} with {reranker!r} (e.g. FlagEmbedding's FlagReranker or\n"
              "# langchain_community.cross_encoders.HuggingFaceCrossEncoder) and sort by its score.") if reranker else ""
    return f'''"""Retrieval configuration {id} ({title}), exported by BGE Explorer: LangChain."""
import json
import sys

from langchain_community.embeddings import HuggingFaceBgeEmbeddings
from langchain_community.vectorstores import FAISS

embeddings = HuggingFaceBgeEmbeddings(
    model_name={model!r},
    query_instruction={instruction!r},  # prefixed to every query exactly as written
    encode_kwargs={{"normalize_embeddings": True}},
)
embeddings.client.max_seq_length = {max_length}  # pooling of this model: {pooling}
{_CORPUS}

if __name__ == "__main__":
    ids, passages = load_corpus(sys.argv[1])
    store = FAISS.from_texts(passages, embeddings, metadatas=[{{"id": i}} for i in ids])
    for doc, score in store.similarity_search_with_score(sys.argv[2], k={k}):
        print(doc.metadata["id"], score, sep="\\t"){rerank}
'''


def _llamaindex(*, model, instruction, pooling, max_length, k, reranker, top_n, title, id) -> str:
    rerank = (f"\n# Reranker: llama_index.postprocessor.flag_embedding_reranker.FlagEmbeddingReranker(\n"
              f"#     model={reranker!r}, top_n={top_n}) as a node postprocessor.") if reranker else ""
    return f'''"""Retrieval configuration {id} ({title}), exported by BGE Explorer: LlamaIndex."""
import json
import sys

from llama_index.core import Document, VectorStoreIndex
from llama_index.embeddings.huggingface import HuggingFaceEmbedding

embed_model = HuggingFaceEmbedding(
    model_name={model!r},
    query_instruction={instruction!r},  # prefixed to every query exactly as written
    max_length={max_length}, normalize=True,  # pooling of this model: {pooling} (from its own configuration)
)
{_CORPUS}

if __name__ == "__main__":
    ids, passages = load_corpus(sys.argv[1])
    index = VectorStoreIndex([Document(text=p, doc_id=i) for i, p in zip(ids, passages)], embed_model=embed_model)
    for hit in index.as_retriever(similarity_top_k={k}).retrieve(sys.argv[2]):
        print(hit.node.ref_doc_id, hit.score, sep="\\t"){rerank}
'''
