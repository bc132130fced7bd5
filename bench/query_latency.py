"""Query latency on the CPU: query -> retrieved top 100, and -> reranked top 20, fp32 and bf16.

    python bench/query_latency.py [--queries 10] [--chunks 10000]

Retrieval: the real all-MiniLM-L6-v2 embeds each SciFact query; the index holds --chunks unit
vectors (random: exact search costs the same whatever the values). Reranking: a cross-encoder of
bge-reranker-base's architecture (XLM-RoBERTa base, random weights, real WordPiece vocabulary)
scores the top 20 SciFact abstracts (about 320 tokens each with the query) for each query. Prints
p50 and p95 in milliseconds.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np


from bge_explorer.models import random_models
from bge_explorer.retrieval.dense_index import DenseIndex
from bge_explorer.models.loading import load_embedder, load_reranker
from bge_explorer.retrieval.search import retrieve

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
    args = parser.parse_args()

    queries = [q["text"] for q in read_jsonl(os.path.join(args.data, "queries.jsonl"), args.queries)]
    docs = read_jsonl(os.path.join(args.data, "corpus.jsonl"), 2000)
    passages = [f"{d['title']} {d['text']}" for d in docs]
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.chunks, 384)).astype(np.float32)
    index = DenseIndex(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    reranker_dir = random_models.build(tempfile.mkdtemp() + "/xlm-r-base-reranker", "reranker",
                                       size="xlm-roberta-base")
    print(f"{len(queries)} SciFact queries, {args.chunks:,} chunks, rerank top {args.top_n} SciFact abstracts "
          f"with an XLM-RoBERTa-base cross-encoder")
    for precision in ("fp32", "bf16"):
        embedder = load_embedder("all-MiniLM-L6-v2", precision=precision)
        reranker = load_reranker(reranker_dir, precision=precision)
        retrieve(embedder, index, queries[:2], "", 100)  # warm up
        reranker.score(queries[0], passages[:2])
        retrieval, total = [], []
        for i, query in enumerate(queries):
            start = time.perf_counter()
            retrieve(embedder, index, [query], "", 100)
            retrieved = time.perf_counter()
            candidates = passages[(i * args.top_n) % len(passages):][:args.top_n]
            reranker.score(query, candidates)
            retrieval.append(retrieved - start)
            total.append(time.perf_counter() - start)
        print(f"{precision}  retrieval top 100: {percentiles(retrieval)}   + rerank top {args.top_n}: "
              f"{percentiles(total)}", flush=True)


if __name__ == "__main__":
    main()
