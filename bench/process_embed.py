"""Whole-process embed: ``bge-explorer embed`` of the first N SciFact documents, fp32 vs the guarded fast path.

    python bench/process_embed.py [--docs 2000] [--model all-MiniLM-L6-v2] [--fast openvino:auto]

Each run is a fresh ``bge-explorer embed`` process (its entry point run by this Python) (imports, model load, chunking at the default
256 tokens, embedding, writing Parquet), timed from its start to its exit; the baseline is ``--precision fp32``
(torch), the other ``--backend``/``--precision`` from ``--fast``. A first, untimed run of the fast path fills the
converted-model cache, as any earlier use would. Prints both wall times and their ratio (fp32 / fast, higher is
faster). Check ``uptime`` first: other jobs on the cores change every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

SCIFACT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "scifact")


ENTRY = "import sys; from bge_explorer.cli.commands import main; sys.exit(main())"


def embed_seconds(corpus: str, model: str, backend: str, precision: str, out: str) -> tuple[float, str]:
    """(wall seconds of one ``embed`` process writing ``out``, the path it says it ran)."""
    command = [sys.executable, "-c", ENTRY, "embed", "--corpus", corpus, "--model", model, "--backend", backend,
               "--precision", precision, "--out", out]
    start = time.perf_counter()
    done = subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    return seconds, next((line for line in done.stderr.splitlines() if line.startswith("model: ")), "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--fast", default="openvino:auto", metavar="BACKEND:PRECISION")
    parser.add_argument("--data", default=SCIFACT)
    args = parser.parse_args()
    fast_backend, fast_precision = args.fast.split(":")
    scratch = tempfile.mkdtemp()
    corpus = os.path.join(scratch, f"scifact-{args.docs}.jsonl")
    with open(os.path.join(args.data, "corpus.jsonl"), encoding="utf-8") as f, \
            open(corpus, "w", encoding="utf-8") as out:
        out.writelines(line for _, line in zip(range(args.docs), f))
    print(f"load average at start {os.getloadavg()[0]:.2f}; {args.docs} SciFact documents, {args.model}")
    embed_seconds(corpus, args.model, fast_backend, fast_precision, os.path.join(scratch, "warm.parquet"))
    fp32, _ = embed_seconds(corpus, args.model, "torch", "fp32", os.path.join(scratch, "fp32.parquet"))
    fast, path = embed_seconds(corpus, args.model, fast_backend, fast_precision, os.path.join(scratch, "fast.parquet"))
    print(path)
    print(json.dumps({"fp32_s": round(fp32, 1), f"{args.fast}_s": round(fast, 1), "ratio": round(fp32 / fast, 2),
                      "load_after": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
