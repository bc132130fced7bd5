"""Hybrid retrieval against FlagEmbedding's own M3 scoring and bm25s, with the tiny random M3 model (fp32)."""
from __future__ import annotations

import bm25s
import numpy as np
import pytest

from bge_explorer.retrieval import fusion
from bge_explorer.retrieval.colbert_store import ColbertStore, colbert_score
from bge_explorer.errors import ConfigError, ExplorerError
from bge_explorer.models.embedders import DENSE, LEXICAL, MULTIVECTOR
from bge_explorer.models.loading import load_embedder, load_reranker
from bge_explorer.retrieval.explain import explain
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.retrieval.pipeline import retrieve
from bge_explorer.retrieval.state import IndexState
from bge_explorer.session import Session
from conftest import random_corpus
from bge_explorer.retrieval.sparse_index import SparseIndex

rng = np.random.default_rng(11)
QUERIES = ["blood cancer risk in patients", "eiffel tower paris", "the music of the river", "protein gene cell study"]


@pytest.fixture(scope="module")
def m3(m3_fp32):
    return m3_fp32


@pytest.fixture(scope="module")
def session(m3):
    session = Session()
    session.set_corpus(random_corpus(seed=11))
    session.build_index(m3, chunk_size=None)
    return session


@pytest.fixture(scope="module")
def exact(session):
    """An index state of the session's chunks keeping ColBERT vectors in float32, for equality with FlagEmbedding."""
    return IndexState(session.chunks, session.embedder, session.cache, colbert_dtype="float32")


def search(session: Session, query: str, **changes):
    """One query on the session's index with its configuration changed by ``changes`` (modes, fusion, k ...)."""
    return session.search(query, session.config.with_(**changes))


def search_state(session: Session, state: IndexState, query: str, **changes):
    """The same on another index state of the session's corpus."""
    return retrieve(session, session.config.with_(**changes), [query], state=state)[0]


def reference(m3, texts):
    """Lexical weights and ColBERT vectors straight from BGEM3FlagModel.encode."""
    out = m3.model.encode(list(texts), max_length=m3.spec.max_length, return_dense=True, return_sparse=True,
                          return_colbert_vecs=True)
    return out["lexical_weights"], out["colbert_vecs"]


def test_sparse_scores_equal_compute_lexical_matching_score_for_every_pair(session, m3):
    passages = session.chunks.passages()
    q_lex, _ = reference(m3, QUERIES)
    p_lex, _ = reference(m3, passages)
    expected = m3.model.compute_lexical_matching_score(q_lex, p_lex)  # (queries, chunks)
    index = session.index_state().part("sparse").index
    assert index.matrix.shape == (len(passages), m3.vocab_size)
    np.testing.assert_allclose(index.scores_many(q_lex), expected, rtol=1e-5, atol=1e-6)
    for i, q in enumerate(q_lex):
        np.testing.assert_allclose(index.scores(q), expected[i], rtol=1e-5, atol=1e-6)
    assert (expected > 0).any()


def test_sparse_mode_ranks_by_lexical_score_best_first(session, m3):
    q_lex, _ = reference(m3, QUERIES[:1])
    p_lex, _ = reference(m3, session.chunks.passages())
    expected = m3.model.compute_lexical_matching_score(q_lex, p_lex)[0]
    results = search(session, QUERIES[0], modes=("sparse",), k=10)
    order = np.lexsort((np.arange(len(expected)), -expected))
    order = order[expected[order] > 0][:10]
    assert results.rows.tolist() == order.tolist()
    np.testing.assert_allclose(results.table["score"], expected[order], rtol=1e-5)
    np.testing.assert_allclose(results.table["sparse_score"], expected[order], rtol=1e-5)
    assert results.table["sparse_rank"].tolist() == list(range(1, len(order) + 1))


def test_colbert_scores_equal_flagembedding_colbert_score(session, m3, exact):
    _, q_col = reference(m3, QUERIES)
    _, p_col = reference(m3, session.chunks.passages())
    store = exact.part("colbert").store
    rows = np.arange(len(p_col))
    for i, q in enumerate(q_col):
        expected = np.array([float(m3.model.colbert_score(q, p)) for p in p_col])
        np.testing.assert_allclose(store.scores(q, rows), expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose([colbert_score(q, p) for p in p_col], expected, rtol=1e-5, atol=1e-6)
        shuffled = rng.permutation(rows)[:7]
        np.testing.assert_allclose(store.scores(q, shuffled), expected[shuffled], rtol=1e-5, atol=1e-6)
    half = ColbertStore([store.chunk(r) for r in rows], "float16")
    assert half.nbytes < store.nbytes
    np.testing.assert_allclose(half.scores(q_col[0], rows), store.scores(q_col[0], rows), atol=2e-3)


@pytest.mark.parametrize("weights", [[0.4, 0.2, 0.4], [1.0, 0.3, 1.0]])
def test_m3_fusion_equals_compute_score(session, m3, exact, weights):
    n = len(session.chunks)
    query = QUERIES[0]
    passages = session.chunks.passages()
    named = dict(zip(("dense", "sparse", "colbert"), weights))
    ranking = search_state(session, exact, query, modes=("dense", "sparse", "colbert"), fusion="m3", weights=named,
                           k=n)
    assert sorted(ranking.rows.tolist()) == list(range(n))  # k = all: every chunk is a candidate
    # batch_size=1: compute_score pads a batch, and padded passage tokens (zero vectors) enter ColBERT's max
    ref = m3.model.compute_score([(query, p) for p in passages], batch_size=1, weights_for_different_modes=weights)
    rows = ranking.rows
    for mode in ("dense", "sparse", "colbert"):
        np.testing.assert_allclose(ranking.scores[mode], np.asarray(ref[mode])[rows], atol=1e-5)
    np.testing.assert_allclose(ranking.score, np.asarray(ref["colbert+sparse+dense"])[rows], atol=1e-5)
    two = search_state(session, exact, query, modes=("dense", "sparse"), fusion="m3",
                       weights={m: named[m] for m in ("dense", "sparse")}, k=n)
    np.testing.assert_allclose(two.score, np.asarray(ref["sparse+dense"])[two.rows], atol=1e-5)
    assert np.all(np.diff(ranking.score) <= 0)


def test_rrf_matches_a_hand_computed_example():
    ranks = {"dense": np.array([1, 2, 3, 4]), "bm25": np.array([3, 1, 2, 0])}  # 0: not ranked by bm25
    expected = np.array([1 / 61 + 1 / 63, 1 / 62 + 1 / 61, 1 / 63 + 1 / 62, 1 / 64])
    np.testing.assert_allclose(fusion.rrf(ranks), expected)
    np.testing.assert_allclose(fusion.rrf(ranks, k=60, weights={"dense": 2.0}),
                               [2 / 61 + 1 / 63, 2 / 62 + 1 / 61, 2 / 63 + 1 / 62, 2 / 64])
    assert fusion.ranks(np.array([0.5, 0.9, 0.5, 0.1])).tolist() == [2, 1, 2, 4]
    np.testing.assert_allclose(fusion.min_max(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    np.testing.assert_allclose(fusion.normalized_weighted_sum({"a": np.array([2.0, 4.0]), "b": np.array([1.0, 0.0])},
                                                              {"a": 3.0, "b": 1.0}), [0.25, 0.75])


def test_normalised_means_match_hand_computed_values():
    scores = {"a": np.array([3.0, 4.0, 1.0]), "b": np.array([2.0, 1.0, 3.0])}
    ranks = {m: fusion.ranks(s) for m, s in scores.items()}
    # L2: a / 26 ** 0.5, b / 14 ** 0.5; weights 1 and 3
    a, b = np.array([3, 4, 1]) / 26 ** 0.5, np.array([2, 1, 3]) / 14 ** 0.5
    w = {"a": 1.0, "b": 3.0}
    np.testing.assert_allclose(fusion.normalized_mean(scores, ranks, w, normalization="l2"), (a + 3 * b) / 4)
    np.testing.assert_allclose(fusion.normalized_mean(scores, ranks, w, normalization="l2", combination="geometric"),
                               (a * b ** 3) ** 0.25)
    np.testing.assert_allclose(fusion.normalized_mean(scores, ranks, w, normalization="l2", combination="harmonic"),
                               4 / (1 / a + 3 / b))
    # rank: (k + 1) / (k + rank); ranks a = [2, 1, 3], b = [2, 3, 1]; k = 1 for round numbers
    np.testing.assert_allclose(fusion.normalized_mean(scores, ranks, normalization="rank", combination="harmonic", k=1),
                               [2 / (3 / 2 + 3 / 2), 2 / (1 + 2), 2 / (2 + 1)])
    # min-max gives 0 to each mode's last candidate: a geometric or harmonic mean puts it last
    assert fusion.normalized_mean(scores, ranks, combination="geometric").tolist()[2] == 0.0
    # a weight of 0 leaves its mode out of the mean
    np.testing.assert_allclose(fusion.normalized_mean(scores, ranks, {"a": 1.0, "b": 0.0}, combination="harmonic"),
                               fusion.min_max(scores["a"]))
    assert set(fusion.GRID) == {"rrf", "weighted", *(f"{n}-{c}" for n in ("minmax", "l2", "rank")
                                                    for c in ("arithmetic", "geometric", "harmonic"))} \
        - {"minmax-arithmetic", "rank-arithmetic"}


def test_rrf_and_weighted_hybrid_use_each_modes_ranks_and_scores(session):
    results = search(session, QUERIES[1], modes=("hybrid",), fusion="rrf", k=15)
    table = results.table
    assert set(results.plan.modes) == {"dense", "sparse", "bm25"}
    expected = sum(1 / (60 + table[f"{m}_rank"].to_numpy()) for m in results.plan.modes)
    np.testing.assert_allclose(table["score"], expected)
    assert np.all(np.diff(table["score"]) <= 0) and table["rank"].tolist() == list(range(1, len(table) + 1))
    weighted = search(session, QUERIES[1], modes=("hybrid",), fusion="weighted", weights={"bm25": 2.0}, k=15)
    assert weighted.plan.weights == {"dense": 1.0, "sparse": 1.0, "bm25": 2.0}
    assert weighted.table["score"].between(0, 1).all()


@pytest.mark.parametrize("analyzer,stemmer", [("stemmed", "english"), ("lucene", None)])
def test_bm25_equals_bm25s_directly_and_needs_no_model(analyzer, stemmer):
    import Stemmer

    session = Session()
    session.set_corpus(random_corpus(60, seed=12))
    chunks = session.chunk_only()
    assert session.embedder is None and len(chunks) == 60
    config = RetrievalConfig(model=None, modes=("bm25",), chunk_size=None, bm25=analyzer, k=10)
    passages = chunks.passages()
    stem = Stemmer.Stemmer(stemmer) if stemmer else None
    retriever = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    retriever.index(bm25s.tokenize(passages, stopwords="en", stemmer=stem, show_progress=False), show_progress=False)
    for query in QUERIES:
        tokens = bm25s.tokenize([query], stopwords="en", stemmer=stem, return_ids=False, show_progress=False)
        expected = retriever.get_scores([t for t in tokens[0] if t in retriever.vocab_dict])
        results = retrieve(session, config, [query])[0]
        assert results.plan.modes == ("bm25",)
        np.testing.assert_allclose(results.table["bm25_score"], expected[results.rows], rtol=1e-6)
        docs, scores = retriever.retrieve(tokens, k=len(results.table), show_progress=False)
        np.testing.assert_allclose(results.table["score"], scores[0], rtol=1e-6)
        assert set(results.rows.tolist()) == set(docs[0].tolist()) or len(set(np.round(scores[0], 5))) < len(docs[0])
    if analyzer != session.config.bm25:  # an index built with one analyzer is not searched as if it had another
        with pytest.raises(ConfigError) as info:
            retrieve(session, config, ["river"], state=session.index_state())
        assert info.value.field == "bm25"
    with pytest.raises(ExplorerError, match="BGE-M3"):
        session.index_state().part("sparse")
    with pytest.raises(ExplorerError):
        search(session, "river", modes=("dense",))


def test_explanation_contributions_sum_to_the_scores(session, m3):
    query = QUERIES[0]
    results = search(session, query, modes=("sparse",), k=5)
    row = int(results.rows[0])
    explanation = explain(session.index_state(), query, row, top=None)
    lexical = explanation.lexical
    assert len(lexical.overlap) > 0
    assert lexical.overlap["contribution"].sum() == pytest.approx(results.table["sparse_score"].iloc[0], rel=1e-5)
    assert lexical.score == pytest.approx(results.table["sparse_score"].iloc[0], rel=1e-5)
    np.testing.assert_allclose(lexical.overlap["contribution"],
                               lexical.overlap["query_weight"] * lexical.overlap["passage_weight"], rtol=1e-6)
    q_lex, q_col = reference(m3, [query])
    assert set(lexical.query["token_id"].astype(str)) == set(q_lex[0])
    assert all(isinstance(t, str) and t for t in lexical.overlap["token"])
    words = set(query.split())
    assert set(lexical.overlap["token"]) <= words  # the tiny vocabulary has every query word as one token
    colbert = explanation.colbert
    _, p_col = reference(m3, [session.chunks.passages([row])[0]])
    assert colbert.similarity.shape == (len(q_col[0]), len(p_col[0]))
    assert len(colbert.query_tokens) == len(q_col[0]) and colbert.query_tokens[-1] == "[SEP]"
    assert colbert.score == pytest.approx(float(m3.model.colbert_score(q_col[0], p_col[0])), rel=1e-5)
    assert colbert.table()["similarity"].tolist() == pytest.approx(colbert.similarity.max(axis=1).tolist())
    bm25_score = session.index_state().part("bm25").index.scores(query)[row]
    assert explanation.bm25["contribution"].sum() == pytest.approx(float(bm25_score), rel=1e-5)


def test_changing_mode_or_weights_encodes_only_the_query(session, monkeypatch):
    index = session.index_state()
    index.part("sparse"), index.part("colbert")
    encoded = []
    real = session.embedder.encode

    def counting(texts, *args, **kwargs):
        encoded.append(len(texts))
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(session.embedder, "encode", counting)  # every model pass, passages included
    for modes, options in [("sparse", {}), ("colbert", {}),
                           ("hybrid", {"fusion": "m3", "weights": {"dense": 1, "sparse": 0.3}}),
                           ("hybrid", {"fusion": "rrf"}), ("dense", {})]:
        search(session, QUERIES[2], modes=(modes,), k=5, **options)
    assert encoded == [1] * 5
    assert session.index_state() is index
    memory = index.memory()
    assert set(memory) >= {"dense", "sparse", "colbert", "bm25"} and all(v > 0 for v in memory.values())
    assert index.estimate_bytes("colbert") == index.part("colbert").store.vectors.nbytes
    index.drop("colbert")
    assert "colbert" not in index.memory()


def test_colbert_mode_rescores_dense_and_sparse_candidates(session, exact):
    results = search_state(session, exact, QUERIES[3], modes=("colbert",), k=8)
    table = results.table
    assert {"dense_score", "sparse_score", "colbert_score"} <= set(table.columns)
    np.testing.assert_allclose(table["score"], table["colbert_score"])
    assert np.all(np.diff(table["colbert_score"]) <= 0)


def test_reranker_applies_after_fusion(session, tiny_reranker):
    reranker = load_reranker(tiny_reranker, precision="fp32")
    results = search(session, QUERIES[0], modes=("hybrid",), k=12, reranker=tiny_reranker, top_n=5)
    assert results.table["rerank_rank"].notna().sum() == 5
    assert sorted(results.reranked()["rerank_rank"].tolist()) == [1, 2, 3, 4, 5]
    assert results.reranker == reranker.spec.name and results.plan.modes == ("dense", "sparse")
    assert results.plan.fusion == "m3"  # auto fusion: M3's own weighted sum for an M3 model's own modes


def test_mode_errors_are_explained(session, tiny_encoder):
    with pytest.raises(ExplorerError, match="dense, sparse and colbert only"):
        search(session, "river", modes=("dense", "bm25"), fusion="m3")
    with pytest.raises(ConfigError, match="unknown mode 'splade'") as info:
        search(session, "river", modes=("splade",))
    assert info.value.field == "modes"
    other = Session()
    other.set_corpus(random_corpus(10, seed=13))
    other.build_index(load_embedder(tiny_encoder, precision="fp32"), chunk_size=None)
    with pytest.raises(ExplorerError, match="BGE-M3"):
        search(other, "river", modes=("sparse",))
    mixed = search(other, "river music", modes=("hybrid",), fusion="weighted", k=5)  # dense of any model + BM25
    assert mixed.plan.modes == ("dense", "bm25")


def test_m3_encode_in_bf16_returns_all_three_and_keeps_dense_unchanged(tiny_m3):
    bf16 = load_embedder(tiny_m3, model_class="m3", precision="bf16", device="cpu")
    texts = ["eiffel tower paris", "protein gene cell"]
    out = bf16.encode(texts, (DENSE, LEXICAL, MULTIVECTOR))
    np.testing.assert_allclose(out[DENSE], bf16.encode_queries(texts), atol=1e-6)
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in out[MULTIVECTOR])
    assert all(isinstance(w, dict) for w in out[LEXICAL])


def test_sparse_index_from_weights_drops_ids_outside_the_vocabulary():
    index = SparseIndex.from_weights([{"1": 0.5, "3": 0.25}, {"3": 1.0, "99": 2.0}], vocab_size=10)
    np.testing.assert_allclose(index.scores({"3": 2.0, "99": 1.0}), [0.5, 2.0])
    assert index.row_weights(1) == {3: 1.0}
    scores, rows = index.search({"1": 1.0}, k=5)
    assert rows.tolist() == [0] and scores.tolist() == [0.5]


def test_a_query_sharing_no_term_gives_an_empty_table_not_an_error():
    session = Session()
    session.set_corpus(random_corpus(10, seed=14))
    session.chunk_only()
    results = search(session, "the of and", modes=("bm25",), k=5)  # stopwords only
    assert len(results.table) == 0 and len(results.rows) == 0
    assert explain(session.index_state(), "the of and", 0).bm25.empty
