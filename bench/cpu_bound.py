"""What bounds CPU speed here: this machine's best matrix-multiply throughput against the work of the CPU targets.

    python bench/cpu_bound.py [--docs 640] [--size 2048] [--seconds 3]

Measures torch's fp32, bf16 and int8 (``torch._int_mm``, the VNNI path OpenVINO's int8 also uses) GEMM throughput (square ``--size`` matrices, as many as fit in ``--seconds``, on
torch's threads), then counts the multiply-adds of two targets from the models' shapes and the real token counts:

- encoding the 640 SciFact passages of the quality guard (title + text, max length 256) with all-MiniLM-L6-v2
  (6 layers, hidden 384, FFN 1536): per token 2 * (4 h^2 + 2 h f) per layer for the projections and FFN, plus
  2 * 2 * L * h per layer for attention scores and values over the passage's L tokens;
- reranking 20 query-passage pairs of ~320 tokens with an XLM-R-base cross-encoder (12 layers, hidden 768, FFN
  3072; bge-reranker-base's shape), same formula.

Prints the FLOPs, the measured GFLOP/s and the shortest time each target could take at that rate, and the floor
of the shipped int8 recipe (its FFN output projections stay fp32: openvino_backend.INT8_KEPT) (a GEMM of
2048 x 2048 is the best case: transformer layers at these shapes run below it). Check ``uptime`` first.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from bge_explorer.data.qrels import load_beir
from bge_explorer.evaluation import guard
from bge_explorer.models.loading import load_embedder

SCIFACT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "scifact")


def gemm_gflops(size: int, dtype: torch.dtype, seconds: float) -> float:
    """Best GFLOP/s of ``size`` x ``size`` matrix products in ``dtype`` over about ``seconds``."""
    if dtype == torch.int8:
        a, b = (torch.randint(-128, 127, (size, size), dtype=dtype) for _ in range(2))
        product = torch._int_mm
    else:
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        product = torch.mm
    product(a, b)  # warm-up
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        product(a, b)
        best = max(best, 2 * size ** 3 / (time.perf_counter() - start) / 1e9)
    return best


def encoder_flops(lengths: list[int], layers: int, hidden: int, ffn: int) -> float:
    """Multiply-add FLOPs of a BERT-style encoder over sequences of these token ``lengths``."""
    per_token = 2 * (4 * hidden * hidden + 2 * hidden * ffn)
    return float(sum(layers * (n * per_token + 2 * 2 * n * n * hidden) for n in lengths))


def ffn_output_flops(lengths: list[int], layers: int, hidden: int, ffn: int) -> float:
    """The FLOPs of the FFN output projections alone (what the int8 recipe leaves unquantised)."""
    return float(sum(layers * n * 2 * hidden * ffn for n in lengths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=guard.SAMPLE)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--data", default=SCIFACT)
    args = parser.parse_args()
    load = os.getloadavg()
    passages = guard.sample_passages(load_beir(args.data), args.docs)
    tokenizer = load_embedder("all-MiniLM-L6-v2", precision="fp32").tokenizer
    lengths = [len(ids) for ids in tokenizer(passages, truncation=True, max_length=256)["input_ids"]]
    work = {"encode 640 passages, all-MiniLM-L6-v2": encoder_flops(lengths, 6, 384, 1536),
            "rerank 20 x 320 tokens, XLM-R base": encoder_flops([320] * 20, 12, 768, 3072)}
    rates = {name: gemm_gflops(args.size, dtype, args.seconds)
             for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("int8", torch.int8))}
    out = {"load_before": load, "threads": torch.get_num_threads(),
           "gemm_gflops": {k: round(v, 1) for k, v in rates.items()},
           "mean_passage_tokens": round(sum(lengths) / len(lengths), 1),
           "work": {name: {"tflop": round(flops / 1e12, 3),
                           **{f"at least s, {k}": round(flops / (v * 1e9), 2) for k, v in rates.items()}}
                    for name, flops in work.items()},
           "load_after": os.getloadavg()}
    kept = ffn_output_flops(lengths, 6, 384, 1536)
    out["encode, shipped int8 recipe: FFN outputs at fp32 peak, the rest at int8 peak, at least s"] = round(
        kept / (rates["fp32"] * 1e9) + (work["encode 640 passages, all-MiniLM-L6-v2"] - kept) / (rates["int8"] * 1e9),
        2)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
