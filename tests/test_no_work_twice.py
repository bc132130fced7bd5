"""No work twice: what a session may change without re-embedding its corpus or re-fitting its map."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bge_explorer.app import explorer as ui, map as map_tab
from bge_explorer.models import random_models
from bge_explorer.models.catalog import BGE_EN_INSTRUCTION


def test_prefix_k_reranker_and_map_colouring_trigger_no_corpus_encode_and_no_umap_fit(
        tiny_encoder, tiny_reranker, sample_corpus):
    *_, session = ui.load_corpus([sample_corpus])
    *_, session = ui.build_index(tiny_encoder, chunk_size=48, overlap=8, state=session, progress=None)
    ui.search_once("eiffel tower", "model default", "", 10, ui.NO_RERANKER, 5, session)
    list(map_tab.map_view("document", session))
    encoded, fits = session.session.embedder.corpus_texts_encoded, session.maps.umap_fits
    assert fits == 1
    for mode, instruction, k, reranker, top_n, colour in [
            ("none", "", 10, ui.NO_RERANKER, 5, "cluster"),
            ("custom", BGE_EN_INSTRUCTION, 3, tiny_reranker, 3, "document"),
            ("model default", "", 50, tiny_reranker, 20, "cluster")]:
        ui.search_once("eiffel tower", mode, instruction, k, reranker, top_n, session)
        frames = list(map_tab.map_view(colour, session))
        assert "UMAP" in frames[-1][1]
    assert session.session.embedder.corpus_texts_encoded == encoded
    assert session.maps.umap_fits == fits


def test_switching_back_to_an_earlier_model_reuses_its_embeddings(tiny_encoder, sample_corpus, tmp_path):
    other = random_models.build(tmp_path / "other", "encoder", seed=11)
    *_, session = ui.load_corpus([sample_corpus])
    *_, session = ui.build_index(tiny_encoder, chunk_size=48, overlap=8, state=session, progress=None)
    first = session.session.vectors.copy()
    *_, session = ui.build_index(other, chunk_size=48, overlap=8, state=session, progress=None)
    _, status, *_ = ui.build_index(tiny_encoder, chunk_size=48, overlap=8, state=session, progress=None)
    assert f"0 embedded now, {len(session.session.chunks)} from this session's cache" in status
    assert (session.session.vectors == first).all()


def test_embedding_caches_are_per_session(tiny_encoder, sample_corpus):
    """A shared cache would let one visitor learn from timing that another uploaded the same text."""
    *_, first = ui.load_corpus([sample_corpus])
    *_, first = ui.build_index(tiny_encoder, chunking="none", state=first, progress=None)
    *_, second = ui.load_corpus([sample_corpus])
    _, status, *_ = ui.build_index(tiny_encoder, chunking="none", state=second, progress=None)
    assert f"{len(second.session.chunks)} embedded now, 0 from this session's cache" in status


def test_an_m3_index_build_keeps_lexical_weights_so_sparse_search_encodes_nothing(tiny_m3, sample_corpus):
    from bge_explorer.models.loading import load_embedder
    from bge_explorer.session import Session

    session = Session()
    session.load_corpus([sample_corpus])
    m3 = load_embedder(tiny_m3, model_class="m3", precision="fp32")
    chunks = session.build_index(m3, chunk_size=None)
    encoded = m3.corpus_texts_encoded
    assert session.cache.count(m3, "lexical") == len(chunks)
    for mode in ("sparse", "hybrid", "dense"):
        session.search("eiffel tower", session.config.with_(modes=(mode,), k=5))
    assert m3.corpus_texts_encoded == encoded


JIT_PROBE = """
import json, sys
from numba.core.registry import CPUDispatcher
from bge_explorer.maps import projection
projection.warm_up(background=False)
hits = misses = 0
for name, module in list(sys.modules.items()):
    if module is not None and name.split(".")[0] in ("umap", "pynndescent"):
        for obj in vars(module).values():
            if isinstance(obj, CPUDispatcher) and obj.signatures:
                hits += sum(obj.stats.cache_hits.values())
                misses += sum(obj.stats.cache_misses.values())
print(json.dumps({"hits": hits, "misses": misses}))
"""


@pytest.mark.slow  # two fresh processes; the first compiles UMAP (15-40 s on 2 cores)
def test_umap_is_compiled_once_across_processes(tmp_path):
    """A fresh process loads UMAP's machine code from the app's numba cache instead of compiling it again."""
    env = {**os.environ, "BGE_EXPLORER_CACHE_DIR": str(tmp_path)}
    runs = [json.loads(subprocess.run([sys.executable, "-c", JIT_PROBE], env=env, capture_output=True, text=True,
                                      check=True, timeout=600).stdout.strip().splitlines()[-1]) for _ in range(2)]
    first, second = runs
    assert first["hits"] == 0 and first["misses"] > 50  # compiled, and written to the cache
    assert any((tmp_path / "numba").iterdir())
    assert second["hits"] >= 0.9 * first["misses"] and second["misses"] <= 0.1 * first["misses"]
