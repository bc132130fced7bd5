"""The quality guard of the fast paths: measured per model on this CPU, stored where ``auto`` reads it.

For each path (backend, precision) of one model: the min and mean cosine of its vectors to torch fp32's over the
first ``sample`` SciFact passages (title and text; 640 by default), the seconds it took to embed them, and the
nDCG@10 of the whole SciFact test split (5,183 abstracts, 300 queries, whole documents, no instruction) against
torch fp32's. A path passes with min cosine >= :data:`~bge_explorer.models.backends.MIN_COSINE` (0.99) and nDCG@10
within :data:`~bge_explorer.models.backends.NDCG_TOLERANCE` (0.003) of fp32's. :func:`measure` stores the results
(:func:`~bge_explorer.models.backends.record_guard`); ``--backend openvino --precision auto`` then uses int8 only
where it passed, and no path that failed.
"""
from __future__ import annotations

import dataclasses
import datetime
import time
from typing import Callable, Sequence

import numpy as np

from bge_explorer.data.qrels import Benchmark
from bge_explorer.evaluation.evaluate import evaluate
from bge_explorer.models.backends import GuardResult, record_guard
from bge_explorer.models.catalog import OFFLINE_MODEL
from bge_explorer.models.embedders import Embedder
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.session import Session

PATHS: tuple[tuple[str, str], ...] = (("openvino", "int8"), ("openvino", "bf16"), ("openvino", "fp32"),
                                      ("torch", "bf16"))
SAMPLE = 640


@dataclasses.dataclass
class Guard:
    """The figures of one guard run: torch fp32's nDCG@10 and seconds, each path's result, the file they went to."""

    reference_ndcg: float
    reference_seconds: float
    results: list[GuardResult]
    stored_in: str | None


def sample_passages(benchmark: Benchmark, n: int = SAMPLE) -> list[str]:
    """The first ``n`` documents of the corpus as "title text" (the text alone where there is no title)."""
    docs = benchmark.corpus.documents.head(n)
    return [f"{title} {text}".strip() for title, text in zip(docs["title"].fillna(""), docs["text"])]


def timed_vectors(embedder: Embedder, passages: Sequence[str], rounds: int = 1) -> tuple[float, np.ndarray]:
    """(best seconds of ``rounds``, (n, dim) vectors) for ``passages``, after one small warm-up batch (OpenVINO
    compiles its kernels on the first inference)."""
    embedder.encode(list(passages[:8]))
    best, vectors = float("inf"), np.empty(0)
    for _ in range(rounds):
        start = time.perf_counter()
        vectors = embedder.encode(list(passages))["dense"]
        best = min(best, time.perf_counter() - start)
    return best, vectors


def measure(benchmark: Benchmark, model: str = OFFLINE_MODEL, paths: Sequence[tuple[str, str]] = PATHS,
            sample: int = SAMPLE, store: bool = True, log: Callable[[str], None] = lambda line: None) -> Guard:
    """Run the guard on ``benchmark`` (SciFact's test split) for ``model`` and each (backend, precision) path,
    against torch fp32; ``store`` records the results for ``auto``. ``log`` gets one line per path as it ends."""
    session = Session()
    session.set_corpus(benchmark.corpus)
    passages = sample_passages(benchmark, sample)
    base = RetrievalConfig(model=model, backend="torch", precision="fp32", instruction="", chunk_size=None)

    def run(config: RetrievalConfig) -> tuple[Embedder, float, np.ndarray, float]:
        embedder = session.embedder_for(config)
        seconds, vectors = timed_vectors(embedder, passages)
        ndcg = evaluate(session, benchmark.judgments, config).means()["ndcg@10"]
        return embedder, seconds, vectors, ndcg

    reference, reference_seconds, reference_vectors, reference_ndcg = run(base)
    log(f"torch fp32: nDCG@10 {reference_ndcg:.5f}, {reference_seconds:.1f} s for {len(passages)} passages")
    results = []
    for backend, precision in paths:
        embedder, seconds, vectors, ndcg = run(base.with_(backend=backend, precision=precision))
        cosines = np.sum(vectors * reference_vectors, axis=1)
        results.append(GuardResult(backend, precision, float(cosines.min()), float(cosines.mean()), float(ndcg),
                                   float(reference_ndcg), float(seconds), len(passages), embedder.versions,
                                   datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")))
        log(f"{backend} {precision}: {'passed' if results[-1].passed else 'FAILED'}, {results[-1].summary()}")
    stored = record_guard(reference.spec, reference.identity, results) if store else None
    return Guard(float(reference_ndcg), float(reference_seconds), results, stored)
