"""Scale figures in one run: Ray Data vs the single-process embed, and 1M-vector index backends.

    python bench/scale.py [--docs 2000] [--vectors 1000000] [--queries 300] [--backends faiss-flat,...]
                          [--qdrant-max 100000] [--skip-ray] [--out scale.json]

Part 1: the packaged all-MiniLM-L6-v2 (fp32, CPU) embeds the first --docs SciFact documents
(/work/shared/data/scifact, title + text, chunks of 256 tokens) once with the single-process engine
(Session.build_index) and once with `embed --engine ray` on a local Ray of 2 CPU actors; prints the
throughput ratio (Ray / single) and the max abs difference of the vectors, matched by chunk id.

Part 2: --vectors x 384 "real-like" vectors: each is a random one of the SciFact MiniLM chunk vectors of
part 1 plus Gaussian noise (sigma 0.05 per dim, about as far from its source as two paraphrases), re-normalised;
queries are real SciFact test queries embedded with the model's instruction policy (none for MiniLM).
Per backend: build seconds, memory (RSS of this process and its children, before vs after),
single-query search p50/p95 ms and recall@10 against exact FAISS. Qdrant's local mode is capped at
--qdrant-max points (it is a test tool; Qdrant warns past 20,000): the row says at what size it ran.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import tempfile
import time

import numpy as np

from bge_explorer import indexes
from bge_explorer.indexes.parquet import read_shards
from bge_explorer.models.loading import load_embedder
from bge_explorer.scale.ray_embed import embed_corpus
from bge_explorer.session import Session

SCIFACT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "scifact")
BACKENDS = ["faiss-flat", "faiss-hnsw", "faiss-ivfpq", "milvus", "qdrant"]
MODEL = "all-MiniLM-L6-v2"


def rss() -> int:
    """Resident bytes of this process and its children (milvus-lite runs as one)."""
    import psutil

    me = psutil.Process()
    return me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))


def scifact_subset(data: str, docs: int, folder: str) -> str:
    path = os.path.join(folder, "corpus.jsonl")
    with open(os.path.join(data, "corpus.jsonl"), encoding="utf-8") as f, open(path, "w", encoding="utf-8") as out:
        for _, line in zip(range(docs), f):
            out.write(line)
    return path


def ray_vs_single(corpus: str, folder: str) -> tuple[dict, np.ndarray]:
    started = time.perf_counter()
    session = Session()
    session.load_corpus([corpus])
    session.build_index(load_embedder(MODEL, precision="fp32"))
    single_s = time.perf_counter() - started
    chunk_ids, single = session.chunks.table["chunk_id"].tolist(), session.vectors
    out = os.path.join(folder, "shards")
    started = time.perf_counter()
    summary = embed_corpus([corpus], out, MODEL, precision="fp32", workers=2, shard_docs=250)
    ray_s = time.perf_counter() - started
    _, payload, vectors, _ = read_shards(out)
    by_id = dict(zip(payload["chunk_id"], vectors))
    diff = float(np.abs(np.stack([by_id[c] for c in chunk_ids]) - single).max())
    row = {"chunks": len(chunk_ids), "single_s": round(single_s, 1), "ray_s": round(ray_s, 1),
           "ray_over_single_throughput": round(single_s / ray_s, 3), "max_abs_diff": diff,
           "same_chunks": sorted(by_id) == sorted(chunk_ids), "ray_summary": summary.line()}
    print(f"ray vs single: {row}", flush=True)
    return row, single


def queries(data: str, limit: int) -> list[str]:
    with open(os.path.join(data, "qrels", "test.tsv"), encoding="utf-8") as f:
        wanted = {line.split("\t")[0] for line in list(f)[1:]}
    with open(os.path.join(data, "queries.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [r["text"] for r in rows if r["_id"] in wanted][:limit]


def real_like(base: np.ndarray, n: int, seed: int = 0, sigma: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = base[rng.integers(0, len(base), m)] + sigma * rng.standard_normal((m, base.shape[1]), np.float32)
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def bench_backend(name: str, vectors: np.ndarray, qv: np.ndarray, truth: np.ndarray, folder: str) -> dict:
    options = {"uri": os.path.join(folder, f"{name}.db")} if name == "milvus" else \
        {"uri": ":memory:"} if name == "qdrant" else {}
    gc.collect()
    before = rss()
    started = time.perf_counter()
    index = indexes.build(name, vectors, queries=qv, **options)
    build_s = time.perf_counter() - started
    memory = rss() - before
    times = []
    found = []
    for q in qv:
        t = time.perf_counter()
        _, ids = index.search(q[None], 10)
        times.append(time.perf_counter() - t)
        found.append(ids[0])
    row = {"backend": name, "n": len(vectors), "build_s": round(build_s, 1), "memory_mib": round(memory / 2**20),
           "p50_ms": round(1000 * float(np.percentile(times, 50)), 2),
           "p95_ms": round(1000 * float(np.percentile(times, 95)), 2),
           "recall@10": round(indexes.recall_at_k(np.stack(found), truth[:, :10]), 4),
           "params": index.report.get("params") or index.report.get("index_type", "exact")}
    print(row, flush=True)
    index.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--qdrant-max", type=int, default=100_000)
    parser.add_argument("--skip-ray", action="store_true", help="part 2 only (embeds the docs single-process)")
    parser.add_argument("--data", default=SCIFACT)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bench-scale-")
    report: dict = {"machine_load": os.getloadavg()}
    corpus = scifact_subset(args.data, args.docs, folder)
    if args.skip_ray:
        session = Session()
        session.load_corpus([corpus])
        session.build_index(load_embedder(MODEL, precision="fp32"))
        base = session.vectors
    else:
        report["ray"], base = ray_vs_single(corpus, folder)
    embedder = load_embedder(MODEL, precision="fp32")
    qv = embedder.encode_queries(queries(args.data, args.queries), embedder.spec.instruction)
    vectors = real_like(base, args.vectors)
    report["vectors"] = (f"{args.vectors:,} x {base.shape[1]}: SciFact MiniLM chunk vectors ({len(base):,}) + "
                         "N(0, 0.05) noise, re-normalised; queries: SciFact test queries")
    rows = []
    for name in args.backends.split(","):
        n = min(len(vectors), args.qdrant_max) if name == "qdrant" else len(vectors)
        exact = indexes.build("faiss-flat", vectors[:n])
        _, truth = exact.search(qv, 10)
        rows.append(bench_backend(name, vectors[:n], qv, truth, folder))
        del exact
    report["backends"] = rows
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2, default=str)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
