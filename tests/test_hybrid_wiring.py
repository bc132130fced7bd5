"""Hybrid retrieval wired through the CLI, the evaluation engine, the UI handlers and the HTTP API, with the tiny
random BGE-M3 model (real BGEM3FlagModel), the tiny encoder and reranker, and real bm25s."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import gradio as gr
import numpy as np
import pandas as pd
import pytest

from bge_explorer.cli.commands import main
from bge_explorer.evaluation.evaluate import evaluate
from bge_explorer.data.qrels import combine
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.session import Session
from conftest import SAMPLE_QUESTIONS as QUESTIONS
from conftest import free_port
from test_evaluation import write_beir

PAYLOAD = "<script>alert(1)</script>"


from bge_explorer.app import explorer as ui  # noqa: E402
from bge_explorer.app import evaluate as ui_evaluate  # noqa: E402
from bge_explorer.app import layout  # noqa: E402
from bge_explorer.app.render import mib  # noqa: E402
from bge_explorer.app.state import AppState  # noqa: E402


@pytest.fixture()
def beir_dir(tmp_path, sample_corpus):
    queries = {f"q{i}": text for i, text in enumerate(QUESTIONS)}
    return write_beir(tmp_path / "sample", sample_corpus, queries,
                      [(f"q{i}", doc, 1) for i, doc in enumerate(QUESTIONS.values())])


def judgments():
    queries = {f"q{i}": text for i, text in enumerate(QUESTIONS)}
    return combine(queries, {f"q{i}": {d: 1} for i, d in enumerate(QUESTIONS.values())})


def read_csv(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text))


# ---------------------------------------------------------------------------------------------------------
# CLI search


def test_search_bm25_needs_no_model_and_ranks_by_bm25(sample_corpus):
    """`search --mode bm25` without --model: no embedding model is even imported, and the top hit shares the words."""
    code = ("import sys; from bge_explorer.cli.commands import main; "
            f"rc = main(['search', '--corpus', {sample_corpus!r}, '--mode', 'bm25', '--k', '3', '--format', 'csv', "
            "'when was the eiffel tower built']); "
            "print('FLAG' if 'FlagEmbedding' in sys.modules else 'NOFLAG', file=sys.stderr); sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"HF_HUB_OFFLINE": "1", "PATH": "", "PYTHONPATH": "."})
    assert result.returncode == 0, result.stderr
    assert "NOFLAG" in result.stderr and "nothing embedded" in result.stderr
    table = read_csv(result.stdout)
    assert list(table.columns[:4]) == ["rank", "score", "bm25_score", "bm25_rank"]
    assert table.loc[0, "doc_id"] == "eiffel-tower" and table["score"].is_monotonic_decreasing
    assert (table["score"] == table["bm25_score"]).all()


def test_search_hybrid_shows_every_mode_and_the_fused_rank_then_reranks(sample_corpus, tiny_m3, tiny_reranker,
                                                                        capsys):
    assert main(["search", "--corpus", sample_corpus, "--model", tiny_m3, "--model-class", "m3", "--precision",
                 "fp32", "--mode", "hybrid", "--weights", "dense=0.4,sparse=0.2,colbert=0.4", "--k", "8",
                 "--reranker", tiny_reranker, "--top-n", "5", "--format", "csv", "eiffel tower paris"]) == 0
    table = read_csv(capsys.readouterr().out)
    for m in ("dense", "sparse", "colbert"):
        assert {f"{m}_score", f"{m}_rank"} <= set(table.columns)
    assert "bm25_score" not in table.columns
    # M3's weighted sum of the raw scores is the fused score; the reranker orders the fused top 5
    fused = (0.4 * table["dense_score"] + 0.2 * table["sparse_score"] + 0.4 * table["colbert_score"]) / 1.0
    np.testing.assert_allclose(table["fused_score"], fused, rtol=1e-5)
    assert table["rerank_rank"].tolist() == [1, 2, 3, 4, 5]
    assert sorted(table["fused_rank"]) == [1, 2, 3, 4, 5]
    assert (table["movement"] == table["fused_rank"] - table["rerank_rank"]).all()


def test_search_rrf_mixes_an_encoder_with_bm25(sample_corpus, tiny_encoder, capsys):
    assert main(["search", "--corpus", sample_corpus, "--model", tiny_encoder, "--mode", "hybrid", "--fusion", "rrf",
                 "--components", "dense,bm25", "--k", "5", "--format", "csv", "eiffel tower paris"]) == 0
    table = read_csv(capsys.readouterr().out)
    expected = 1 / (60 + table["dense_rank"]) + 1 / (60 + table["bm25_rank"])
    np.testing.assert_allclose(table["fused_score"], expected, rtol=1e-9)
    assert table["fused_rank"].tolist() == [1, 2, 3, 4, 5]


def test_search_mode_the_model_cannot_do_is_a_clear_error(sample_corpus, tiny_encoder, capsys):
    assert main(["search", "--corpus", sample_corpus, "--model", tiny_encoder, "--mode", "sparse", "q"]) == 2
    assert "needs a BGE-M3 model" in capsys.readouterr().err
    # with --mode hybrid, named weights pick the modes: dense and BM25 here, which M3's weighted sum cannot mix
    assert main(["search", "--corpus", sample_corpus, "--mode", "hybrid", "--fusion", "m3", "--weights",
                 "dense=1,bm25=1", "--model", tiny_encoder, "q"]) == 2
    assert "weighted or rrf" in capsys.readouterr().err
    assert main(["search", "--corpus", sample_corpus, "--mode", "bm25", "--weights", "dense=x", "q"]) == 2
    assert "--weights" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------
# Evaluation engine and CLI


def test_evaluate_any_mode_and_m3_encodes_each_passage_once(sample_corpus, tiny_m3):
    session = Session()
    session.load_corpus([sample_corpus])
    m3 = dict(model=tiny_m3, model_class="m3", precision="fp32", instruction="", chunk_size=None)
    sparse = evaluate(session, judgments(), RetrievalConfig(modes=("sparse",), **m3))
    assert sparse.config["mode"] == "sparse" and sparse.config["passages_embedded"] == 26
    hybrid = evaluate(session, judgments(), RetrievalConfig(modes=("hybrid",), fusion="m3", **m3))
    dense = evaluate(session, judgments(), RetrievalConfig(modes=("dense",), **m3))
    # the sparse pass also stored the dense vectors: neither hybrid nor dense encodes the corpus again
    assert hybrid.config["passages_embedded"] == 0 and dense.config["passages_embedded"] == 0
    assert hybrid.config["components"] == ["dense", "sparse"] and hybrid.config["weights"] == {"dense": 0.4,
                                                                                                "sparse": 0.2}
    # the fused document ranking is M3's weighted sum of the best chunk (one chunk per document here)
    assert all(len(r) == 26 for r in hybrid.rankings + dense.rankings)  # dense scores every document
    assert all(0 < len(r) <= 26 for r in sparse.rankings)  # sparse: the documents sharing a token
    colbert = evaluate(session, judgments(), RetrievalConfig(modes=("dense", "sparse", "colbert"), fusion="m3", **m3))
    assert colbert.config["index_memory_bytes"]["colbert"] > 0
    assert colbert.rankings != hybrid.rankings  # ColBERT changes the fused order


def test_evaluate_chunked_bm25_takes_each_documents_best_chunk(sample_corpus):
    session = Session()
    session.load_corpus([sample_corpus])
    whole = evaluate(session, judgments(), RetrievalConfig(model=None, modes=("bm25",), chunk_size=None))
    chunked = evaluate(session, judgments(), RetrievalConfig(model=None, modes=("bm25",), chunk_size=12, overlap=3))
    assert whole.config["model"] is None and whole.config["chunks"] == 26
    assert chunked.config["chunks"] > 26 and chunked.config["chunk_unit"] == "words"
    assert chunked.config["document_score"] == "best chunk"
    for ranking in chunked.rankings:
        assert len(ranking) == len(set(ranking))  # one entry per document
    assert whole.means()["mrr@10"] > 0.5  # the questions share words with their documents


def test_cli_evaluate_ab_dense_against_hybrid_with_significance(beir_dir, tiny_m3, tmp_path, capsys):
    out = tmp_path / "ab.json"
    assert main(["evaluate", "--beir", str(beir_dir), "--model", tiny_m3, "--model-class", "m3", "--precision",
                 "fp32", "--ab", "--b-mode", "hybrid", "--b-fusion", "rrf", "--b-components", "dense,sparse,bm25",
                 "--resamples", "200", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mode dense" in printed and "mode hybrid" in printed and "B wins/ties/losses" in printed
    payload = json.loads(out.read_text())
    assert payload["a"]["config"]["mode"] == "dense" and payload["b"]["config"]["mode"] == "hybrid"
    assert payload["b"]["config"]["components"] == ["dense", "sparse", "bm25"]
    assert payload["b"]["config"]["fusion"] == "rrf" and payload["b"]["config"]["passages_embedded"] == 0
    assert 0 < payload["comparison"]["metrics"]["ndcg@10"]["p_value"] <= 1


def test_cli_evaluate_bm25_against_a_model_from_a_config_file(beir_dir, tiny_encoder, tmp_path, capsys):
    spec = tmp_path / "ab.json"
    spec.write_text(json.dumps({"a": {"modes": ["bm25"], "model": None},  # RetrievalConfig fields
                                "b": {"modes": ["dense", "bm25"], "fusion": "weighted", "model": tiny_encoder,
                                      "weights": {"dense": 0.5, "bm25": 0.5}}}))
    assert main(["evaluate", "--beir", str(beir_dir), "--ab-config", str(spec), "--resamples", "100",
                 "--json", str(tmp_path / "r.json")]) == 0
    payload = json.loads((tmp_path / "r.json").read_text())
    assert payload["a"]["config"]["model"] is None and payload["a"]["config"]["label"].startswith("BM25")
    assert payload["b"]["config"]["weights"] == {"dense": 0.5, "bm25": 0.5}


# ---------------------------------------------------------------------------------------------------------
# UI handlers (no browser)


@pytest.fixture(scope="module")
def m3_session(tiny_m3, tmp_path_factory, sample_corpus):
    """The sample corpus plus a document full of markup, indexed whole by the tiny BGE-M3 model."""
    evil = tmp_path_factory.mktemp("evil") / "evil.jsonl"
    evil.write_text(json.dumps({"_id": "<b>evil</b>", "title": "", "text": f"{PAYLOAD} eiffel tower < > paris"}) + "\n")
    *_, session = ui.load_corpus([sample_corpus, str(evil)])
    *_, session = ui.build_index(tiny_m3, "auto", "m3", chunking="none", state=session, progress=None)
    return session


def test_hybrid_search_shows_a_column_per_mode_and_explains_what_was_left_out(m3_session):
    before, after, summary, detail, session = ui.search_once("eiffel tower paris", "none", "", 5, ui.NO_RERANKER, 5,
                                                        m3_session, "hybrid", "m3", 0.4, 0.2, 0.4, 0.2)
    assert list(before.columns[:2]) == ["fused rank", "document"] and before["fused rank"].tolist() == [1, 2, 3, 4, 5]
    assert {"dense score", "dense rank", "sparse score", "sparse rank"} <= set(before.columns)
    assert before.columns[5] == "text"  # the text column keeps its place; per-mode columns follow it
    assert "ColBERT (M3 multi-vector) left out: switch it on first" in summary and "BM25 left out" in summary
    table = session.ranking.table
    np.testing.assert_allclose(table["score"], (0.4 * table["dense_score"] + 0.2 * table["sparse_score"]) / 0.6,
                               rtol=1e-6)
    # a single mode ranks by its own score; BM25 mixes in with rrf
    before, *_ = ui.search_once("eiffel tower paris", "none", "", 5, ui.NO_RERANKER, 5, m3_session, "sparse")
    assert before["rank"].tolist() == before["sparse rank"].tolist()
    before, _, summary, *_ = ui.search_once("eiffel tower paris", "none", "", 5, ui.NO_RERANKER, 5, m3_session, "hybrid",
                                       "rrf", 0.5, 0.0, 0.0, 0.5)
    assert {"dense rank", "BM25 rank"} <= set(before.columns) and "sparse rank" not in before.columns
    with pytest.raises(gr.Error, match="nothing to fuse"):
        ui.search_once("eiffel", "none", "", 5, ui.NO_RERANKER, 5, m3_session, "hybrid", "m3", 0, 0, 0, 1)


def test_reranker_applies_after_fusion_in_the_app(m3_session, tiny_reranker):
    before, after, summary, *_ = ui.search_once("eiffel tower paris", "none", "", 5, tiny_reranker, 8, m3_session,
                                           "hybrid", "weighted", 0.5, 0.5, 0, 0.5)
    assert {"fused rank", "movement", "logit"} <= set(after.columns)
    table = m3_session.ranking.table
    rescored = table.dropna(subset=["rerank_rank"])
    assert len(rescored) == 8 and rescored["rank"].max() == 8  # the fused top 8 went to the reranker


def test_colbert_switch_shows_the_estimate_then_the_memory_in_use(m3_session):
    info = ui.retrieval_info(m3_session)
    state = m3_session.session.index_state()
    estimate = state.estimate_bytes("colbert")
    assert "ColBERT is off" in info and mib(estimate) in info
    value, panel, _ = ui.toggle_colbert(True, m3_session, progress=None)
    assert value is True and "ColBERT is <b>on</b>" in panel
    assert state.part("colbert").store.vectors.nbytes == estimate  # the estimate was exact
    assert mib(estimate) in panel and mib(state.memory()["colbert"]) in panel
    before, *_ = ui.search_once("eiffel tower paris", "none", "", 5, ui.NO_RERANKER, 5, m3_session, "hybrid")
    assert {"ColBERT score", "ColBERT rank"} <= set(before.columns)
    value, panel, _ = ui.toggle_colbert(False, m3_session, progress=None)
    assert value is False and "colbert" not in state.memory() and "freed" in panel


def test_why_this_match_lexical_colbert_and_bm25_add_up_and_tokens_stay_text(m3_session):
    ui.search_once("eiffel tower < paris", "none", "", 10, ui.NO_RERANKER, 5, m3_session, "hybrid", "weighted",
              0.4, 0.2, 0.0, 0.2)
    table = m3_session.ranking.table
    rank = int(table.index[table["doc_id"] == "<b>evil</b>"][0]) + 1
    summary, lexical, figure, alignment, bm25 = ui.explain(rank, m3_session)
    shared = lexical[lexical["in"] == "both"]
    assert len(shared) and set(lexical["in"]) <= {"both", "query", "chunk"}
    assert shared["contribution"].sum() == pytest.approx(table.loc[rank - 1, "sparse_score"], abs=1e-3)
    assert bm25["contribution"].sum() == pytest.approx(table.loc[rank - 1, "bm25_score"], rel=1e-4)
    assert "<" in set(lexical["token"]) or "<" in alignment["query token"].tolist()  # raw token, a text cell
    heat = figure.data[0]
    assert heat.type == "heatmap" and np.asarray(heat.z).shape[0] == len(alignment)
    assert alignment["similarity"].mean() == pytest.approx(float(summary.split("ColBERT score ")[1].split(" ")[0]),
                                                           abs=1e-3)
    labels = list(figure.layout.xaxis.ticktext) + list(figure.layout.yaxis.ticktext)
    hover = " ".join(" ".join(row) for row in heat.text)
    assert "&lt;" in " ".join(labels) and not any("<" in t for t in labels) and "<" not in hover
    assert "&lt;b&gt;evil&lt;/b&gt;" in summary and "<b>evil" not in summary


def test_modes_an_encoder_cannot_do_are_explained_not_crashed(tiny_encoder, sample_corpus):
    *_, session = ui.load_corpus([sample_corpus])
    *_, session = ui.build_index(tiny_encoder, chunking="none", state=session, progress=None)
    with pytest.raises(gr.Error, match="needs a BGE-M3 model"):
        ui.search_once("eiffel", "none", "", 5, ui.NO_RERANKER, 5, session, "sparse")
    value, panel, _ = ui.toggle_colbert(True, session, progress=None)
    assert value is False and "needs a BGE-M3 model" in panel and "ColBERT" in panel
    info = ui.retrieval_info(session)
    assert "sparse (M3 lexical) needs a BGE-M3 model" in info and "ColBERT (M3 multi-vector) needs a BGE-M3" in info
    before, _, summary, *_ = ui.search_once("eiffel tower", "none", "", 5, ui.NO_RERANKER, 5, session, "hybrid", "rrf")
    assert "sparse (M3 lexical) left out: sparse (M3 lexical) needs a BGE-M3 model" in summary
    assert "fused rank" in before.columns
    before, *_ = ui.search_once("eiffel tower", "none", "", 3, ui.NO_RERANKER, 3, session, "bm25")
    assert before["document"].iloc[0] == "eiffel-tower"
    summary, lexical, figure, alignment, bm25 = ui.explain(1, session)
    assert lexical.empty and figure is None and alignment.empty and "need a BGE-M3 model" in summary
    assert set(bm25["term"]) <= {"eiffel", "tower"} and len(bm25)


def test_evaluated_query_opens_in_search_with_its_relevant_documents_marked(tiny_encoder, sample_corpus):
    *_, session = ui.load_corpus([sample_corpus])
    tabs, query, before, after, summary, detail, session = ui.open_evaluated_query(
        "When was the Eiffel Tower built?", "eiffel-tower, great-wall", "none", "", 5, ui.NO_RERANKER, 5, session)
    assert tabs.selected == "search" and query == "When was the Eiffel Tower built?"
    assert "Build the index" in summary and "eiffel-tower" in summary  # no index yet: said, not crashed
    *_, session = ui.build_index(tiny_encoder, chunking="none", state=session, progress=None)
    tabs, query, before, after, summary, detail, session = ui.open_evaluated_query(
        "When was the Eiffel Tower built?", "eiffel-tower, great-wall", "none", "", 26, ui.NO_RERANKER, 5, session)
    assert tabs.selected == "search"
    marked = before.loc[before["relevant"] != "", "document"].tolist()
    assert sorted(marked) == ["eiffel-tower", "great-wall"] and "2 of 2 in the top 26" in summary
    # the marks belong to that query: another query shows no relevant column
    other, *_ = ui.search_once("python language", "none", "", 5, ui.NO_RERANKER, 5, session)
    assert "relevant" not in other.columns


def test_evaluate_tab_compares_bm25_with_hybrid(sample_corpus, beir_dir, tiny_encoder):
    session = AppState()
    session.session.load_corpus([sample_corpus])
    files = [str(beir_dir / "queries.jsonl"), str(beir_dir / "qrels" / "test.tsv")]
    out = ui_evaluate.evaluate(session, files, "test", tiny_encoder, "none", "", "none", 20, 0, True,
                                     tiny_encoder, "none", "", "none", 20, 0, "ndcg@10", "bm25", "auto", "",
                                     "hybrid", "rrf", "dense=1, bm25=1", progress=lambda *a, **k: None)
    _, status, a_table, b_table, ab_table, per_query, chart, downloads = out
    assert "A: BM25" in status and "dense 1 + bm25 1 (rrf)" in status
    assert ab_table.set_index("metric").loc["ndcg@10", "p"] <= 1 and b_table is not None
    with pytest.raises(gr.Error, match="weights"):
        ui_evaluate.evaluate(session, files, "test", tiny_encoder, "none", "", "none", 20, 0, False,
                                   tiny_encoder, "none", "", "none", 20, 0, "ndcg@10", "hybrid", "m3", "dense=x",
                                   progress=lambda *a, **k: None)


# ---------------------------------------------------------------------------------------------------------
# HTTP API (gradio_client)



def test_api_search_modes_colbert_and_explain(tiny_m3, sample_corpus):
    from gradio_client import Client, handle_file
    demo = layout.build_app()
    demo.queue(default_concurrency_limit=2)
    port = free_port()
    demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=port)
    try:
        c = Client(f"http://127.0.0.1:{port}/", verbose=False)
        assert {"/search", "/explain", "/colbert"} <= set(c.view_api(print_info=False,
                                                                      return_format="dict")["named_endpoints"])
        c.predict([handle_file(sample_corpus)], "", "", "", api_name="/load_corpus")
        c.predict(tiny_m3, "auto", "m3", "none", 256, 32, api_name="/build_index")
        # an existing client's call, without the mode parameters: dense, as before
        before, after, summary, top = c.predict("eiffel tower paris", "none", "", 5, "none", 5, api_name="/search")
        assert before["headers"][0] == "rank" and "dense score" not in before["headers"]
        value, panel = c.predict(True, api_name="/colbert")
        assert value is True and "ColBERT is <b>on</b>" in panel
        before, after, summary, top = c.predict("eiffel tower paris", "none", "", 5, "none", 5, "hybrid", "m3",
                                                0.4, 0.2, 0.4, 0.0, api_name="/search")
        assert before["headers"][0] == "fused rank"
        assert {"dense rank", "sparse rank", "ColBERT rank"} <= set(before["headers"])
        summary, lexical, plot, alignment, bm25 = c.predict(2, api_name="/explain")
        assert lexical["headers"] == ["token", "in", "query weight", "chunk weight", "contribution"]
        figure = json.loads(plot["plot"])
        z = figure["data"][0]["z"]  # plotly 6 ships arrays as {"bdata", "dtype", "shape"}
        rows = int(z["shape"].split(",")[0]) if isinstance(z, dict) else len(z)
        assert figure["data"][0]["type"] == "heatmap" and rows == len(alignment["data"]) > 1
        assert bm25["headers"] == ["term", "contribution"]
    finally:
        demo.close()
