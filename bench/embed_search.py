"""Engine overhead: embed and search with bge_explorer vs bare FlagEmbedding + faiss, in one process.

    python bench/embed_search.py [--docs 1000] [--queries 100] [--model all-MiniLM-L6-v2] [--rounds 2]

Both sides use the same model directory, batch size, max length and precision (fp32 on CPU).
Runs alternate (engine, bare, engine, bare, ...) so drift in machine load hits both; the best
round of each is compared. Prints the ratios engine / bare (1.00 = no overhead).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import faiss
import numpy as np
import pandas as pd
from FlagEmbedding import FlagModel


from bge_explorer.data.corpus import Corpus
from bge_explorer.models.loading import load_embedder
from bge_explorer.session import Session

SCIFACT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "scifact")


def read_jsonl(path: str, limit: int) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for _, line in zip(range(limit), f)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data", default=SCIFACT)
    args = parser.parse_args()

    docs = read_jsonl(os.path.join(args.data, "corpus.jsonl"), args.docs)
    queries = [q["text"] for q in read_jsonl(os.path.join(args.data, "queries.jsonl"), args.queries)]
    frame = pd.DataFrame(dict(doc_id=[d["_id"] for d in docs], title=[d["title"] for d in docs],
                              text=[d["text"] for d in docs], source="scifact", page_starts=None))
    embedder = load_embedder(args.model, precision="fp32")
    spec = embedder.spec
    bare = FlagModel(embedder.model.model_name_or_path, pooling_method=spec.pooling, normalize_embeddings=True,
                     use_fp16=False, devices="cpu", batch_size=embedder.batch_size,
                     passage_max_length=spec.max_length, query_max_length=spec.max_length)
    passages = [f"{d['title']} {d['text']}" if d["title"] else d["text"] for d in docs]

    def engine_embed() -> np.ndarray:
        session = Session()  # fresh session: empty embedding cache, so everything is embedded
        session.set_corpus(Corpus(frame))
        session.build_index(embedder, chunk_size=None)
        return session

    def bare_embed() -> np.ndarray:
        vectors = bare.encode_corpus(passages, batch_size=embedder.batch_size, max_length=spec.max_length)
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors.astype(np.float32))
        return vectors, index

    times = {"engine_embed": [], "bare_embed": [], "engine_search": [], "bare_search": []}
    for _ in range(args.rounds):
        t = time.perf_counter(); session = engine_embed(); times["engine_embed"].append(time.perf_counter() - t)
        t = time.perf_counter(); vectors, index = bare_embed(); times["bare_embed"].append(time.perf_counter() - t)
        t = time.perf_counter()
        for q in queries:
            session.search(q, instruction="", k=100)
        times["engine_search"].append(time.perf_counter() - t)
        t = time.perf_counter()
        for q in queries:
            index.search(bare.encode([q], max_length=spec.max_length).reshape(1, -1).astype(np.float32), 100)
        times["bare_search"].append(time.perf_counter() - t)
    np.testing.assert_allclose(session.vectors, vectors, atol=1e-5)  # same work, same result

    best = {key: min(values) for key, values in times.items()}
    print(f"model {spec.name}, {len(docs)} SciFact documents, {len(queries)} queries, batch {embedder.batch_size}, "
          f"max length {spec.max_length}, fp32, best of {args.rounds} rounds")
    print(f"{'step':<8}{'engine s':>10}{'bare s':>10}{'engine/bare':>13}")
    for step in ("embed", "search"):
        engine, base = best[f"engine_{step}"], best[f"bare_{step}"]
        print(f"{step:<8}{engine:>10.2f}{base:>10.2f}{engine / base:>13.3f}")
    print(f"search per query: engine {best['engine_search'] / len(queries) * 1000:.1f} ms, "
          f"bare {best['bare_search'] / len(queries) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
