"""A public Space's app-side findings, each checked the way a visitor would hit it (no browser, real models):
unbounded instructions, one session's build holding the shared model, a dropped connection or a dropped
session during a build, memory kept per session, spreadsheet formulas and invisible controls in output."""
from __future__ import annotations

import threading
import time

import gradio as gr
import numpy as np
import pandas as pd
import pytest

from bge_explorer.app import explorer as ui
from bge_explorer.app import state as app_state
from bge_explorer.data.corpus import Corpus
from bge_explorer.data.qrels import Judgments
from bge_explorer.errors import LimitError
from bge_explorer.evaluation.evaluate import evaluate
from bge_explorer.models.loading import load_embedder
from bge_explorer.retrieval.embedding_cache import EmbeddingCache
from bge_explorer.session import Session
from bge_explorer.settings import Limits
from conftest import random_corpus


@pytest.fixture(scope="module")
def encoder(tiny_encoder):
    return load_embedder(tiny_encoder, precision="fp32", device="cpu")


@pytest.fixture()
def indexed(encoder, sample_corpus):
    session = Session()
    session.load_corpus([sample_corpus])
    session.build_index(encoder, chunk_size=None)
    return session


# -- 2. the instruction is bounded with the query -------------------------------------------------------------

def test_a_huge_instruction_is_refused_before_anything_is_encoded(indexed, monkeypatch):
    calls = []
    monkeypatch.setattr(indexed.embedder, "encode", lambda *a, **k: calls.append(a) or {})
    huge = "x" * 5_000_000
    with pytest.raises(LimitError, match="the query with its instruction has 5,000,005 characters.*MAX_QUERY_CHARS"):
        indexed.search("tower", indexed.config.with_(instruction=huge))
    judgments = Judgments({"q": "tower"}, {"q": {"eiffel-tower": 1}})
    with pytest.raises(LimitError, match="MAX_QUERY_CHARS"):
        evaluate(indexed, judgments, indexed.config.with_(instruction="y" * 1_000_000, chunk_size=None))
    assert calls == []


def test_the_app_answers_a_huge_instruction_with_a_short_message(encoder, sample_corpus, tiny_encoder):
    *_, app = ui.load_corpus([sample_corpus])
    *_, app = ui.build_index(tiny_encoder, chunking="none", state=app, progress=None)
    with pytest.raises(gr.Error) as info:
        ui.search_once("tower", "custom", "z" * 5_000_000, 5, ui.NO_RERANKER, 5, app)
    assert "BGE_EXPLORER_MAX_QUERY_CHARS" in info.value.message and len(info.value.message) < 500


# -- 3. one session's build does not hold the shared model --------------------------------------------------------

def test_a_search_is_served_between_the_batches_of_another_sessions_build(encoder, sample_corpus):
    big = Session()
    big.set_corpus(random_corpus(2_000, seed=3))
    small = Session()
    small.load_corpus([sample_corpus])
    small.build_index(encoder, chunk_size=None)
    first_batch, searched, calls = threading.Event(), threading.Event(), []

    def progress(done: int, total: int) -> None:  # the build pauses after its first batch until the search is done
        calls.append(done)
        first_batch.set()
        if len(calls) == 1:
            searched.wait(timeout=60)

    builder = threading.Thread(target=big.build_index, args=(encoder, None, 0, progress), daemon=True)
    builder.start()
    assert first_batch.wait(timeout=60)
    result: list = []
    searcher = threading.Thread(target=lambda: result.append(small.search("eiffel tower")), daemon=True)
    searcher.start()
    searcher.join(timeout=30)  # with the model held for the whole build, the search would wait for all of it
    finished_during_build = bool(result) and len(calls) == 1
    searched.set()
    builder.join(timeout=120)
    assert finished_during_build and len(result[0]) > 0
    assert calls[-1] == len(big.chunks)  # and the build then finished


# -- 3./4. Stop, a dropped connection, a dropped session ----------------------------------------------------------

def _build_stopped_by(action, tiny_encoder, sample_corpus):
    *_, app = ui.load_corpus([sample_corpus])

    class Request:
        session_hash = "tab-7"

    def progress(*args, **kwargs):
        if isinstance(args[0], tuple):  # the first embedding batch is done
            action(app, Request())
    out = ui.build_index(tiny_encoder, chunk_size=8, overlap=0, state=app, progress=progress, request=Request())
    return app, out


@pytest.mark.parametrize("action", [lambda app, request: ui.stop(app),
                                    lambda app, request: ui.client_left(request)],
                         ids=["stop-button", "client-left"])
def test_a_build_stops_quietly_and_leaves_nothing_half_built(action, tiny_encoder, sample_corpus):
    app, out = _build_stopped_by(action, tiny_encoder, sample_corpus)
    assert out[-1] is app and app.session.current is None and app.session.corpus is not None
    assert app.session.search  # the session still serves: build again
    *_, app = ui.build_index(tiny_encoder, chunking="none", state=app, progress=None)
    assert len(app.session.chunks) == 26


def test_a_build_whose_session_was_dropped_ends_quietly(tiny_encoder, sample_corpus):
    app, out = _build_stopped_by(lambda app, request: app_state.drop(app), tiny_encoder, sample_corpus)
    assert app.closed and app.session.corpus is None and app.session.current is None
    assert all(value is not app for value in out)  # nothing is handed back to a state Gradio dropped


# -- 8. memory is bounded per session and given back ---------------------------------------------------------------

def test_the_encoding_cache_drops_the_least_recent_model_past_its_budget(encoder, tiny_m3):
    other = load_embedder(tiny_m3, model_class="m3", precision="fp32", device="cpu")
    passages = [f"passage {i} about rivers and towers" for i in range(50)]
    cache = EmbeddingCache(max_bytes=50 * encoder.dim * 4 + 1_000)
    cache.embed(encoder, passages)
    assert cache.count(encoder) == 50
    cache.embed(other, passages)  # over the budget now: the first model's encodings go
    assert cache.count(encoder) == 0 and cache.count(other) == 50
    again = encoder.corpus_texts_encoded
    cache.embed(encoder, passages[:5])
    assert encoder.corpus_texts_encoded == again + 5


def test_an_index_part_over_the_session_limit_is_refused_by_name(tiny_m3, sample_corpus):
    m3 = load_embedder(tiny_m3, model_class="m3", precision="fp32", device="cpu")
    session = Session(Limits(max_session_mb=0.001))
    session.load_corpus([sample_corpus])
    with pytest.raises(LimitError, match="BGE_EXPLORER_MAX_SESSION_MB"):
        session.build_index(m3, chunk_size=None)
    roomy = Session(Limits(max_session_mb=1))
    roomy.load_corpus([sample_corpus])
    roomy.build_index(m3, chunk_size=None)
    estimate = roomy.index_state().estimate_bytes("colbert")
    tight = Session(Limits(max_session_mb=(estimate / 2) / 2**20))
    tight.set_corpus(roomy.corpus)
    tight.build_index(m3, chunk_size=None)
    with pytest.raises(LimitError, match="ColBERT.*BGE_EXPLORER_MAX_SESSION_MB"):
        tight.index_state().part("colbert")


def test_a_dropped_session_keeps_nothing(tiny_encoder, sample_corpus):
    *_, app = ui.load_corpus([sample_corpus])
    *_, app = ui.build_index(tiny_encoder, chunking="none", state=app, progress=None)
    assert app.session.memory_bytes() > 0
    app_state.drop(app)
    assert app.session.memory_bytes() == 0 and app.ranking is None


# -- 9. spreadsheet formulas and invisible controls ---------------------------------------------------------------

def test_exported_results_neutralise_formulas_and_tables_show_hidden_controls(tmp_path, tiny_encoder):
    path = tmp_path / "invoice\u202etxt.exe.jsonl"
    rows = [{"_id": "=HYPERLINK(\"http://x\")", "title": "", "text": "=cmd|' /C calc'!A0 tower"},
            {"_id": "plain", "title": "", "text": "-2 plain tower text"}]
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    summary, docs, _, app = ui.load_corpus([str(path)])
    assert "\\u202e" in docs["source"].iloc[0] and "\u202e" not in summary
    *_, app = ui.build_index(tiny_encoder, chunking="none", state=app, progress=None)
    ui.search_once("tower", "none", "", 2, ui.NO_RERANKER, 2, app)
    exported = pd.read_csv(ui.export_results(app), dtype=str, keep_default_na=False)
    assert set(exported["doc_id"]) == {"'=HYPERLINK(\"http://x\")", "plain"}
    assert exported["text"].str.startswith("'=").sum() == 1 and "'-2 plain tower text" in set(exported["text"])


def test_non_numbers_from_the_api_get_a_named_message(tiny_encoder, sample_corpus):
    *_, app = ui.load_corpus([sample_corpus])
    with pytest.raises(gr.Error, match="chunk size must be a whole number"):
        ui.build_index(tiny_encoder, chunk_size="abc", state=app, progress=None)
    *_, app = ui.build_index(tiny_encoder, chunking="none", state=app, progress=None)
    with pytest.raises(gr.Error, match="k must be a whole number"):
        ui.search_once("tower", "none", "", "abc", ui.NO_RERANKER, 5, app)


def test_the_page_says_how_long_the_chunk_limit_takes_on_a_cpu():
    text = Limits().describe()
    assert "10,000 chunks" in text and "minutes" in text and "MB kept per session" in text
    assert np.isfinite(Limits().max_session_mb) and isinstance(Corpus, type)


def test_session_dirs_left_by_an_earlier_process_are_swept(tmp_path, monkeypatch):
    import os
    import time

    from bge_explorer.app import workspace

    monkeypatch.setenv("BGE_EXPLORER_TMP_DIR", str(tmp_path))
    orphan = tmp_path / "session-from-before-a-restart"
    (orphan / "uploads").mkdir(parents=True)
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    fresh = workspace.new_dir()
    assert str(orphan) in workspace.sweep(ttl_s=3600) and not orphan.exists() and os.path.isdir(fresh)


def test_the_unload_handler_receives_the_request():
    """Gradio hands ``gr.Request`` only to a parameter annotated with it."""
    from gradio.utils import get_type_hints

    assert get_type_hints(ui.client_left)["request"] is gr.Request
    assert get_type_hints(ui.build_index)["request"] is gr.Request


def test_gradio_leftovers_are_swept_and_nothing_else(tmp_path):
    """gr.File leaves an empty tmp* file per upload and a dropped client its partial upload; Gradio never deletes
    them. The sweep removes those (and empty cache folders) once idle past the age, and no other name."""
    import os

    from bge_explorer.app import workspace

    old = time.time() - 7_200

    def made(path, text="", age=old):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        os.utime(path, (age, age))
        return path

    loose_old, loose_new = made(tmp_path / "tmpab12cd"), made(tmp_path / "tmpzz99yy", age=time.time())
    operator_file = made(tmp_path / "notes.txt", "keep me")
    empty_cache = tmp_path / ("a" * 64)
    empty_cache.mkdir()
    old_cache = made(tmp_path / ("b" * 64) / "report.csv").parent
    new_cache = made(tmp_path / ("c" * 64) / "map.html", age=time.time()).parent
    other_dir = made(tmp_path / "session-keep" / "x.txt").parent

    removed = set(workspace.sweep_gradio_temp(tmp_path, 3_600))
    assert removed == {str(loose_old), str(empty_cache)}
    assert loose_new.exists() and operator_file.exists() and old_cache.exists() and other_dir.exists()
    assert set(workspace.sweep_gradio_temp(tmp_path, 3_600, cache_too=True)) == {str(old_cache)}
    assert new_cache.exists() and operator_file.exists() and other_dir.exists()
