"""Index backends (bge_explorer.indexes) against brute force: same top 10 as exact FAISS on the packaged MiniLM,
honest recall@10 for HNSW / IVF-PQ, identity refusal and read-only opening on milvus-lite and Qdrant local mode."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bge_explorer import indexes
from bge_explorer.errors import ConfigError
from bge_explorer.indexes.base import ModelIdentity
from bge_explorer.models.loading import load_embedder
from bge_explorer.retrieval.config import INDEX_BACKENDS, RetrievalConfig
from bge_explorer.session import Session
from conftest import SAMPLE_QUESTIONS


def clustered(n: int, dim: int, seed: int = 0, clusters: int = 50) -> np.ndarray:
    """(n, dim) unit vectors around ``clusters`` random centres (real embeddings cluster; uniform ones do not)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute_force(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :k]


def test_config_backends_are_registered():
    assert set(INDEX_BACKENDS) <= set(indexes.names())
    with pytest.raises(ConfigError) as err:
        RetrievalConfig(index="annoy")
    assert err.value.field == "index"


@pytest.fixture(scope="module")
def minilm():
    return load_embedder("all-MiniLM-L6-v2", precision="fp32")


@pytest.fixture(scope="module")
def minilm_session(sample_corpus, minilm):
    session = Session()
    session.load_corpus([sample_corpus])
    return session


BASE = RetrievalConfig(model="all-MiniLM-L6-v2", precision="fp32", k=10, chunk_size=64, overlap=8)


@pytest.mark.parametrize("backend", [b for b in INDEX_BACKENDS if b != "faiss-ivfpq"])
def test_backend_top10_equals_exact_search(minilm_session, backend):
    """Through the pipeline (RetrievalConfig.index), each backend's top 10 = exact FAISS's."""
    base = BASE
    state = minilm_session.state_for(base.with_(index=backend))
    assert state.index == backend and state.part("dense").index.name == backend
    from bge_explorer.retrieval.pipeline import retrieve

    questions = list(SAMPLE_QUESTIONS)
    exact = retrieve(minilm_session, base, questions)
    got = retrieve(minilm_session, base.with_(index=backend), questions)
    for e, g in zip(exact, got):
        assert g.rows.tolist() == e.rows.tolist()
        np.testing.assert_allclose(g.score, e.score, atol=1e-6)
    if backend == "faiss-hnsw":
        assert "recall@10" in state.part("dense").report and "params" in state.part("dense").report


def test_ivfpq_refuses_a_corpus_too_small_to_train(minilm_session):
    with pytest.raises(ConfigError, match="at least 624 vectors") as err:
        minilm_session.state_for(BASE.with_(index="faiss-ivfpq"))
    assert err.value.field == "index"


@pytest.mark.parametrize("backend", ["faiss-hnsw", "faiss-ivfpq"])
def test_ann_recall_is_reported_honestly(backend):
    """Build reports recall@10 on held-out corpus vectors; fresh queries measured against brute force agree."""
    vectors = clustered(4000, 64)
    index = indexes.build(backend, vectors)
    reported = index.report["recall@10"]
    rng = np.random.default_rng(5)
    queries = vectors[rng.integers(0, len(vectors), 200)] + 0.3 * rng.normal(size=(200, 64)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    _, found = index.search(queries, 10)
    measured = indexes.recall_at_k(found, brute_force(vectors, queries, 10))
    assert reported >= (0.9 if backend == "faiss-hnsw" else 0.3)
    assert measured >= reported - 0.1, (measured, reported, index.report)


def identity(name="m", ident="abc", dim=8) -> ModelIdentity:
    return ModelIdentity(name, ident, dim, "cls", True, 512, "fp32", "q: ")


def payload(n: int) -> pd.DataFrame:
    return pd.DataFrame(dict(chunk_id=[f"d{i}#0" for i in range(n)], doc_id=[f"d{i}" for i in range(n)], chunk=0,
                             title="", text=[f"text {i}" for i in range(n)], start=0, end=6))


@pytest.mark.parametrize("backend", ["milvus", "qdrant"])
def test_external_store_roundtrip_identity_and_read_only(tmp_path, backend):
    uri = str(tmp_path / ("x.db" if backend == "milvus" else "qdrant"))
    vectors = clustered(300, 8, seed=3)
    index = indexes.create(backend, 8, identity(), uri=uri, collection="docs")
    index.add(vectors, payload=payload(300))
    queries = vectors[:5]
    scores, ids = index.search(queries, 10)
    assert index.count() == 300 and ids.tolist() == brute_force(vectors, queries, 10).tolist()
    np.testing.assert_allclose(scores, np.sort(queries @ vectors.T, axis=1)[:, ::-1][:, :10], atol=1e-5)
    assert index.fetch([7, 2])["text"].tolist() == ["text 7", "text 2"]
    index.close()

    opened = indexes.open_index(backend, uri=uri, collection="docs")
    assert opened.read_only and opened.identity == identity() and opened.count() == 300
    with pytest.raises(ConfigError) as err:
        opened.add(vectors[:1])
    assert err.value.field == "index" and "read-only" in str(err.value)
    assert opened.count() == 300  # nothing written
    with pytest.raises(ConfigError) as err:
        opened.identity.check(identity(name="m2", ident="def"))
    assert err.value.field == "model" and "different model versions" in str(err.value)
    assert opened.identity.check(identity()) == []
    opened.close()
    with pytest.raises(ConfigError, match="no .*collection 'nope'"):
        indexes.open_index(backend, uri=uri, collection="nope")

    bare = indexes.create(backend, 8, None, uri=uri, collection="bare")  # written by another tool: no identity
    bare.close()
    bare = indexes.open_index(backend, uri=uri, collection="bare")
    assert bare.identity is None
    bare.close()


def test_identity_of_embedder_and_mismatch(tiny_encoder, minilm):
    tiny = load_embedder(tiny_encoder, precision="fp32")
    mine, other = ModelIdentity.of(minilm), ModelIdentity.of(tiny)
    assert mine.dim == 384 and mine.identity == minilm.identity and mine.pooling == "mean"
    reasons = mine.mismatch(other)
    assert any("different model versions" in r for r in reasons) and any(r.startswith("dim") for r in reasons)
    assert ModelIdentity.from_json(mine.to_json()) == mine


@pytest.fixture(scope="module")
def scifact_minilm(minilm) -> tuple[np.ndarray, np.ndarray]:
    """(2000, 384) MiniLM vectors of the first 2,000 SciFact abstracts and (200, 384) of the first 200 queries."""
    import json
    import os

    from conftest import SCIFACT

    if not os.path.exists(SCIFACT):
        pytest.skip("SciFact is not in ../shared/data")
    with open(os.path.join(SCIFACT, "corpus.jsonl"), encoding="utf-8") as f:
        docs = [json.loads(line) for _, line in zip(range(2000), f)]
    with open(os.path.join(SCIFACT, "queries.jsonl"), encoding="utf-8") as f:
        questions = [json.loads(line)["text"] for _, line in zip(range(200), f)]
    return minilm.encode_corpus([f"{d['title']} {d['text']}" for d in docs]), minilm.encode_queries(questions)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["faiss-hnsw", "faiss-ivfpq"])
def test_ann_recall_on_real_minilm_vectors(scifact_minilm, backend):
    """2,000 SciFact abstracts embedded with the packaged MiniLM, real SciFact queries: the recall@10 measured
    against brute force is at least the build's reported figure less 0.15 (it is measured on corpus vectors)."""
    vectors, queries = scifact_minilm
    index = indexes.build(backend, vectors)
    _, found = index.search(queries, 10)
    measured = indexes.recall_at_k(found, brute_force(vectors, queries, 10))
    assert measured >= index.report["recall@10"] - 0.15, (measured, index.report)
    assert measured >= (0.9 if backend == "faiss-hnsw" else 0.3), (measured, index.report)


def test_a_temporary_milvus_lite_file_is_removed_with_its_index():
    import gc
    import os

    from bge_explorer.indexes.milvus import MilvusIndex

    vectors = np.eye(4, dtype=np.float32)
    for close in (True, False):
        index = MilvusIndex.create(4)
        index.add(vectors, np.arange(4))
        folder = os.path.dirname(index.uri)
        assert os.listdir(folder)  # milvus-lite keeps its data there
        if close:
            index.close()
        else:
            del index
            gc.collect()
        assert not os.path.exists(folder)
