"""OpenVINO backend: passage throughput of every path vs bare FlagEmbedding fp32, in one process; ``--guard`` also
runs the quality guard (SciFact nDCG@10 against torch fp32) and stores it for ``--precision auto``.

    python bench/openvino_throughput.py [--docs 640] [--model all-MiniLM-L6-v2] [--rounds 2] [--guard]

Each path's time is the best of --rounds over the same SciFact passages, after a warm-up batch; the first load of an
OpenVINO path converts (and for int8 calibrates) the model into the cache folder, which is not timed. Ratios are bare
FlagEmbedding fp32 time / path time (higher is faster); cosines are against bare fp32. Check ``uptime`` first:
figures taken while other jobs share the cores are off by up to 2.5x. With --guard (a few minutes: the whole
SciFact test split is embedded once per path) the results go to the cache folder's guard/results.json.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from FlagEmbedding import FlagModel

from bge_explorer.data.qrels import load_beir
from bge_explorer.evaluation import guard
from bge_explorer.models.backends import cpu_signature
from bge_explorer.models.loading import load_embedder

SCIFACT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "scifact")
PATHS = [("torch", "fp32"), ("torch", "bf16"), ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=guard.SAMPLE)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data", default=SCIFACT, help="a BEIR SciFact folder")
    parser.add_argument("--guard", action="store_true", help="also SciFact nDCG@10 per path, stored for auto")
    args = parser.parse_args()

    benchmark = load_beir(args.data)
    passages = guard.sample_passages(benchmark, args.docs)
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"{args.model}: {len(passages)} SciFact passages; torch threads {torch.get_num_threads()}; load average "
          f"{load} at start; CPU {cpu_signature()}")

    fp32 = load_embedder(args.model, precision="fp32")
    bare = FlagModel(fp32.model.model_name_or_path, pooling_method=fp32.spec.pooling, normalize_embeddings=True,
                     use_fp16=False, devices="cpu", batch_size=64, passage_max_length=fp32.spec.max_length)
    bare.encode_corpus(passages[:8], batch_size=64)
    base_time, reference = float("inf"), None
    for _ in range(args.rounds):
        start = time.perf_counter()
        reference = bare.encode_corpus(passages, batch_size=64)
        base_time = min(base_time, time.perf_counter() - start)
    rows = [("bare FlagEmbedding fp32, batch 64", base_time, 1.0, 1.0)]
    for backend, precision in PATHS:
        start = time.perf_counter()
        embedder = load_embedder(args.model, backend=backend, precision=precision)
        loaded = time.perf_counter() - start
        seconds, vectors = guard.timed_vectors(embedder, passages, args.rounds)
        cosines = np.sum(vectors * reference, axis=1)
        rows.append((f"{backend} {embedder.precision}, batch {embedder.batch_size} (load {loaded:.1f} s)", seconds,
                     float(cosines.min()), float(cosines.mean())))

    print(f"{'path':<46}{'seconds':>9}{'passages/s':>12}{'speed-up':>10}{'min cos':>10}{'mean cos':>10}")
    for label, seconds, low, mean in rows:
        print(f"{label:<46}{seconds:>9.2f}{len(passages) / seconds:>12.1f}{base_time / seconds:>10.2f}"
              f"{low:>10.5f}{mean:>10.5f}")

    if args.guard:
        result = guard.measure(benchmark, args.model, sample=args.docs, log=lambda line: print("guard:", line))
        print(f"guard results stored in {result.stored_in}")
    auto = load_embedder(args.model, backend="openvino", precision="auto")
    print(f"--backend openvino --precision auto runs {auto.backend} {auto.precision}: {auto.path_note}")


if __name__ == "__main__":
    main()
