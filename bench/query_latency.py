"""Query latency on the CPU: query -> retrieved top 100, and -> reranked top 20, per backend and precision.

    python bench/query_latency.py [--queries 10] [--chunks 10000] [--paths torch:fp32 torch:bf16 openvino:bf16]

Retrieval: the real all-MiniLM-L6-v2 embeds each SciFact query; the index holds --chunks unit
vectors (random: exact search costs the same whatever the values). Reranking: a cross-encoder of
bge-reranker-base's architecture (XLM-RoBERTa base, random weights, real WordPiece vocabulary)
rescores each query's BM25 top 20 of 2,000 SciFact abstracts (about 320 tokens each with the query),
streamed as the app does (:func:`~bge_explorer.retrieval.pipeline.rerank_steps`, a fresh score cache per
query): "first rows" is the time to the first reranked batch, "all" to the last. Prints p50 and p95 in ms for each
``--paths`` entry (backend:precision, the embedder's and the cross-encoder's; OpenVINO converts on first load,
untimed; int8 speed only: the guard measures embedders, not this random-weight cross-encoder).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np


from bge_explorer.models import random_models
from bge_explorer.models.loading import load_embedder, load_reranker
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.indexes import build
from bge_explorer.retrieval.pipeline import FIRST_RERANK_STEP, rerank_steps
from bge_explorer.retrieval.rerank import RerankCache
from bge_explorer.session import Session

SCIFACT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "scifact")


def read_jsonl(path: str, limit: int | None = None) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for i, line in enumerate(f) if limit is None or i < limit]


def percentiles(samples: list[float]) -> str:
    return f"p50 {np.percentile(samples, 50) * 1000:7.1f} ms   p95 {np.percentile(samples, 95) * 1000:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--top-n", type=int, default=20)
    parser.add_argument("--data", default=SCIFACT)
    parser.add_argument("--paths", nargs="+", default=["torch:fp32", "torch:bf16", "openvino:bf16"],
                        metavar="BACKEND:PRECISION")
    parser.add_argument("--first", type=int, default=FIRST_RERANK_STEP, help="pairs in the first streamed batch")
    args = parser.parse_args()

    queries = [q["text"] for q in read_jsonl(os.path.join(args.data, "queries.jsonl"), args.queries)]
    docs = read_jsonl(os.path.join(args.data, "corpus.jsonl"), 2000)
    corpus = os.path.join(tempfile.mkdtemp(), "scifact-2000.jsonl")
    with open(corpus, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(d) + "\n" for d in docs)
    session = Session()
    session.load_corpus([corpus])
    session.chunk_only()  # one chunk per abstract, BM25 first stage: the candidates a user would rerank
    bm25 = RetrievalConfig(model=None, modes=("bm25",), chunk_size=None, k=args.top_n)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.chunks, 384)).astype(np.float32)
    index = build("faiss-flat", vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    reranker_dir = random_models.build(tempfile.mkdtemp() + "/xlm-r-base-reranker", "reranker",
                                       size="xlm-roberta-base")
    print(f"{len(queries)} SciFact queries, {args.chunks:,} chunks, rerank the BM25 top {args.top_n} of 2,000 "
          "SciFact abstracts with an XLM-RoBERTa-base cross-encoder, streamed")
    for path in args.paths:
        backend, precision = path.split(":")
        embedder = load_embedder("all-MiniLM-L6-v2", backend=backend, precision=precision)
        reranker = load_reranker(reranker_dir, backend=backend, precision=precision)
        index.search(embedder.encode_queries(queries[:2]), 100)  # warm up
        reranker.score(queries[0], [d["text"] for d in docs[:2]])
        retrieval, first, total = [], [], []
        for query in queries:
            start = time.perf_counter()
            index.search(embedder.encode_queries([query]), 100)
            retrieval.append(time.perf_counter() - start)
            ranking = session.search(query, bm25)
            start = time.perf_counter()
            for i, _ in enumerate(rerank_steps(ranking, reranker, args.top_n, RerankCache(), args.first)):
                if i == 0:
                    first.append(time.perf_counter() - start)
            total.append(time.perf_counter() - start)
        print(f"{path}  retrieval top 100: {percentiles(retrieval)}   rerank top {args.top_n}, first rows: "
              f"{percentiles(first)}   all: {percentiles(total)}", flush=True)


if __name__ == "__main__":
    main()
