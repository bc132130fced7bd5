"""The page explains itself (no browser): empty states follow what a session has, model lists say what can load
here, shared links are validated, the demo's first step sets the controls."""
from __future__ import annotations

import os

import pytest

from bge_explorer import settings
from bge_explorer.app import choices, demo, explorer, map as map_tab, share, views
from bge_explorer.models.availability import availability
from bge_explorer.models.catalog import DEFAULT_MODEL, OFFLINE_MODEL


@pytest.fixture()
def env(monkeypatch):
    """Set BGE_EXPLORER_* variables for one test (settings are read from the environment each time)."""
    def set_(**values):
        for key, value in values.items():
            monkeypatch.setenv(f"BGE_EXPLORER_{key}", value)
    return set_


# --------------------------------------------------------------------------------------------- availability

def test_availability_says_where_a_model_loads_from_offline(tiny_encoder):
    assert availability(OFFLINE_MODEL).where == "packaged"
    assert availability(tiny_encoder).where == "local path"
    hub = availability(DEFAULT_MODEL)  # HF_HUB_OFFLINE=1 (conftest) and nothing cached
    assert not hub.can_load and hub.needs_hub and "cannot be reached" in hub.reason
    assert not availability("https://example.com/model").can_load
    missing = availability("/no/such/model/dir")
    assert not missing.can_load and not missing.needs_hub and missing.reason


def test_model_lists_mark_what_can_load_here(tiny_reranker):
    models = dict((value, text) for text, value in choices.choices("model"))
    assert models[OFFLINE_MODEL].endswith("packaged")
    assert "needs the Hub" in models[DEFAULT_MODEL] and OFFLINE_MODEL in models[DEFAULT_MODEL]  # the fallback
    rerankers = dict((value, text) for text, value in choices.choices("reranker"))
    assert rerankers["none"] == "none"
    assert all("needs the Hub" in text for value, text in rerankers.items() if value != "none")
    # picking one says at once why it cannot load, or where it loads from
    assert "cannot load here" in choices.availability_html("bge-reranker-base", "reranker")
    assert "local path" in choices.availability_html(tiny_reranker, "reranker")
    assert choices.availability_html("none", "reranker") == ""


# ------------------------------------------------------------------------------------------------ empty states

def test_empty_states_follow_the_session(sample_corpus, tiny_encoder):
    fresh = views.facts(None)
    assert views.empty_message("results", fresh) == ("Load a corpus and build the index first.", "corpus")
    assert views.empty_message("documents", fresh)[1] is None
    assert not views.shown("why", fresh) and not views.shown("prepared", fresh)

    _, _, _, app = explorer.load_sample(None)
    f = views.facts(app)
    assert f.corpus and f.sample and views.empty_message("documents", f) is None
    assert views.empty_message("results", f)[1] == "model"  # "Build the index first" -> Model & index
    assert views.go_to(views.go_label(views.empty_message("results", f))) == "model"
    assert views.shown("prepared", f)

    *_, app = explorer.build_index(tiny_encoder, state=app, progress=None)
    f = views.facts(app)
    assert views.empty_message("chunks", f) is None
    assert views.empty_message("results", f) == ("Type a query above and press <b>Search</b>.", None)
    explorer.search_once("eiffel tower", state=app)
    f = views.facts(app)
    assert views.empty_message("results", f) is None and views.shown("why", f)
    assert views.empty_message("after", f) is not None  # no reranker: the reranked list has a line instead
    assert not views.shown("why_bm25", f)  # closed until a result is explained
    explorer.explain(1, app)
    f = views.facts(app)
    assert views.shown("why_bm25", f) and not views.shown("why_lexical", f)  # no M3 panels for a dense model
    assert views.empty_message("export", f) is None
    assert views.empty_message("map", f) is not None
    next(map_tab.map_view("document", app))
    assert views.empty_message("map", views.facts(app)) is None

    *_, app = explorer.build_index(tiny_encoder, chunking="none", state=app, progress=None)
    f = views.facts(app)  # a new index: its results, map and explanation are gone
    assert not f.results and not f.mapped and not f.explained


def test_why_this_match_offers_m3_panels_only_for_an_m3_index(sample_corpus, tiny_m3):
    _, _, _, app = explorer.load_sample(None)
    *_, app = explorer.build_index(tiny_m3, model_class="m3", chunking="none", state=app, progress=None)
    explorer.search_once("eiffel tower", state=app)
    explorer.explain(1, app)
    f = views.facts(app)
    assert views.shown("why_lexical", f) and views.shown("why_bm25", f)


def test_an_uploaded_corpus_is_not_the_sample(sample_corpus):
    _, _, _, app = explorer.load_corpus([sample_corpus.replace("sample_corpus", "../assets/sample_corpus")])
    assert app.corpus_name is None and not views.facts(app).sample


# ----------------------------------------------------------------------------------------------- shared links

def test_a_link_round_trips_the_view():
    qs = share.view_query("sample", "bge-m3", "custom", "Query: ", "bge-reranker-base", "hybrid", 7, "a & b?")
    from urllib.parse import parse_qsl
    view, notes = share.parse_view(dict(parse_qsl(qs[1:])))
    assert notes == []
    assert view == share.View(corpus="sample", model="bge-m3", instruction_mode="custom", instruction="Query: ",
                              reranker="bge-reranker-base", mode="hybrid", k=7, query="a & b?")
    uploaded = share.view_query(None, "bge-m3", "model default", "", "none", "dense", 10, "x")
    assert "corpus" not in uploaded and "instruction=" not in uploaded


@pytest.mark.parametrize("params, name", [
    ({"corpus": "/etc/passwd"}, "corpus"),
    ({"model": "/etc"}, "model"),
    ({"model": "../models/x"}, "model"),
    ({"model": "file:///etc/passwd"}, "model"),
    ({"model": "bge-reranker-base"}, "model"),
    ({"reranker": "bge-m3"}, "reranker"),
    ({"mode": "<script>"}, "mode"),
    ({"k": "0"}, "k"), ({"k": "1e9"}, "k"), ({"k": "-3"}, "k"),
    ({"instruction_mode": "sometimes"}, "instruction_mode"),
    ({"q": "x" * 5000}, "q"),
    ({"instruction": "x" * 5000}, "instruction"),
])
def test_a_link_parameter_that_fails_is_dropped_and_named(params, name):
    view, notes = share.parse_view(params)
    assert view.empty and len(notes) == 1 and f"'{name}'" in notes[0]


def test_a_link_names_a_local_model_only_inside_the_model_roots(env, tiny_encoder):
    view, notes = share.parse_view({"model": tiny_encoder})  # no roots: never a path from a URL
    assert view.model is None and "BGE_EXPLORER_MODEL_ROOTS" in notes[0]
    env(MODEL_ROOTS=os.path.dirname(os.path.dirname(tiny_encoder)))
    view, notes = share.parse_view({"model": tiny_encoder})
    assert view.model == tiny_encoder and notes == []
    env(MODEL_ROOTS="/nonexistent-root")
    view, notes = share.parse_view({"model": tiny_encoder})
    assert view.model is None and "outside" in notes[0]
    assert settings.current().model_roots


def test_opening_a_link_sets_the_controls_and_names_what_it_dropped():
    class Request:
        query_params = {"corpus": "sample", "model": "bge-m3", "q": "eiffel", "mode": "bm25", "k": "oops"}

    view, model, instruction_mode, instruction, reranker, mode, k, query, compare_query, note = \
        demo.open_link(None, Request())
    assert (view.corpus, model, mode, query, compare_query) == ("sample", "bge-m3", "bm25", "eiffel", "eiffel")
    assert "&#x27;k&#x27; ignored" in note
    searched = demo.restore_search(share.View(), "q", "model default", "", 10, "none", 20, None)
    assert searched[-1] is not None and all(not isinstance(v, str) for v in searched[:5])  # nothing ran


def test_the_demo_loads_the_sample_and_prepares_a_search(tiny_reranker):
    out = demo.start_demo(tiny_reranker, None)
    app = out[-1]
    assert app.corpus_name == "sample" and len(app.session.corpus.documents) == 26
    assert out[11] == demo.PREPARED_QUERIES[0] and out[13] == tiny_reranker  # query and the reranker that loads
    assert demo.demo_reranker(None)[0] == "none"  # offline, no catalog reranker can load: said on the page
    assert "No reranker can load here" in demo.demo_reranker(None)[1]
