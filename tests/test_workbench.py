"""The Workbench tab's handlers, driven as the page drives them (no browser): judge, import/export, query sets,
an experiment on the session's own judgments, calibration and comparison."""
from __future__ import annotations

import json
import zipfile

import gradio as gr
import pytest
import yaml

from bge_explorer.app import explorer as ui, map as map_tab
from bge_explorer.app import workbench as wb
from bge_explorer.maps import points
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.retrieval.pipeline import retrieve


def indexed(sample_corpus, tiny_encoder):
    *_, app = ui.load_corpus([sample_corpus])
    *_, app = ui.build_index(tiny_encoder, chunking="none", state=app, progress=None)
    return app


def test_judge_grade_by_row_and_go_to_the_next_unjudged(sample_corpus, tiny_encoder):
    app = indexed(sample_corpus, tiny_encoder)
    with pytest.raises(gr.Error, match="Type a query"):
        wb.judge_query("", app)
    table, counts, row, app = wb.judge_query("eiffel tower paris", app)
    assert len(table) == wb.JUDGED_K and (table["grade"] == "").all() and row == 0 and "0 of 10 judged" in counts
    ranked = list(table["document"])
    table, counts, row, app = wb.grade_row(3, 0, app)
    assert app.session.judgments.get("eiffel tower paris", ranked[0]) == 3 and row == 1
    assert table["grade"].iloc[0] == "3 perfect" and "1 of 10 judged (1 relevant)" in counts
    wb.grade_row(0, 2, app)
    assert wb.next_unjudged(1, app) == 3  # row 2 is judged now
    with pytest.raises(gr.Error, match="0 to 3"):
        wb.grade_row(7, 1, app)
    # the same document is judged for every configuration: another search configuration sees the grade
    ui.search_once("eiffel tower paris", "none", "", 10, ui.NO_RERANKER, 5, app)
    table, *_ = wb.judge_query("eiffel tower paris", app)
    graded = dict(zip(table["document"], table["grade"]))
    assert graded[ranked[0]] == "3 perfect"


def test_export_then_import_in_a_new_session_is_lossless(sample_corpus, tiny_encoder):
    app = indexed(sample_corpus, tiny_encoder)
    wb.judge_query("eiffel tower paris", app)
    for row, grade in ((0, 3), (1, 0), (4, 2)):
        wb.grade_row(grade, row, app)
    files, app = wb.export_judgments(app)
    assert [f.rsplit("/", 1)[-1] for f in files] == ["judgments.zip", "judgments.csv"]
    assert app.workdir and all(f.startswith(app.workdir) for f in files)  # in the session's own directory
    with zipfile.ZipFile(files[0]) as z:
        assert set(z.namelist()) == {"queries.jsonl", "qrels/test.tsv"}
    for path in files:
        other = indexed(sample_corpus, tiny_encoder)
        summary, other = wb.import_judgments([path], other)
        assert "Read 3 judgments" in summary
        assert other.session.judgments.grades("eiffel tower paris") == app.session.judgments.grades(
            "eiffel tower paris")


def test_query_set_and_an_experiment_on_my_own_judgments(sample_corpus, tiny_encoder, tmp_path):
    app = indexed(sample_corpus, tiny_encoder)
    summary, picker, app = wb.set_query_set("eiffel tower paris\nhow do bees make honey\n\n", None, app)
    assert app.query_set == ["eiffel tower paris", "how do bees make honey"] and "2 queries" in summary
    for query, relevant in (("eiffel tower paris", "eiffel-tower"), ("how do bees make honey", "honey-bees")):
        app.session.judgments.grade(query, relevant, 3)
        app.session.judgments.grade(query, "bitcoin", 0)
    # the whole set under one configuration: counts of judged documents in each top 10, nDCG@10 (pytrec_eval)
    import pytrec_eval

    summary, runs, app = wb.run_query_set(app)
    assert "2 queries run" in summary and list(runs["query"]) == app.query_set
    config = wb._config(app)
    for _, row in runs.iterrows():
        ranking = retrieve(app.session, config, [row["query"]])[0]
        top = wb.documents(ranking)[:10]
        judged = app.session.judgments.grades(row["query"])
        assert row["judged"] == sum(d in judged for d in top) and row["unjudged"] == 10 - row["judged"]
        run = {"q": {d: float(len(top) - i) for i, d in enumerate(wb.documents(ranking))}}
        want = pytrec_eval.RelevanceEvaluator({"q": judged}, {"ndcg_cut.10"}).evaluate(run)["q"]["ndcg_cut_10"]
        assert row["ndcg@10"] == pytest.approx(want, abs=1e-4)
    assert wb.query_of_row(app, gr.SelectData(None, {"index": [1, 0], "value": "", "selected": True})) == \
        "how do bees make honey"
    template = yaml.safe_load(wb.experiment_template(app))
    assert [c["name"] for c in template["configurations"]] == ["dense, no instruction", "dense, model's instruction",
                                                               "BM25", "dense + BM25 (RRF)"]
    assert wb.estimate(wb.experiment_template(app), "", app).startswith(
        "4 configurations on 2 judged queries: 1 corpus encode(s)")  # three dense configurations, one model
    status, table, figure, files, per_query, per_query_figure, app = wb.experiment(wb.experiment_template(app), "",
                                                                                   app)
    assert "4 configurations on 2 judged queries" in status and len(table) == 4
    assert list(table.columns[:4]) == ["configuration", "ndcg@10", "ndcg@10 95% CI", "ndcg@10 p (Holm)"]
    names = [f.rsplit("/", 1)[-1] for f in files]
    assert names[:3] == ["experiment.json", "per_query.csv", "decision.yaml"]
    winner = RetrievalConfig.load(files[2])
    assert winner.label in set(table["configuration"])
    payload = json.loads(open(files[0], encoding="utf-8").read())
    assert payload["baseline"] == "BM25" and payload["queries"] == 2
    # per query: each configuration's nDCG@10 (and its difference from BM25), as in per_query.csv
    import pandas as pd

    csv = pd.read_csv(files[1])
    assert list(per_query.columns) == ["query", *table["configuration"]] and len(per_query) == 2
    for _, row in per_query.iterrows():
        for name in table["configuration"]:
            want = csv[(csv["name"] == name) & (csv["query"] == row["query"])]["ndcg@10"].item()
            shown = row[name]
            assert float(shown.split(" ")[0]) == pytest.approx(want, abs=5e-5)
            assert ("(" in shown) == (name != "BM25")
    assert per_query_figure.data and all("wins" in t.name for t in per_query_figure.data)
    # a cell opens its query in Search with its column's configuration
    column = list(per_query.columns).index("dense, model's instruction")
    out = wb.open_per_query(app, gr.SelectData(None, {"index": [1, column], "value": "", "selected": True}))
    tabs, query, instruction_mode, instruction, *_, before, after, summary, detail, app = out
    assert query == per_query["query"].iloc[1]
    config = next(c for c in app.experiment.plan.configurations if c.label == "dense, model's instruction")
    assert config.instruction is None and instruction_mode == "model default"  # the model's own instruction
    assert app.ranking_config.instruction is None and app.ranking_config.modes == config.modes
    want = retrieve(app.session, config, [query])[0]
    assert list(before["document"]) == list(want.table["doc_id"].astype(str))[:len(before)]
    *_, summary, detail, app = wb.open_per_query(app, gr.SelectData(
        None, {"index": [0, list(per_query.columns).index("BM25")], "value": "", "selected": True}))
    assert "Build that index" in summary  # BM25 over whole documents, not this model's index
    with pytest.raises(gr.Error, match="configurations"):
        wb.experiment("configurations: 5", "", app)
    with pytest.raises(gr.Error, match="baseline"):
        wb.experiment(wb.experiment_template(app), "nope", app)


def test_calibrate_and_compare_from_the_tab(sample_corpus, tiny_encoder, tiny_reranker):
    app = indexed(sample_corpus, tiny_encoder)
    with pytest.raises(gr.Error, match="No judgments"):
        wb.calibrate(wb.NO_RERANKER, 0.9, app)
    for doc, grade in (("eiffel-tower", 3), ("great-wall", 0), ("bitcoin", 0)):
        app.session.judgments.grade("eiffel tower paris", doc, grade)
    status, thresholds, figure, app = wb.calibrate(tiny_reranker, 0.9, app)
    assert "3 judged pairs (1 relevant)" in status
    assert list(thresholds["score"]) == ["cosine", "cosine", "sigmoid", "sigmoid"]
    with pytest.raises(gr.Error, match="query set"):
        wb.compare("model: null\nmodes: [bm25]", "model: null\nmodes: [bm25]", 5, app)
    wb.set_query_set("eiffel tower paris\nriver", None, app)
    summary, table, app = wb.compare(f"model: {tiny_encoder}\nchunk_size: null", "model: null\nmodes: [bm25]\n"
                                         "chunk_size: null", 5, app)
    assert "2 queries, top 5" in summary and len(table) == 2
    with pytest.raises(gr.Error, match="A: unknown field"):
        wb.compare("modle: x", "model: null", 5, app)


def select(row: int):
    return gr.SelectData(None, {"index": [row, 1], "value": "", "selected": True})


def test_grade_in_search_before_and_after_reranking_and_see_it_everywhere(sample_corpus, tiny_encoder, tiny_reranker):
    from bge_explorer.app import grading

    app = indexed(sample_corpus, tiny_encoder)
    query = "eiffel tower paris"
    before, after, *_, app = ui.search_once(query, "none", "", 8, tiny_reranker, 8, app)
    assert (before["grade"] == "").all() and (after["grade"] == "").all()
    assert "8 unjudged" in grading.grading_status(app) and "Select a row" in grading.grading_status(app)
    with pytest.raises(gr.Error, match="Select a result row first"):
        grading.grade_result(2, app)
    # grade the reranked list's third row: its document gets the grade, and the next unjudged row is selected
    status, app = grading.select_after(app, select(2))
    doc = str(after["document"].iloc[2])
    assert f"reranked #3, document <b>{doc}</b> (unjudged)" in status
    before, after, status, detail, app = grading.grade_result(3, app)
    assert app.session.judgments.get(query, doc) == 3 and app.graded_row == ("after", 3)
    assert after["grade"].iloc[2] == "3 perfect"
    assert before.loc[before["document"] == doc, "grade"].tolist() == ["3 perfect"]  # the same document, both tables
    assert "1 judged (1 relevant), 7 unjudged" in status and "Reranked #4" in detail
    # in retrieval order: the first row, then n skips the judged document
    grading.select_before(app, select(0))
    before, after, status, detail, app = grading.grade_result(0, app)
    first = str(before["document"].iloc[0])
    assert app.session.judgments.get(query, first) == 0 and before["grade"].iloc[0] == "0 irrelevant"
    judged = {first, doc}
    status, detail, app = grading.next_result(app)
    which, row = app.graded_row
    assert which == "before" and str(before["document"].iloc[row]) not in judged
    # the binary scale refuses 2 and 3; the Workbench's judging table shows the Search tab's grades
    wb.set_scale("binary", app)
    with pytest.raises(gr.Error, match="0 to 1"):
        grading.grade_result(2, app)
    table, *_ = wb.judge_query(query, app)
    assert dict(zip(table["document"], table["grade"]))[doc] == "1 relevant"  # 3 counts as binary's top grade
    # a new search starts with nothing selected
    ui.search_once("how do bees make honey", "none", "", 8, ui.NO_RERANKER, 5, app)
    assert app.graded_row is None and "Select a row" in grading.grading_status(app)


def test_the_map_colours_chunks_by_the_grade_of_their_document(sample_corpus, tiny_encoder):
    app = indexed(sample_corpus, tiny_encoder)
    query = "eiffel tower paris"
    ui.search_once(query, "none", "", 5, ui.NO_RERANKER, 5, app)
    app.session.judgments.grade(query, "eiffel-tower", 3)
    app.session.judgments.grade(query, "bitcoin", 0)
    *_, (payload, status, app) = list(map_tab.map_view("grade", app))
    colour = json.loads(payload)["colour"]
    codes = points.decode_array(colour["codes"])
    traces = {name: int((codes == i).sum()) for i, name in enumerate(colour["names"])}
    docs = app.session.chunks.table["doc_id"].astype(str)
    assert traces["3 perfect (1)"] == int((docs == "eiffel-tower").sum()) == 1
    assert traces["0 irrelevant (1)"] == 1 and traces[f"unjudged ({len(docs) - 2})"] == len(docs) - 2
    assert "2 judged" in status
