"""CPU fast path: passage embedding throughput of the engine (fp32, bf16, int8) vs bare FlagEmbedding fp32.

    python bench/cpu_throughput.py [--docs 640] [--model all-MiniLM-L6-v2] [--batch-sizes 32 64 128]

All in one process on the same SciFact passages; each variant's time is the best of --rounds,
ratios are bare fp32 time / variant time (higher is faster). Also prints what the time is made
of: tokenisation share and padding overhead of the engine's single length sort vs FlagEmbedding.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import threading
import time

import numpy as np
import torch
from FlagEmbedding import FlagModel


from bge_explorer.models.devices import cpu_has_bf16
from bge_explorer.models.embedders import FlagEmbedder
from bge_explorer.models.loading import load_embedder

SCIFACT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "scifact")


def best_time(fn, rounds: int) -> tuple[float, np.ndarray]:
    best, result = float("inf"), None
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=640)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--data", default=SCIFACT)
    args = parser.parse_args()

    with open(os.path.join(args.data, "corpus.jsonl"), encoding="utf-8") as f:
        docs = [json.loads(line) for _, line in zip(range(args.docs), f)]
    passages = [f"{d['title']} {d['text']}" for d in docs]
    fp32 = load_embedder(args.model, precision="fp32")
    spec = fp32.spec
    bare = FlagModel(fp32.model.model_name_or_path, pooling_method=spec.pooling, normalize_embeddings=True,
                     use_fp16=False, devices="cpu", batch_size=64, passage_max_length=spec.max_length)
    print(f"{args.model}: {len(passages)} SciFact passages, max length {spec.max_length}, torch threads "
          f"{torch.get_num_threads()}, CPU bf16 units: {cpu_has_bf16()}")

    base_time, reference = best_time(lambda: bare.encode_corpus(passages, batch_size=64), args.rounds)
    rows = [("bare FlagEmbedding fp32, batch 64", base_time, 1.0)]

    def variant(label: str, embedder: FlagEmbedder) -> None:
        seconds, vectors = best_time(lambda: embedder.encode_corpus(passages), args.rounds)
        rows.append((label, seconds, float(np.min(np.sum(vectors * reference, axis=1)))))

    variant("engine fp32, batch 64", fp32)
    if cpu_has_bf16():
        for batch_size in args.batch_sizes:
            variant(f"engine bf16 autocast, batch {batch_size}",
                    load_embedder(args.model, precision="bf16", batch_size=batch_size))
    quantized = copy.copy(fp32)
    quantized.model = copy.deepcopy(fp32.model)
    quantized.model.model = torch.ao.quantization.quantize_dynamic(quantized.model.model, {torch.nn.Linear},
                                                                   dtype=torch.qint8)
    quantized._lock = threading.Lock()
    variant("engine int8 dynamic quantisation, batch 64", quantized)

    print(f"{'variant':<46}{'seconds':>9}{'passages/s':>12}{'speed-up':>10}{'min cosine':>12}")
    for label, seconds, cosine in rows:
        print(f"{label:<46}{seconds:>9.2f}{len(passages) / seconds:>12.1f}{base_time / seconds:>10.2f}{cosine:>12.6f}")

    tokenizer = fp32.tokenizer
    start = time.perf_counter()
    lengths = np.array([len(x) for x in tokenizer(passages, truncation=True, max_length=spec.max_length)["input_ids"]])
    tokenise = time.perf_counter() - start
    ordered = np.sort(lengths)[::-1]
    padded = sum(ordered[i] * len(ordered[i:i + 64]) for i in range(0, len(ordered), 64))
    print(f"tokenisation {tokenise:.2f} s ({tokenise / base_time:.1%} of bare fp32); {lengths.sum():,} tokens, "
          f"padding adds {padded / lengths.sum() - 1:.1%} with one length sort at batch 64")


if __name__ == "__main__":
    main()
