"""Sparse (M3 lexical weight) search over synthetic chunks vs FlagEmbedding's dict loop; memory of each index.

    python bench/sparse_search.py [--chunks 100000] [--vocab 250000] [--queries 200] [--baseline-chunks 2000]

Synthetic data shaped like bge-m3 output: token ids drawn from a Zipf distribution (s=1.1) over the
vocabulary, ~40 distinct tokens per chunk and ~8 per query, weights uniform in [0.01, 0.4].
The baseline is FlagEmbedding's own ``compute_lexical_matching_score`` (a Python dict loop per pair)
over ``--baseline-chunks`` chunks per query, scaled linearly to the full corpus. Also prints the
memory of the sparse CSR index, of ColBERT token vectors per 1k chunks (bge-m3: 1,024 dims) and of
a bm25s index over synthetic text of the same shape, and ColBERT rescoring time for 200 candidates.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


from bge_explorer.retrieval.bm25_index import BM25Index
from bge_explorer.retrieval.colbert_store import ColbertStore, estimate_bytes
from bge_explorer.retrieval.sparse_index import SparseIndex, lexical_matrix


def zipf_ids(rng, rank_to_id: np.ndarray, rows: int, per_row: int, s: float = 1.1) -> list[np.ndarray]:
    """``rows`` sets of distinct token ids, about ``per_row`` each, from a Zipf(s) law over the vocabulary;
    ``rank_to_id`` maps frequency rank to token id (the same for chunks and queries)."""
    vocab = len(rank_to_id)
    cdf = np.cumsum(1.0 / np.arange(1, vocab + 1) ** s)
    cdf /= cdf[-1]
    draws = np.searchsorted(cdf, rng.random((rows, int(per_row * 1.25))))
    return [rank_to_id[np.unique(r)[:per_row]] for r in draws]


def weights_of(rng, ids: list[np.ndarray]) -> list[dict[str, float]]:
    return [dict(zip(map(str, r.tolist()), rng.uniform(0.01, 0.4, len(r)).astype(np.float32))) for r in ids]


def mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def percentiles(times: list[float]) -> str:
    ms = np.asarray(times) * 1000
    return f"p50 {np.percentile(ms, 50):.2f} ms, p95 {np.percentile(ms, 95):.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--vocab", type=int, default=250_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--baseline-chunks", type=int, default=2_000)
    parser.add_argument("--k", type=int, default=100)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    t = time.perf_counter()
    rank_to_id = rng.permutation(args.vocab)  # frequent tokens are not simply the low ids
    chunk_ids = zipf_ids(rng, rank_to_id, args.chunks, 40)
    chunk_weights = weights_of(rng, chunk_ids)
    query_weights = weights_of(rng, zipf_ids(rng, rank_to_id, args.queries, 8))
    print(f"data: {args.chunks:,} chunks x {np.mean([len(r) for r in chunk_ids]):.1f} tokens, vocab {args.vocab:,}, "
          f"{args.queries} queries x {np.mean([len(q) for q in query_weights]):.1f} tokens "
          f"({time.perf_counter() - t:.1f} s to generate)")

    t = time.perf_counter()
    index = SparseIndex(lexical_matrix(chunk_weights, args.vocab))
    print(f"sparse index build: {time.perf_counter() - t:.2f} s; memory {mib(index.nbytes)} "
          f"(chunk-major CSR {mib(index.matrix.data.nbytes + index.matrix.indices.nbytes + index.matrix.indptr.nbytes)}"
          f" + posting lists)")

    for q in query_weights[:5]:
        index.search(q, args.k)  # warm up
    times = []
    for q in query_weights:
        t = time.perf_counter()
        index.search(q, args.k)
        times.append(time.perf_counter() - t)
    hits = np.mean([(index.scores(q) > 0).sum() for q in query_weights])
    print(f"engine sparse search, top {args.k} of {args.chunks:,} ({hits:,.0f} chunks share a token with the "
          f"average query): {percentiles(times)} per query")
    t = time.perf_counter()
    index.scores_many(query_weights)
    print(f"engine batch scoring ({args.queries} queries at once): "
          f"{(time.perf_counter() - t) / args.queries * 1000:.2f} ms per query")

    from FlagEmbedding.inference.embedder.encoder_only.m3 import M3Embedder as FlagM3

    subset = chunk_weights[:args.baseline_chunks]
    scale = args.chunks / len(subset)
    base = []
    for q in query_weights[:20]:
        t = time.perf_counter()
        scores = FlagM3.compute_lexical_matching_score(None, [q], subset)  # uses no model state
        np.argsort(-scores[0])[:args.k]
        base.append((time.perf_counter() - t) * scale)
    check = FlagM3.compute_lexical_matching_score(None, query_weights[:1], subset)[0]
    assert np.allclose(index.scores(query_weights[0])[:len(subset)], check, rtol=1e-5, atol=1e-7)
    print(f"baseline FlagEmbedding dict loop, {len(subset):,} chunks x {scale:g}: {percentiles(base)} per query "
          f"(engine is {np.median(base) / np.median(times):,.0f}x faster at p50; scores agree)")

    # ColBERT: bge-m3 vectors are 1,024-d; typical chunk of 256 tokens + SEP
    dim, tokens = 1024, 257
    for dtype in ("float16", "float32"):
        print(f"colbert token vectors per 1k chunks of {tokens} tokens, {dtype}: "
              f"{mib(estimate_bytes(1000 * tokens, dim, dtype))}")
    vectors = [rng.standard_normal((tokens, dim), dtype=np.float32) for _ in range(300)]
    query = rng.standard_normal((12, dim), dtype=np.float32)
    rows = rng.permutation(300)[:200]
    for dtype in ("float16", "float32"):
        store = ColbertStore(vectors, dtype)
        store.scores(query, rows)
        times = []
        for _ in range(10):
            t = time.perf_counter()
            store.scores(query, rows)
            times.append(time.perf_counter() - t)
        print(f"colbert rescoring of 200 candidates x {tokens} tokens, 12 query tokens, {dtype} store: "
              f"{percentiles(times)}")
    del vectors, store

    # BM25 over synthetic text of the same shape (words named by token id)
    texts = [" ".join(f"w{i}" for i in r) for r in chunk_ids]
    t = time.perf_counter()
    bm25 = BM25Index(texts)
    build = time.perf_counter() - t
    queries = [" ".join(f"w{i}" for i in q) for q in query_weights]
    times = []
    for q in queries:
        t = time.perf_counter()
        bm25.search(q, args.k)
        times.append(time.perf_counter() - t)
    print(f"bm25s index ({args.chunks:,} chunks): build {build:.1f} s, memory {mib(bm25.nbytes)} (scores; vocab dict "
          f"not counted); search {percentiles(times)} per query")
    print(f"dense vectors for comparison ({args.chunks:,} x 1024 float32): {mib(args.chunks * 1024 * 4)}")


if __name__ == "__main__":
    main()
