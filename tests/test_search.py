"""Search and rerank against brute force and FlagEmbedding; the embedding cache never re-embeds needlessly."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from FlagEmbedding import FlagReranker

from bge_explorer.models.catalog import BGE_EN_INSTRUCTION
from bge_explorer.data.corpus import Corpus
from bge_explorer.models.loading import load_embedder
from bge_explorer.session import Session

rng = np.random.default_rng(3)
VOCAB = ("cell protein gene cancer risk patients study human blood brain drug virus bacteria eiffel tower paris "
         "python guido photosynthesis light energy river mountain ocean music piano history king city water").split()


def corpus(n=60, words=12) -> Corpus:
    texts = [" ".join(rng.choice(VOCAB, words)) for _ in range(n)]
    return Corpus(pd.DataFrame(dict(doc_id=[f"doc{i}" for i in range(n)], title="", text=texts, source="gen",
                                    page_starts=None)))


def search(session: Session, query: str, **changes):
    """One query on the current index with the index's configuration changed by ``changes``."""
    return session.search(query, session.config.with_(**changes))


@pytest.fixture()
def session(tiny_encoder):
    session = Session()
    session.set_corpus(corpus())
    session.build_index(load_embedder(tiny_encoder, precision="fp32"), chunk_size=None)
    return session


def test_ranking_equals_brute_force_cosine(session):
    results = search(session, "blood cancer risk", instruction=BGE_EN_INSTRUCTION, k=20)
    corpus_vectors = session.embedder.encode_corpus(session.chunks.passages())
    query = session.embedder.encode_queries(["blood cancer risk"], BGE_EN_INSTRUCTION)[0]
    cosine = corpus_vectors @ query / np.linalg.norm(corpus_vectors, axis=1) / np.linalg.norm(query)
    expected = np.argsort(-cosine, kind="stable")[:20]
    assert results.rows.tolist() == expected.tolist()
    np.testing.assert_allclose(results.table["score"], cosine[expected], atol=1e-5)
    assert results.table["rank"].tolist() == list(range(1, 21))
    assert results.table["doc_id"].tolist() == session.chunks.table["doc_id"].iloc[expected].tolist()


def test_k_is_capped_by_the_corpus_and_instruction_defaults_to_the_model(session):
    results = search(session, "river", k=1000)
    assert len(results.table) == 60
    assert results.instruction == session.embedder.spec.instruction


def test_rerank_order_is_the_rerankers_own_compute_score_order(session, tiny_reranker):
    assert session.config.precision == "fp32"  # the reranker loads at the index's precision, as FlagReranker below
    results = search(session, "music history of paris", k=30, reranker=tiny_reranker, top_n=10)
    top = results.table.iloc[:10]
    bare = FlagReranker(tiny_reranker, use_fp16=False, devices="cpu")
    logits = np.asarray(bare.compute_score([["music history of paris", t] for t in top["text"]]))
    reranked = results.reranked()
    assert reranked["chunk_id"].tolist() == top["chunk_id"].iloc[np.argsort(-logits, kind="stable")].tolist()
    np.testing.assert_allclose(reranked["rerank_logit"], np.sort(logits)[::-1], atol=1e-5)
    np.testing.assert_allclose(reranked["rerank_score"], 1 / (1 + np.exp(-reranked["rerank_logit"])), atol=1e-9)
    assert (reranked["movement"] == reranked["rank"] - reranked["rerank_rank"]).all()
    assert results.table["rerank_rank"].iloc[10:].isna().all()


def test_changing_instruction_k_or_reranker_never_re_embeds_the_corpus(session, tiny_reranker):
    embedder = session.embedder
    before = embedder.corpus_texts_encoded
    search(session, "gene study", instruction="")
    search(session, "gene study", instruction=BGE_EN_INSTRUCTION, k=5)
    search(session, "gene study", reranker=tiny_reranker, top_n=3)
    session.build_index(embedder, chunk_size=None)  # same model, same chunks: all cached
    assert embedder.corpus_texts_encoded == before


def test_rechunking_embeds_only_new_chunks_and_models_never_mix(tiny_encoder, tiny_m3):
    session = Session()
    session.set_corpus(corpus(n=20, words=40))
    embedder = load_embedder(tiny_encoder, precision="fp32")
    first = session.build_index(embedder, chunk_size=None)
    count = embedder.corpus_texts_encoded
    changed = session.corpus.documents.copy()
    changed.loc[0, "text"] += " water"  # one document changes: a new corpus, the session's cache stays
    session.set_corpus(Corpus(changed))
    session.build_index(embedder, chunk_size=None)
    assert embedder.corpus_texts_encoded - count == 1
    chunked = session.build_index(embedder, chunk_size=16, overlap=4)
    assert embedder.corpus_texts_encoded - count == 1 + len(chunked)
    m3 = load_embedder(tiny_m3, model_class="m3", precision="fp32")
    session.build_index(m3, chunk_size=None)
    np.testing.assert_allclose(session.vectors, m3.encode_corpus(session.chunks.passages()), atol=1e-6)
    switched_back = embedder.corpus_texts_encoded
    session.build_index(embedder, chunk_size=None)  # a model used earlier: its embeddings are reused
    assert embedder.corpus_texts_encoded == switched_back and len(first) == 20


def test_empty_query_and_missing_index_are_clear_errors(tiny_encoder):
    from bge_explorer.errors import ExplorerError

    session = Session()
    with pytest.raises(ExplorerError, match="Build the index first"):
        session.search("x")
    with pytest.raises(ExplorerError, match="Load a corpus first"):
        session.build_index(load_embedder(tiny_encoder))
    session.set_corpus(corpus(n=3))
    session.build_index(load_embedder(tiny_encoder), chunk_size=None)
    with pytest.raises(ExplorerError, match="Type a query"):
        session.search("   ")


def test_limits_name_the_limit_and_its_value(tmp_path, tiny_encoder):
    from bge_explorer.errors import ConfigError, LimitError
    from bge_explorer.settings import Limits

    session = Session(Limits(max_upload_mb=0.001, max_files=2, max_chunks=5, max_query_chars=10, max_k=50))
    (tmp_path / "big.txt").write_text("x " * 1000)
    with pytest.raises(LimitError, match=r"over the limit of 0.001 MB \(BGE_EXPLORER_MAX_UPLOAD_MB\)"):
        session.load_corpus([tmp_path / "big.txt"])
    with pytest.raises(LimitError, match="3 files is over the limit of 2 files"):
        session.load_corpus([tmp_path / "big.txt"] * 3)
    session.set_corpus(corpus(n=6))
    with pytest.raises(LimitError, match="6 chunks is over the limit of 5 chunks"):
        session.build_index(load_embedder(tiny_encoder), chunk_size=None)
    session.set_corpus(corpus(n=5))
    session.build_index(load_embedder(tiny_encoder), chunk_size=None)
    with pytest.raises(LimitError, match="over the limit of 10"):
        session.search("x" * 11)
    with pytest.raises(LimitError, match="k must be between 1 and 50"):
        search(session, "gene", k=10**9)
    with pytest.raises(ConfigError, match="k: must be at least 1") as info:  # below 1: refused by the config
        search(session, "gene", k=0)
    assert info.value.field == "k"


def test_limits_from_environment(monkeypatch):
    from bge_explorer.settings import Limits

    monkeypatch.setenv("BGE_EXPLORER_MAX_K", "7")
    monkeypatch.setenv("BGE_EXPLORER_MAX_UPLOAD_MB", "2.5")
    limits = Limits.from_env()
    assert limits.max_k == 7 and limits.max_upload_mb == 2.5
    assert "k up to 7" in limits.describe()
