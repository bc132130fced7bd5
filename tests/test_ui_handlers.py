"""The UI's event handlers called directly (no browser, no server) with tiny random models."""
from __future__ import annotations

import json
import os
import pickle

import gradio as gr
import numpy as np
import pandas as pd
import pytest

from bge_explorer.maps import points, projection

from bge_explorer.app import explorer as ui, map as map_tab
from bge_explorer.app import layout, state as app_state
from bge_explorer.models.catalog import BGE_EN_INSTRUCTION

PAYLOAD = "<script>alert(1)</script> <img src=x onerror=alert(1)> ${alert(1)}"


@pytest.fixture(scope="module")
def indexed(tiny_encoder, sample_corpus):
    """A app with the sample corpus indexed by the tiny encoder (UMAP not started in the background)."""
    _, _, _, app = ui.load_corpus([sample_corpus])
    *_, app = ui.build_index(tiny_encoder, chunking="tokens", chunk_size=64, overlap=8, state=app,
                                 progress=None)
    return app


def test_load_corpus_skips_a_bad_file_and_names_it(tmp_path, sample_corpus):
    bad = tmp_path / "broken.csv"
    bad.write_text("title,body\nx,y\n")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    summary, docs, problems, app = ui.load_corpus([sample_corpus, str(bad), str(empty)])
    assert len(docs) == 26 and len(app.session.corpus.documents) == 26
    assert "broken.csv" in problems and "choose the text column" in problems
    assert "empty.txt" in problems
    assert "<b>26</b> documents" in summary


def test_load_corpus_with_nothing_usable_is_a_user_error(tmp_path):
    with pytest.raises(gr.Error, match="upload"):
        ui.load_corpus([])
    bad = tmp_path / "notes.docx"
    bad.write_bytes(b"PK")
    with pytest.raises(gr.Error, match="unsupported file type"):
        ui.load_corpus([str(bad)])


def test_csv_columns_are_chosen_by_the_user(tmp_path):
    path = tmp_path / "faq.csv"
    pd.DataFrame({"q": ["a", "b"], "answer": ["Reset the password.", "Office hours are 9-5."]}).to_csv(path, index=False)
    _, docs, problems, app = ui.load_corpus([str(path)], text_column="answer", id_column="q")
    assert list(app.session.corpus.documents["doc_id"]) == ["a", "b"] and problems == ""


def test_search_before_index_is_a_user_error(sample_corpus):
    *_, app = ui.load_sample()
    with pytest.raises(gr.Error, match="Build the index"):
        ui.search_once("eiffel", state=app)
    with pytest.raises(gr.Error, match="Build the index"):
        next(map_tab.map_view("document", app))
    with pytest.raises(gr.Error, match="Load a corpus"):
        ui.build_index("all-MiniLM-L6-v2", state=None, progress=None)


def test_build_index_reports_model_chunks_and_progress(tiny_encoder, sample_corpus):
    *_, app = ui.load_corpus([sample_corpus])
    calls = []
    model_html, status, instruction, chunks, counts, app = ui.build_index(
        tiny_encoder, chunk_size=32, overlap=4, state=app, progress=lambda *a, **k: calls.append((a, k)))
    assert "dimension 32" in model_html and "Offline fallback" not in model_html
    assert instruction == ""  # a custom model has no default instruction
    assert list(chunks.columns) == ["document", "chunk", "page", "tokens", "text"]
    assert (chunks["tokens"] <= 32).all() and len(chunks) == len(app.session.chunks)
    assert f"<b>{len(app.session.chunks)}</b> chunks" in counts
    done = [a[0] for a, _ in calls if isinstance(a[0], tuple)]
    assert done and done[-1] == (len(app.session.chunks), len(app.session.chunks))  # progress reached chunks/total


def test_unloadable_model_and_bad_chunking_are_user_errors(tmp_path, sample_corpus):
    *_, app = ui.load_corpus([sample_corpus])
    with pytest.raises(gr.Error, match="Cannot load model"):
        ui.build_index("no-such-org/no-such-model", state=app, progress=None)
    with pytest.raises(gr.Error, match="not a catalog model"):
        ui.build_index("not a model!", state=app, progress=None)
    with pytest.raises(gr.Error, match="holds no model"):
        ui.build_index(str(tmp_path), state=app, progress=None)
    with pytest.raises(gr.Error, match="overlap"):
        ui.build_index("all-MiniLM-L6-v2", chunk_size=16, overlap=16, state=app, progress=None)
    assert app.session.current is None  # nothing half-built


def test_offline_default_model_falls_back_and_says_so(sample_corpus):
    """HF_HUB_OFFLINE is set: bge-small-en-v1.5 is not cached, so the packaged MiniLM is used and named."""
    *_, app = ui.load_corpus([sample_corpus])
    model_html, _, instruction, _, _, app = ui.build_index("bge-small-en-v1.5", chunking="none", state=app,
                                                               progress=None)
    assert app.session.embedder.spec.name == "all-MiniLM-L6-v2"
    assert "Offline fallback" in model_html and "all-MiniLM-L6-v2" in model_html
    assert instruction == ""


def test_search_with_reranker_shows_both_rankings(indexed, tiny_reranker):
    before, after, summary, detail, app = ui.search_once("eiffel tower paris", "model default", "", 5,
                                                        tiny_reranker, 10, indexed)
    assert list(before["rank"]) == [1, 2, 3, 4, 5]
    assert list(after["rank"]) == [1, 2, 3, 4, 5]
    assert {"movement", "retrieval rank", "logit", "sigmoid"} <= set(after.columns)
    assert after["sigmoid"].between(0, 1).all()
    table = app.ranking.table
    # the after table is the reranker's order of the top 10 candidates
    best = table.sort_values("rerank_rank").iloc[0]
    assert after.iloc[0]["retrieval rank"] == best["rank"] and after.iloc[0]["document"] == best["doc_id"]
    for label, rank in zip(after["movement"], after["retrieval rank"]):
        if rank > 5:
            assert label.startswith("new")
    assert "rescored the top 10" in summary and "Top result" in detail


def test_instruction_k_and_reranker_changes_do_not_reembed(indexed, tiny_reranker):
    encoded = indexed.session.embedder.corpus_texts_encoded
    b1, *_ = ui.search_once("photosynthesis light energy", "none", "", 3, ui.NO_RERANKER, 5, indexed)
    b2, *_ = ui.search_once("photosynthesis light energy", "custom", BGE_EN_INSTRUCTION, 8, tiny_reranker, 8, indexed)
    assert len(b1) == 3 and len(b2) == 8
    assert indexed.ranking.instruction == BGE_EN_INSTRUCTION
    assert indexed.session.embedder.corpus_texts_encoded == encoded


def test_rebuilding_with_other_chunking_embeds_only_new_chunks(tiny_encoder, sample_corpus):
    *_, app = ui.load_corpus([sample_corpus])
    *_, app = ui.build_index(tiny_encoder, chunk_size=48, overlap=0, state=app, progress=None)
    _, status, *_ = ui.build_index(tiny_encoder, chunk_size=48, overlap=0, state=app, progress=None)
    assert f"0 embedded now, {len(app.session.chunks)} from this session's cache" in status


def test_query_terms_are_highlighted_after_escaping():
    html = ui.highlight(f"Paris {PAYLOAD} amp &amp; tower", "paris amp tower")
    assert "<script" not in html and "<img" not in html and "${" not in html
    assert "&lt;script&gt;" in html and "&amp;<mark>amp</mark>;" in html  # the literal text "&amp;"
    assert "<mark>Paris</mark>" in html and "<mark>tower</mark>" in html and "<mark>amp</mark>" in html


def test_user_text_never_becomes_markup(tmp_path, tiny_encoder):
    path = tmp_path / "evil.jsonl"
    path.write_text('{"_id": "<b>x</b>", "title": "<img src=x onerror=alert(2)>", "text": "%s tower"}\n'
                    % PAYLOAD.replace('"', '\\"'))
    summary, docs, _, app = ui.load_corpus([str(path)])
    assert docs.iloc[0]["document"] == "<b>x</b>"  # text cell: shown literally by the Dataframe
    _, _, _, _, _, app = ui.build_index(tiny_encoder, chunking="none", state=app, progress=None)
    before, after, summary, detail, app = ui.search_once("<script>tower", "custom", "<i>", 1, ui.NO_RERANKER, 1, app)
    for html in (summary, detail, before.iloc[0]["text"]):
        assert "<script" not in html and "<img" not in html and "<i>" not in html and "${" not in html
    assert "&lt;<mark>script</mark>&gt;alert(1)&lt;/<mark>script</mark>&gt;" in detail
    data = json.loads(next(map_tab.map_view("document", app))[0])
    hover = " ".join(data["docs"] + data["text"])
    assert "<script" not in hover and "<img" not in hover and "&lt;script&gt;" in hover


def test_compare_prefix_reports_overlap(indexed):
    with_, without, summary, app = ui.compare_prefix("when was the eiffel tower built", "Query: ", 5, indexed)
    assert len(with_) == len(without) == 5
    shared = len(set(zip(with_["document"], with_["chunk"])) & set(zip(without["document"], without["chunk"])))
    assert f"<b>{shared} of 5</b>" in summary
    only = (with_["rank without"] == "—").sum()
    assert only == 5 - shared and (with_["change"] == "only here").sum() == only


def test_map_previews_pca_then_umap_and_reuses_the_fit(indexed, tiny_reranker):
    ui.search_once("eiffel tower paris", "model default", "", 4, tiny_reranker, 6, indexed)
    frames = list(map_tab.map_view("document", indexed))
    assert "PCA preview" in frames[0][1] and "UMAP map" in frames[-1][1]
    data = json.loads(frames[-1][0])
    assert len(data["query"]["retrieved"]) == 4 and len(data["query"]["reranked"]) == 4
    assert data["n"] == len(points.decode_array(data["x"])) == len(indexed.session.chunks)
    fits = indexed.maps.umap_fits
    ui.search_once("password reset", "none", "", 3, ui.NO_RERANKER, 3, indexed)
    frames = list(map_tab.map_view("cluster", indexed))
    assert len(frames) == 1 and indexed.maps.umap_fits == fits  # the fitted map is reused for the new query
    assert json.loads(frames[0][0])["colour"]["title"] == "cluster"


def test_umap_handles_tiny_corpora():
    rng = np.random.default_rng(0)
    for n in (1, 2, 4, 6, 12):
        vectors = rng.normal(size=(n, 16)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        proj = projection.fit_umap(vectors)
        assert proj.coords.shape == (n, 2) and np.isfinite(proj.coords).all()
        assert proj.transform(vectors[:1]).shape == (1, 2)
        assert proj.kind == ("pca" if n < projection.MIN_UMAP_POINTS else "umap")


def test_exports(indexed, tmp_path):
    ui.search_once("eiffel", "model default", "", 5, ui.NO_RERANKER, 5, indexed)
    results = pd.read_csv(ui.export_results(indexed))
    assert len(results) == 5 and results["query"].iloc[0] == "eiffel"
    chunks = pd.read_parquet(ui.export_chunks(indexed))
    assert len(chunks) == len(indexed.session.chunks) and len(chunks["embedding"].iloc[0]) == indexed.session.embedder.dim
    files, note = map_tab.export_map("document", indexed)
    assert files[0].endswith(".html") and os.path.getsize(files[0]) > 100_000  # plotly.js inlined: opens offline
    assert files[1].endswith(".csv") and files[2].endswith(".parquet") and "PNG" in note


def test_session_survives_pickling(indexed):
    """ZeroGPU returns a GPU function's results pickled from a forked process: the app must travel."""
    copy = pickle.loads(pickle.dumps(indexed))
    assert copy.session.embedder is indexed.session.embedder  # found again in the process-wide model cache
    assert copy.session.current.embedder is indexed.session.embedder
    assert len(copy.session.chunks) == len(indexed.session.chunks)
    before, *_ = ui.search_once("eiffel", "none", "", 3, ui.NO_RERANKER, 3, copy)
    assert len(before) == 3


def test_sessions_are_independent(tiny_encoder, sample_corpus, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("a lone document about volcanoes")
    *_, a = ui.load_corpus([sample_corpus])
    *_, b = ui.load_corpus([str(other)])
    assert a is not b and len(a.session.corpus.documents) == 26 and list(b.session.corpus.documents["doc_id"]) == ["other.txt"]
    assert app_state.get(None) is not app_state.get(None)


def test_model_info_shows_dimension_and_instruction():
    assert "384" in ui.model_info("bge-small-en-v1.5") and "Represent this sentence" in ui.model_info("bge-small-en-v1.5")
    assert "Custom model" in ui.model_info("<b>me/model</b>") and "<b>me" not in ui.model_info("<b>me/model</b>")


def test_build_app_exposes_the_api():
    demo = layout.build_app()
    names = {dep.api_name for dep in demo.fns.values() if dep.api_visibility == "public"}
    assert {"load_corpus", "build_index", "search", "compare_prefix", "map"} <= names
