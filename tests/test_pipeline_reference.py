"""Every retrieval mode and fusion against a brute-force reference on a fixed tiny corpus.

The reference scores every chunk with the model's own FlagEmbedding calls (``encode``, M3's
``compute_lexical_matching_score`` and ``colbert_score``) and bm25s, takes each first-stage mode's top k,
pools the candidates, scores them in every mode in play and fuses them by the formulas in
docs/hybrid.md. The pipeline must give the same rows in the same order with the same scores. These
tests were written against the engine before the single pipeline existed and kept green through the move.
"""
from __future__ import annotations

import bm25s
import numpy as np
import pytest
from scipy import stats

from bge_explorer.models.loading import load_embedder
from bge_explorer.session import Session
from conftest import random_corpus

K = 8
QUERIES = ["blood cancer risk in patients", "eiffel tower paris", "the music of the river"]
CASES = [  # (modes, fusion, weights)
    (("dense",), None, None),
    (("sparse",), None, None),
    (("colbert",), None, None),
    (("bm25",), None, None),
    (("dense", "sparse"), "m3", None),
    (("dense", "sparse", "colbert"), "m3", {"dense": 1.0, "sparse": 0.3, "colbert": 1.0}),
    (("dense", "bm25"), "rrf", None),
    (("dense", "sparse", "bm25"), "rrf", {"dense": 2.0, "sparse": 1.0, "bm25": 0.5}),
    (("dense", "bm25"), "weighted", {"dense": 0.7, "bm25": 0.3}),
    (("sparse", "colbert", "bm25"), "weighted", None),
    (("dense", "bm25"), "l2-harmonic", {"dense": 0.7, "bm25": 0.3}),
    (("dense", "sparse", "bm25"), "minmax-geometric", None),
    (("dense", "bm25"), "minmax-harmonic", {"dense": 0.2, "bm25": 0.8}),
    (("sparse", "colbert", "bm25"), "l2-arithmetic", None),
    (("dense", "sparse"), "l2-geometric", {"dense": 1.0, "sparse": 3.0}),
    (("dense", "bm25"), "rank-geometric", {"dense": 2.0, "bm25": 1.0}),
    (("sparse", "bm25"), "rank-harmonic", None),
]
NORMALISE = {  # OpenSearch's normalisation techniques, written out
    "minmax": lambda s: (s - s.min()) / (s.max() - s.min()) if s.max() > s.min() else 0 * s,
    "l2": lambda s: s / np.linalg.norm(s) if np.linalg.norm(s) > 0 else 0 * s,
    "rank": lambda s: 61 / (60 + min_ranks(s)),
}


@pytest.fixture(scope="module")
def session(m3_fp32):
    session = Session()
    session.set_corpus(random_corpus(seed=5, titles=False))
    session.build_index(m3_fp32, chunk_size=None)
    state = session.index_state()
    state.colbert_dtype = "float32"  # exact equality with FlagEmbedding's colbert_score
    state.part("colbert")
    return session


def run(session: Session, query: str, modes, fusion, weights):
    """The engine's ranking for one query: (chunk rows, fused scores, {mode: scores})."""
    config = session.config.with_(modes=modes, fusion=fusion or "rrf", weights=weights, k=K)
    ranking = session.search(query, config)
    return ranking.rows, ranking.score, ranking.scores


def reference_scores(m3, passages: list[str], query: str) -> dict[str, np.ndarray]:
    """Every chunk's score in every mode, straight from FlagEmbedding and bm25s."""
    q = m3.model.encode([query], max_length=m3.spec.max_length, return_dense=True, return_sparse=True,
                        return_colbert_vecs=True)
    p = m3.model.encode(passages, max_length=m3.spec.max_length, return_dense=True, return_sparse=True,
                        return_colbert_vecs=True)
    dense = np.asarray(p["dense_vecs"], np.float64) @ np.asarray(q["dense_vecs"][0], np.float64)
    sparse = np.asarray(m3.model.compute_lexical_matching_score(q["lexical_weights"], p["lexical_weights"]))[0]
    colbert = np.array([float(m3.model.colbert_score(q["colbert_vecs"][0], v)) for v in p["colbert_vecs"]])
    retriever = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    retriever.index(bm25s.tokenize(passages, stopwords="en", show_progress=False), show_progress=False)
    bm25 = np.asarray(retriever.get_scores(bm25s.tokenize([query], stopwords="en", show_progress=False,
                                                          return_ids=False)[0]), np.float64)
    return {"dense": dense, "sparse": sparse, "colbert": colbert, "bm25": bm25}


def top(scores: np.ndarray, k: int, positive_only: bool) -> set[int]:
    order = np.lexsort((np.arange(len(scores)), -scores))
    if positive_only:
        order = order[scores[order] > 0]
    return set(order[:k].tolist())


def min_ranks(scores: np.ndarray) -> np.ndarray:
    return np.array([1 + int(np.sum(scores > s)) for s in scores])


def reference_ranking(all_scores: dict[str, np.ndarray], modes, fusion, weights):
    stages = [m for m in modes if m != "colbert"] or ["dense", "sparse"]  # ColBERT rescores dense + sparse hits
    if "colbert" in modes and not {"dense", "sparse"} & set(stages):
        stages = ["dense", "sparse"] + stages
    pool = set()
    for m in stages:
        pool |= top(all_scores[m], K, positive_only=m != "dense")
    cand = np.array(sorted(pool), dtype=np.int64)
    scores = {m: all_scores[m][cand] for m in modes}
    if len(modes) == 1:
        fused = scores[modes[0]]
    elif fusion == "m3":
        w = {"dense": 0.4, "sparse": 0.2, "colbert": 0.4, **(weights or {})}
        fused = sum(w[m] * scores[m] for m in modes) / sum(w[m] for m in modes)
    elif fusion == "weighted":
        w = {m: (weights or {}).get(m, 1.0) for m in modes}
        norm = {m: (s - s.min()) / (s.max() - s.min()) if s.max() > s.min() else 0 * s for m, s in scores.items()}
        fused = sum(w[m] * norm[m] for m in modes) / sum(w.values())
    elif fusion == "rrf":
        w = {m: (weights or {}).get(m, 1.0) for m in modes}
        fused = sum(w[m] / (60 + min_ranks(scores[m])) for m in modes)
    else:  # normalisation-combination: scipy's weighted means, 0 where a normalised score is not positive
        normalisation, combination = fusion.split("-")
        x = np.stack([NORMALISE[normalisation](scores[m]) for m in modes])
        w = np.broadcast_to(np.array([(weights or {}).get(m, 1.0) for m in modes])[:, None], x.shape)
        positive = (x > 0).all(axis=0)
        safe = np.where(x > 0, x, 1.0)
        fused = {"arithmetic": lambda: np.average(x, axis=0, weights=w),
                 "geometric": lambda: np.where(positive, stats.gmean(safe, axis=0, weights=w), 0.0),
                 "harmonic": lambda: np.where(positive, stats.hmean(safe, axis=0, weights=w), 0.0)}[combination]()
    order = np.lexsort((cand, -fused))[:K]
    return cand[order], fused[order], {m: s[order] for m, s in scores.items()}


@pytest.mark.parametrize("modes,fusion,weights", CASES, ids=lambda c: "+".join(c) if isinstance(c, tuple) else str(c))
def test_every_mode_and_fusion_equals_the_brute_force_reference(session, m3_fp32, modes, fusion, weights):
    passages = session.chunks.passages()
    for query in QUERIES:
        want_rows, want_fused, want_scores = reference_ranking(reference_scores(m3_fp32, passages, query), modes, fusion,
                                                               weights)
        rows, fused, scores = run(session, query, modes, fusion, weights)
        assert rows.tolist() == want_rows.tolist(), (query, modes, fusion)
        np.testing.assert_allclose(fused, want_fused, rtol=1e-5, atol=1e-6)
        for m in modes:
            np.testing.assert_allclose(scores[m], want_scores[m], rtol=1e-5, atol=1e-5)


def test_dense_only_config_gives_the_exact_brute_force_dense_ranking(tiny_encoder, sample_corpus):
    """A non-M3 encoder, chunked: the dense-only configuration is exact cosine search over the chunks."""
    embedder = load_embedder(tiny_encoder, precision="fp32", device="cpu")
    session = Session()
    session.load_corpus([sample_corpus])
    session.build_index(embedder, chunk_size=48, overlap=8)
    passages = session.chunks.passages()
    vectors = np.asarray(embedder.model.encode_corpus(passages, batch_size=16), np.float64)
    instruction = "Represent this: "
    for query in QUERIES:
        q = np.asarray(embedder.model.encode([instruction + query]), np.float64).reshape(-1)
        expected = vectors @ q
        order = np.lexsort((np.arange(len(expected)), -expected))[:K]
        ranking = session.search(query, session.config.with_(instruction=instruction, k=K))
        assert ranking.rows.tolist() == order.tolist()
        np.testing.assert_allclose(ranking.score, expected[order], rtol=1e-5, atol=1e-6)
