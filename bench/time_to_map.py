"""Time to map: from "build index" to a usable UMAP map, first map of the process included.

    python bench/time_to_map.py [--docs 500 2000] [--model all-MiniLM-L6-v2] [--warm-first]
                                [--backend torch|openvino] [--precision auto]

Each corpus size runs in a fresh process, as a user's first map would: the process starts UMAP's
JIT warm-up in the background at start (as app.py does), loads the model (timed apart: "model load s";
the app loads it at start, before it serves), then the clock starts:
chunk (default 256 tokens, 32 overlap) and embed the first N SciFact documents, PCA preview,
UMAP fit. The peer figures are RAGxplorer's with the same MiniLM model on this kind of machine.
By default the warm-up still runs while the corpus is embedded (a user who builds the moment the app
is up); ``--warm-first`` waits for it first (a user who arrives once the app has been up ~30 s).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


SCIFACT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "scifact")
PEER_SECONDS = {500: (65, 74), 2000: (241, 306)}  # RAGxplorer, 500 docs (1,084 chunks), 2,000 docs (4,357)


def one_run(docs: int, model: str, data: str, warm_first: bool, backend: str, precision: str) -> dict:
    """Runs in its own process: returns the timings of one build -> map."""
    from bge_explorer.maps import projection
    from bge_explorer.data.corpus import load_corpus
    from bge_explorer.models.loading import load_embedder
    from bge_explorer.session import Session

    warming = projection.warm_up(background=True)
    if warm_first:
        warming.join()
    loading = time.perf_counter()
    embedder = load_embedder(model, backend=backend, precision=precision)
    loaded = time.perf_counter()
    corpus = load_corpus([os.path.join(data, "corpus.jsonl")])
    corpus.documents = corpus.documents.iloc[:docs].reset_index(drop=True)
    session = Session()
    session.set_corpus(corpus)
    start = time.perf_counter()
    chunks = session.build_index(embedder)
    embedded = time.perf_counter()
    store = projection.MapStore()
    key = projection.vectors_key(session.vectors, embedder.cache_key)
    store.start_umap(key, session.vectors)
    store.pca(key, session.vectors)
    pca = time.perf_counter()
    umap_map = store.umap(key, session.vectors)
    done = time.perf_counter()
    return dict(docs=docs, chunks=len(chunks), precision=f"{embedder.backend} {embedder.precision}",
                model_load=loaded - loading,
                embed=embedded - start, pca=pca - embedded, umap=done - embedded, total=done - start,
                kind=umap_map.kind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--data", default=SCIFACT)
    parser.add_argument("--warm-first", action="store_true", help="start the clock after UMAP's JIT warm-up")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: run one size in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one, args.model, args.data, args.warm_first, args.backend, args.precision)))
        return
    print(f"{'docs':>6}{'chunks':>8}{'model load s':>14}{'embed s':>9}{'PCA after embed s':>19}{'UMAP after embed s':>20}"
          f"{'build->map s':>14}{'peer s':>10}{'peer/ours':>11}")
    for docs in args.docs:
        command = [sys.executable, __file__, "--one", str(docs), "--model", args.model, "--data", args.data,
                   "--backend", args.backend, "--precision", args.precision]
        out = subprocess.run(command + ["--warm-first"] * args.warm_first, capture_output=True, text=True,
                             check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        low, high = PEER_SECONDS.get(docs, (float("nan"),) * 2)
        print(f"{r['docs']:>6}{r['chunks']:>8}{r['model_load']:>14.1f}{r['embed']:>9.1f}{r['pca']:>19.3f}{r['umap']:>20.1f}"
              f"{r['total']:>14.1f}{f'{low}-{high}':>10}{low / r['total']:>8.1f}-{high / r['total']:.1f}x"
              f"   ({r['precision']}, {r['kind']})")


if __name__ == "__main__":
    main()
