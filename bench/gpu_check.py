"""GPU path check: run on a machine with CUDA. Prints one table.

    python bench/gpu_check.py [--passages 2000] [--vectors 1000000]

- embed throughput fp32 vs fp16 (FlagEmbedding on cuda:0) for random models of bge-small's and
  bge-large's architecture (compute does not depend on weight values), and the engine's fp16 path;
- rerank latency for 20 and 100 pairs with an XLM-RoBERTa-base cross-encoder (bge-reranker-base's shape);
- faiss exact search, GPU vs CPU, 100 queries over --vectors 384-d vectors.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import faiss
import numpy as np
import torch
from FlagEmbedding import FlagModel


from bge_explorer.models import random_models
from bge_explorer.indexes import build
from bge_explorer.models.loading import load_embedder, load_reranker

SCIFACT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "scifact")


def timed(fn, repeat: int = 3) -> float:
    fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=2000)
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--data", default=SCIFACT)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: this check runs on a GPU machine")
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, faiss GPUs: {faiss.get_num_gpus()}")
    path = os.path.join(args.data, "corpus.jsonl")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            passages = [f"{d['title']} {d['text']}" for d in map(json.loads, f)][:args.passages]
    else:
        passages = [" ".join(["retrieval"] * 200)] * args.passages
    work = tempfile.mkdtemp()
    print(f"{'what':<44}{'fp32':>12}{'fp16':>12}{'fp16/fp32':>11}")
    for size in ("bge-small", "bge-large"):
        model_dir = random_models.build(f"{work}/{size}", "encoder", size=size)
        speeds = {}
        for fp16 in (False, True):
            model = FlagModel(model_dir, use_fp16=fp16, devices="cuda:0", batch_size=256)
            speeds[fp16] = len(passages) / timed(lambda: model.encode_corpus(passages, max_length=512), 2)
            model = None  # free the GPU memory before the next load
        engine = load_embedder(model_dir, device="cuda:0")
        engine_speed = len(passages) / timed(lambda: engine.encode_corpus(passages), 2)
        print(f"{size + ' embed, passages/s':<44}{speeds[False]:>12.0f}{speeds[True]:>12.0f}"
              f"{speeds[True] / speeds[False]:>11.2f}")
        print(f"{size + ' engine fp16 embed, passages/s':<44}{'':>12}{engine_speed:>12.0f}")
    reranker_dir = random_models.build(f"{work}/reranker", "reranker", size="xlm-roberta-base")
    reranker = load_reranker(reranker_dir, device="cuda:0")
    for n in (20, 100):
        seconds = timed(lambda: reranker.score("what causes cancer", passages[:n]), 5)
        print(f"{f'rerank {n} pairs (fp16), ms':<44}{'':>12}{seconds * 1000:>12.1f}")
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.vectors, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:100] + 0.01
    cpu = build("faiss-flat", vectors, use_gpu=False)
    gpu = build("faiss-flat", vectors, use_gpu=faiss.get_num_gpus() > 0)
    cpu_s = timed(lambda: cpu.search(queries, 100), 2)
    gpu_s = timed(lambda: gpu.search(queries, 100), 2)
    print(f"{f'faiss 100 queries x {args.vectors:,}, ms (CPU / GPU)':<44}{cpu_s * 1000:>12.1f}{gpu_s * 1000:>12.1f}"
          f"{cpu_s / gpu_s:>11.1f}x" + ("" if gpu.on_gpu else "  (faiss-gpu not installed: both on CPU)"))


if __name__ == "__main__":
    main()
