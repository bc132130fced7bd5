"""Model catalog, loading through FlagEmbedding, the process-wide cache, offline behaviour."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from FlagEmbedding import BGEM3FlagModel, FlagModel, FlagReranker

from bge_explorer.models import random_models
from bge_explorer.models.catalog import BGE_EN_INSTRUCTION, CATALOG, resolve_spec
from bge_explorer.errors import ModelLoadError, ModelOfflineError, ModelSpecError
from bge_explorer.models.loading import MODEL_CACHE, ModelCache, load_embedder, load_embedder_with_fallback, load_reranker

TEXTS = ["the eiffel tower in paris", "python was created by guido", "photosynthesis converts light energy"]


def test_catalog_has_the_bge_family_with_exact_instructions():
    assert CATALOG["bge-small-en-v1.5"].instruction == "Represent this sentence for searching relevant passages: "
    assert [CATALOG[n].dim for n in ("bge-small-en-v1.5", "bge-base-en-v1.5", "bge-large-en-v1.5", "bge-m3")] == [
        384, 768, 1024, 1024]
    assert CATALOG["bge-m3"].instruction == "" and CATALOG["bge-m3"].model_class == "m3"
    assert {n for n, s in CATALOG.items() if s.model_class == "reranker"} == {
        "bge-reranker-base", "bge-reranker-large", "bge-reranker-v2-m3"}
    assert resolve_spec("BAAI/bge-base-en-v1.5").name == "bge-base-en-v1.5"
    offline = resolve_spec("all-MiniLM-L6-v2")
    assert offline.pooling == "mean" and offline.max_length == 256 and offline.is_local


def test_custom_model_ids_are_validated(tmp_path, tiny_encoder, monkeypatch):
    assert resolve_spec("someone/my-bge").source == "someone/my-bge"
    assert resolve_spec(tiny_encoder, pooling="mean").pooling == "mean"
    for bad in ("a/b/c", ""):
        with pytest.raises(ModelSpecError, match="is not a catalog model"):
            resolve_spec(bad)
    with pytest.raises(ModelSpecError, match="is a URL"):
        resolve_spec("https://evil.example/model")
    for bad in ("x/../../etc", "../../etc"):
        with pytest.raises(ModelSpecError, match="'..' is not allowed"):
            resolve_spec(bad)
    with pytest.raises(ModelSpecError, match="not a valid Hub id"):
        resolve_spec("a--b/c")
    with pytest.raises(ModelSpecError, match="holds no model"):
        resolve_spec("/etc")
    monkeypatch.setenv("BGE_EXPLORER_MODEL_ROOTS", str(tmp_path))
    with pytest.raises(ModelSpecError, match="outside the directories local models may be loaded from"):
        resolve_spec(tiny_encoder)


def test_embedder_matches_flagmodel_and_instruction_goes_to_queries_only(tiny_encoder):
    embedder = load_embedder(tiny_encoder, precision="fp32")
    bare = FlagModel(tiny_encoder, use_fp16=False, devices="cpu", normalize_embeddings=True)
    corpus = embedder.encode_corpus(TEXTS)
    np.testing.assert_allclose(corpus, bare.encode_corpus(TEXTS), atol=1e-6)
    query = embedder.encode_queries(["where is the tower"], BGE_EN_INSTRUCTION)
    np.testing.assert_allclose(query, bare.encode([BGE_EN_INSTRUCTION + "where is the tower"]), atol=1e-6)
    assert not np.allclose(query, embedder.encode_queries(["where is the tower"], ""), atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(corpus, axis=1), 1.0, atol=1e-5)


def test_m3_dense_vectors_match_bgem3flagmodel(tiny_m3):
    embedder = load_embedder(tiny_m3, model_class="m3", precision="fp32")
    bare = BGEM3FlagModel(tiny_m3, use_fp16=False, devices="cpu")
    np.testing.assert_allclose(embedder.encode_corpus(TEXTS), bare.encode(TEXTS)["dense_vecs"], atol=1e-6)


def test_reranker_gives_flagreranker_logits(tiny_reranker):
    reranker = load_reranker(tiny_reranker, precision="fp32")
    bare = FlagReranker(tiny_reranker, use_fp16=False, devices="cpu")
    expected = bare.compute_score([["eiffel tower", t] for t in TEXTS])
    np.testing.assert_allclose(reranker.score("eiffel tower", TEXTS), expected, atol=1e-5)


def test_bf16_on_cpu_stays_close_to_fp32(tiny_encoder):
    fp32 = load_embedder(tiny_encoder, precision="fp32").encode_corpus(TEXTS)
    bf16 = load_embedder(tiny_encoder, precision="bf16").encode_corpus(TEXTS)
    assert (np.sum(fp32 * bf16, axis=1) > 0.99).all()


def test_a_model_is_loaded_once_even_when_asked_at_the_same_moment(tmp_path):
    path = random_models.build(tmp_path / "fresh", "encoder", seed=7)
    loads_before = MODEL_CACHE.loads
    got, barrier = [], threading.Barrier(4)

    def ask():
        barrier.wait()
        got.append(load_embedder(path, precision="fp32"))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert MODEL_CACHE.loads - loads_before == 1
    assert all(e is got[0] for e in got)
    assert load_embedder(path, precision="fp32") is got[0]


def test_lru_eviction_past_the_budget():
    cache = ModelCache(budget_bytes=250)
    for name in "abc":
        cache.get((name,), lambda: (object(), 100))
    assert [k[0] for k in cache.keys()] == ["b", "c"]
    cache.get(("b",), lambda: pytest.fail("b is cached"))  # touch b: c becomes least recent
    cache.get(("d",), lambda: (object(), 100))
    assert [k[0] for k in cache.keys()] == ["b", "d"]


def test_offline_hub_model_fails_fast_and_clearly_and_the_cache_stays_usable(tiny_encoder):
    working = load_embedder(tiny_encoder, precision="fp32")
    started = time.monotonic()
    with pytest.raises(ModelOfflineError, match=r"Cannot load model 'bge-small-en-v1.5'.*not in the local Hugging "
                                                r"Face cache and the Hub cannot be reached"):
        load_embedder("bge-small-en-v1.5")
    assert time.monotonic() - started < 15  # no minute-long network retries (generous bound, not a benchmark)
    assert load_embedder(tiny_encoder, precision="fp32") is working


def test_wrong_files_name_the_model_and_the_reason(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"Cannot load model '.*': \w+"):
        load_embedder(str(tmp_path))
    with pytest.raises(ModelLoadError, match="holds no model"):
        load_embedder("/etc")
    with pytest.raises(ModelLoadError, match="is a reranker"):
        load_embedder("bge-reranker-base")


def test_default_model_falls_back_to_the_packaged_minilm_and_says_so():
    embedder, notice = load_embedder_with_fallback("bge-small-en-v1.5", precision="fp32")
    assert embedder.spec.name == "all-MiniLM-L6-v2" and embedder.dim == 384
    assert "bge-small-en-v1.5" in notice and "all-MiniLM-L6-v2" in notice


def test_a_fine_tuned_directory_searches_with_its_cards_pooling_and_instruction(tiny_encoder, tmp_path):
    import json
    import shutil

    from bge_explorer.models.catalog import TUNED_CARD, resolve_spec

    tuned = tmp_path / "tuned"
    shutil.copytree(tiny_encoder, tuned)
    assert resolve_spec(str(tuned)).pooling == "cls"  # a directory without a card: the custom-model default
    (tuned / TUNED_CARD).write_text(json.dumps({"base": {"pooling": "mean"},
                                                "data": {"query_instruction_for_retrieval": "query: "}}))
    spec = resolve_spec(str(tuned))
    assert (spec.pooling, spec.instruction) == ("mean", "query: ")
    assert resolve_spec(str(tuned), pooling="cls").pooling == "cls"  # what the user names still wins
    (tuned / TUNED_CARD).write_text("{broken")
    assert resolve_spec(str(tuned)).pooling == "cls"
