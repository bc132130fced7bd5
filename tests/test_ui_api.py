"""The app served in-process and driven through gradio_client, as an API user would."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file

from bge_explorer.app import layout
from conftest import free_port



@pytest.fixture(scope="module")
def app_url():
    demo = layout.build_app()
    demo.queue(default_concurrency_limit=2)
    port = free_port()
    demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=port)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def client(url: str) -> Client:
    return Client(url, verbose=False)


def test_api_endpoints_are_public(app_url):
    names = client(app_url).view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/load_corpus", "/build_index", "/search", "/compare_prefix", "/map"} <= set(names)


def test_full_flow_through_the_api(app_url, sample_corpus, tiny_encoder, tiny_reranker):
    c = client(app_url)
    summary, documents, problems = c.predict([handle_file(sample_corpus)], "", "", "", api_name="/load_corpus")
    assert "<b>26</b> documents" in summary and len(documents["data"]) == 26 and problems == ""

    loaded, status, instruction, chunks, counts = c.predict(tiny_encoder, "auto", "auto", "tokens", 64, 8,
                                                            api_name="/build_index")
    assert "dimension 32" in loaded and "Index ready" in status
    assert chunks["headers"] == ["document", "chunk", "page", "tokens", "text"] and len(chunks["data"]) > 26

    before, after, summary, detail = c.predict("eiffel tower paris", "model default", "", 5, tiny_reranker, 10,
                                               api_name="/search")
    assert [row[0] for row in before["data"]] == [1, 2, 3, 4, 5]
    assert "movement" in after["headers"] and "logit" in after["headers"] and len(after["data"]) == 5
    assert "rescored the top 10" in summary

    with_, without, summary = c.predict("eiffel tower paris", "Query: ", 5, api_name="/compare_prefix")
    assert len(with_["data"]) == len(without["data"]) == 5 and "Overlap" in summary

    payload, status = c.predict("document", "", api_name="/map")
    drawn = json.loads(payload)  # the map's points: binary arrays (base64) and escaped text
    assert drawn["n"] == len(chunks["data"]) and drawn["x"]["dtype"] == "float32"
    assert len(drawn["query"]["retrieved"]) == 5 and len(drawn["query"]["reranked"]) == 5
    assert "UMAP map" in status

    csv_path = c.predict(api_name="/export_results")
    with open(csv_path, encoding="utf-8") as f:
        assert f.readline().startswith("query,instruction,reranker,config_id,rank")


def test_bad_upload_is_reported_and_the_app_keeps_serving(app_url, tmp_path, sample_corpus):
    c = client(app_url)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json}\n")
    with pytest.raises(Exception, match="bad.jsonl"):
        c.predict([handle_file(str(bad))], "", "", "", api_name="/load_corpus")
    summary, documents, problems = c.predict([handle_file(sample_corpus), handle_file(str(bad))], "", "", "",
                                             api_name="/load_corpus")
    assert len(documents["data"]) == 26 and "bad.jsonl" in problems


def test_two_clients_see_only_their_own_corpus(app_url, tmp_path, sample_corpus, tiny_encoder):
    mine = tmp_path / "volcano-notes.txt"
    mine.write_text("Volcano notes: magma chambers under the mountain, eruption warnings, lava and ash.")
    a, b = client(app_url), client(app_url)
    a.predict([handle_file(sample_corpus)], "", "", "", api_name="/load_corpus")
    b.predict([handle_file(str(mine))], "", "", "", api_name="/load_corpus")
    a.predict(tiny_encoder, "auto", "auto", "none", 256, 32, api_name="/build_index")
    b.predict(tiny_encoder, "auto", "auto", "none", 256, 32, api_name="/build_index")
    before_a, *_ = a.predict("volcano eruption", "none", "", 100, "none", 20, api_name="/search")
    before_b, *_ = b.predict("eiffel tower paris", "none", "", 100, "none", 20, api_name="/search")
    docs_a = {row[1] for row in before_a["data"]}
    docs_b = {row[1] for row in before_b["data"]}
    assert len(docs_a) == 26 and "volcano-notes.txt" not in docs_a
    assert docs_b == {"volcano-notes.txt"}


def test_non_numbers_sent_to_numeric_fields_are_refused_by_name(app_url, sample_corpus, tiny_encoder):
    """Gradio's own slider check fails with a TypeError on "abc" (a generic "upstream app" error); ours names it."""
    c = client(app_url)
    c.predict([handle_file(sample_corpus)], "", "", "", api_name="/load_corpus")
    with pytest.raises(Exception, match=r"Chunk size \(tokens\) must be a number"):
        c.predict(tiny_encoder, "auto", "auto", "tokens", "abc", 8, api_name="/build_index")
    c.predict(tiny_encoder, "auto", "auto", "none", 64, 8, api_name="/build_index")
    with pytest.raises(Exception, match="Top k must be a number"):
        c.predict("tower", "model default", "", "abc", "none", 10, api_name="/search")
    before, *_ = c.predict("tower", "model default", "", 3, "none", 10, api_name="/search")
    assert len(before["data"]) == 3


def test_the_mcp_server_offers_search_evaluate_experiment_and_compare():
    """``python app.py --mcp``: Gradio's MCP server, whose tools are the public endpoints, typed and documented."""
    import httpx

    import app as app_module

    demo = layout.build_app()
    port = free_port()
    demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=port,
                **app_module.launch_options(mcp=True))
    try:
        tools = {t["name"]: t for t in httpx.get(f"http://127.0.0.1:{port}/gradio_api/mcp/schema", timeout=30).json()}
    finally:
        demo.close()
    assert {"search", "evaluate", "experiment", "compare"} <= set(tools)
    search = tools["search"]
    properties = search["inputSchema"]["properties"]
    assert properties["query"]["type"] == "string" and "search for" in properties["query"]["description"]
    assert "k" in properties and "Search the index" in search["description"]
    assert "configs_yaml" in tools["experiment"]["inputSchema"]["properties"]
    assert "state" not in properties  # the session's state is not a tool parameter
