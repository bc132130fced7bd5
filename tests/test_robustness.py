"""Issue 5 in CI: hostile inputs, concurrent users, XSS, session files, safe model loading.

The app runs as ``python app.py`` in a subprocess on 127.0.0.1 (bench/robustness.py's Server) with tiny
random models; the checks are bench/robustness.py's functions with small N.
"""
from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest

pytest.importorskip("gradio_client")
from gradio_client import handle_file

ROOT = Path(__file__).resolve().parent.parent
from bench import robustness

from bge_explorer.app import explorer as ui  # noqa: E402

from bge_explorer.app import layout, state as app_state, workspace
from bge_explorer.errors import ModelLoadError  # noqa: E402
from bge_explorer.settings import Limits  # noqa: E402


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    work = tmp_path_factory.mktemp("robustness")
    marker = work / "REMOTE_CODE_RAN"
    models = robustness.prepare_models(work / "models", marker)
    broken = work / "models" / "broken-model"  # validates (config.json, no auto_map) but its weights are garbage
    shutil.copytree(models["encoder"], broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file" * 100)
    models["broken"] = str(broken)
    files = robustness.make_hostile_files(work / "hostile")
    with robustness.Server(work, work / "models") as server:
        yield server, models, files, marker, work


@pytest.mark.slow  # a served app under hostile input and load
def test_every_hostile_input_gets_a_clear_message_and_the_app_keeps_serving(bench):
    server, models, files, marker, _ = bench
    outcomes = robustness.run_hostile(server.url, files, models, marker, server, log=lambda line: None)
    assert len(outcomes) >= 25
    assert [(o.name, o.message) for o in outcomes if o.status != "handled"] == []
    assert not marker.exists()  # the remote-code model's module was never imported
    assert server.alive()


@pytest.mark.slow  # a served app under hostile input and load
def test_concurrent_clients_see_only_their_own_documents(bench):
    server, models, _, _, work = bench
    report = robustness.run_load(server.url, models["encoder"], work / "load", n_clients=5, n_searches=5,
                                 log=lambda line: None)
    assert report.errors == [] and report.leaks == []
    assert report.answers == 25


@pytest.mark.slow  # a served app under load
def test_fairness_measures_searches_idle_and_during_another_sessions_build(bench):
    server, models, _, _, work = bench
    report = robustness.run_fairness(server.url, models["encoder"], work / "fairness", n_clients=2, n_chunks=2_000,
                                     idle_s=3, log=lambda line: None)
    assert report.errors == [] and report.leaks == []
    assert report.idle and report.during and report.build_chunks == 2_000
    assert report.build_alone_s > 0 and report.build_during_s > 0  # the ratio itself depends on the machine's load


def test_bench_helpers_tables_and_synthetic_corpora(tmp_path):
    path = robustness.synthetic_corpus(tmp_path / "c.jsonl", 50, seed=3, prefix="x")
    lines = path.read_text().splitlines()
    assert len(lines) == 50 and '"_id": "x-49"' in lines[-1]
    assert robustness.percentile([3.0, 1.0, 2.0], 50) == 2.0
    shown: list[str] = []
    robustness.print_table("t", ["a", "bb"], [[1, "x"]], shown.append)
    assert shown[1].split() == ["a", "bb"] and shown[3].split() == ["1", "x"]


@pytest.mark.browser
@pytest.mark.skipif(not os.path.exists(robustness.CHROMIUM), reason="/usr/bin/chromium is missing")
def test_xss_payloads_run_nothing_in_chromium(bench):
    pytest.importorskip("playwright.sync_api")
    server, models, _, _, work = bench
    report = robustness.run_xss(server.url, models["encoder"], work / "xss", log=lambda line: None)
    assert report.error == ""
    assert report.dialogs == [] and report.pwned is None and report.dangerous_dom == []
    assert report.external_requests == []
    assert report.executed == 0 and report.shown_as_text == report.payloads


@pytest.mark.slow  # a served app under hostile input and load
def test_a_failed_model_load_leaves_the_previous_model_working(bench):
    server, models, _, _, _ = bench
    c = robustness.client(server.url)
    c.predict([handle_file(robustness.SAMPLE)], "", "", "", api_name="/load_corpus")
    loaded, status, *_ = c.predict(models["encoder"], "auto", "auto", "none", 256, 32, api_name="/build_index")
    assert "Index ready" in status
    for bad in (models["broken"], models["remote_code"], "../../etc"):
        with pytest.raises(Exception, match="Cannot load model"):
            c.predict(bad, "auto", "auto", "none", 256, 32, api_name="/build_index")
        before, *_ = c.predict("eiffel tower paris", "none", "", 5, "none", 5, api_name="/search")
        assert len(before["data"]) == 5
    again, *_ = c.predict(models["encoder"], "auto", "auto", "none", 256, 32, api_name="/build_index")
    assert again == loaded


# ------------------------------------------------------------------------------------- in-process checks

def test_uploads_go_to_a_private_session_directory_deleted_with_the_session(tmp_path, monkeypatch, sample_corpus):
    monkeypatch.setenv("BGE_EXPLORER_TMP_DIR", str(tmp_path / "sessions"))
    upload = tmp_path / "notes.txt"
    upload.write_text("Private notes of one visitor.")
    *_, a = ui.load_corpus([str(upload)])
    *_, b = ui.load_corpus([str(upload)])
    assert a.workdir != b.workdir
    for app in (a, b):
        assert Path(app.workdir).parent == tmp_path / "sessions"
        assert oct(os.stat(app.workdir).st_mode & 0o777) == "0o700"
        assert list(Path(app.workdir).rglob("notes.txt"))
    assert a.session.corpus.documents["doc_id"].tolist() == ["notes.txt"]

    app_state.drop(a)  # gr.State's delete_callback (idle past the TTL, or an hour after the tab closed)
    assert not os.path.exists(a.workdir or "/nonexistent") and a.session.corpus is None

    class Request:  # what demo.unload hands its function: the session hash of the connection that closed
        session_hash = "tab-1"

    folder = b.workdir
    ui.client_left(Request())  # a dropped connection (a proxy, a network blip) wipes nothing
    assert os.path.exists(folder) and b.session.corpus is not None

    *_, c = ui.load_corpus([str(upload)])
    folder = c.workdir
    assert folder in workspace.sweep(ttl_s=0) and not os.path.exists(folder)


def test_the_app_wires_ttl_cleanup_limits_and_a_shared_model_queue():
    import gradio as gr

    demo = layout.build_app()
    states = [b for b in demo.blocks.values() if isinstance(b, gr.State)]
    from bge_explorer.app import connect

    # the page's states drop their AppState; the Connect tab's closes its client and removes its files
    assert states and all(s.delete_callback in (app_state.drop, connect.drop)
                          and s.time_to_live == workspace.session_ttl_s() for s in states)
    assert sum(s.delete_callback is connect.drop for s in states) == 1
    assert demo.delete_cache is not None
    markdown = " ".join(str(b.value) for b in demo.blocks.values() if isinstance(b, gr.Markdown))
    assert "10,000 chunks" in markdown and "k up to 1,000" in markdown  # Limits.describe() is on the page
    model_events = {fn.api_name: fn for fn in demo.fns.values()
                    if fn.api_name in ("build_index", "search", "compare_prefix", "evaluate")}
    assert len(model_events) == 4
    assert {n: fn.concurrency_id for n, fn in model_events.items()} == {
        "build_index": "builds", "search": "models", "compare_prefix": "models", "evaluate": "models"}
    assert any(fn.fn is ui.client_left for fn in demo.fns.values())


def test_the_server_keeps_at_most_the_configured_number_of_sessions(monkeypatch):
    """Gradio keeps 10,000 visitors' states and component values unless told; app.py passes the setting."""
    import app as app_module
    from conftest import free_port

    monkeypatch.setenv("BGE_EXPLORER_MAX_SESSIONS", "3")
    monkeypatch.setenv("BGE_EXPLORER_MAX_UPLOAD_MB", "7")
    demo = layout.build_app()
    demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=free_port(),
                **app_module.launch_options())
    try:
        assert demo.state_holder.capacity == 3 and demo.max_file_size == 7 * 2**20
    finally:
        demo.close()


def test_k_and_top_n_out_of_range_name_the_limit(sample_corpus, tiny_encoder):
    *_, session = ui.load_corpus([sample_corpus])
    session = ui.build_index(tiny_encoder, chunking="none", state=session, progress=None)[-1]
    for k in (0, 10**9, float("nan"), "ten"):
        with pytest.raises(Exception, match=r"between 1 and 1,000"):
            ui.search_once("eiffel", "none", "", k, "none", 5, session)
    with pytest.raises(Exception, match=r"BGE_EXPLORER_MAX_QUERY_CHARS"):
        ui.search_once("x" * 100_000, "none", "", 5, "none", 5, session)
    assert Limits().describe().startswith("Limits:")


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).write_text, ("pwned",))


def test_m3_side_weights_are_loaded_with_weights_only(tmp_path):
    """FlagEmbedding loads colbert_linear.pt with torch.load(weights_only=True): a pickle with code is refused."""
    from bge_explorer.models import random_models
    from bge_explorer.models.loading import load_embedder

    model = Path(random_models.build(tmp_path / "evil-m3", "m3"))
    marker = tmp_path / "PICKLE_RAN"
    with open(model / "colbert_linear.pt", "wb") as f:
        pickle.dump({"weight": _Evil(str(marker))}, f, protocol=2)
    with pytest.raises(ModelLoadError, match="Weights only load failed"):
        load_embedder(str(model), model_class="m3")
    assert not marker.exists()


def test_long_documents_are_tokenized_in_pieces_with_the_same_chunks(monkeypatch, sample_corpus, tiny_encoder):
    from bge_explorer.data import chunking
    from bge_explorer.data.corpus import load_corpus
    from bge_explorer.errors import LimitError
    from bge_explorer.models.loading import load_embedder

    tokenizer = load_embedder(tiny_encoder).tokenizer
    documents = load_corpus([sample_corpus]).documents
    whole = chunking.chunk_documents(documents, tokenizer, 32, 8).table
    monkeypatch.setattr(chunking, "SEGMENT_CHARS", 50)  # every document in many pieces, batches of a few
    pieces = chunking.chunk_documents(documents, tokenizer, 32, 8).table
    assert pieces.equals(whole)

    huge = documents.head(1).assign(text="volcano lava " * 200_000)  # stops long before the end
    with pytest.raises(LimitError, match=r"over the limit of 10 chunks \(BGE_EXPLORER_MAX_CHUNKS\)"):
        chunking.chunk_documents(huge, tokenizer, 16, 0, max_chunks=10)
