"""UMAP fit times for the map at 10k, 50k and 100k chunks on this machine.

    python bench/umap_fit.py [--sizes 10000 50000 100000] [--dim 384]

Synthetic unit vectors (``--dim``, 300 Gaussian clusters, as chunk embeddings of 300 documents), fitted with
:func:`bge_explorer.maps.projection.fit_umap` exactly as the app fits them: cosine, 15 neighbours, seeded
(single-threaded layout, so the map is reproducible). Past ``FIT_SAMPLE`` (50,000) chunks it fits a seeded
sample and places the rest with UMAP's transform; that share is reported apart. A warm-up fit first, so numba's
JIT (cached on disk) is not in the figures. Prints JSON with the load average before and after: run it on a
quiet machine (``uptime``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bge_explorer.maps import projection  # noqa: E402


def vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 unit vectors around 300 random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(300, dim)).astype(np.float32)
    out = centres[rng.integers(0, 300, n)] + 0.35 * rng.normal(size=(n, dim)).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--dim", type=int, default=384)
    args = parser.parse_args()
    load_before = os.getloadavg()
    # numba JIT (or its disk cache) out of the figures: past 4,096 points UMAP takes pynndescent's approximate
    # neighbours, whose functions a smaller warm-up would not compile
    projection.fit_umap(vectors(5_000, args.dim, seed=1))
    rows = []
    for n in args.sizes:
        data = vectors(n, args.dim)
        start = time.perf_counter()
        fitted = projection.fit_umap(data)
        rows.append({"chunks": n, "seconds": round(time.perf_counter() - start, 1),
                     "fitted_on": min(n, projection.FIT_SAMPLE), "note": fitted.note})
        print(json.dumps(rows[-1]), file=sys.stderr)
    print(json.dumps({"dim": args.dim, "cpus": os.cpu_count(), "load_before": load_before,
                      "load_after": os.getloadavg(), "fits": rows}, indent=1))


if __name__ == "__main__":
    main()
