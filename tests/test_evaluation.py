"""Evaluation: metrics against pytrec_eval, labelled-query loading (BEIR, CSV, zip), evaluation with real
and tiny models, A/B significance and embedding reuse, the evaluate CLI and the Evaluate tab's handlers."""
from __future__ import annotations

import json
import os
import shutil
import stat
import zipfile

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import pytrec_eval

from bge_explorer.evaluation.significance import compare, paired_test, run_ab, without_instruction
from bge_explorer.cli.commands import main
from bge_explorer.errors import LimitError
from bge_explorer.evaluation.evaluate import evaluate
from bge_explorer.evaluation.metrics import KS, evaluate_run, metric_names, rank_run, score_rankings
from bge_explorer.models.loading import load_embedder
from bge_explorer.data.qrels import QrelsError, load_beir, load_judgments, safe_extract
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.session import Session
from conftest import SAMPLE_QUESTIONS as QUESTIONS



# ---------------------------------------------------------------------------------------------------------
# Metrics = pytrec_eval (trec_eval)


def random_run_and_qrels(rng, n_queries=40, n_docs=300, round_scores=None):
    run, qrels = {}, {}
    for q in range(n_queries):
        retrieved = [f"d{i}" for i in rng.choice(n_docs, size=int(rng.integers(1, 150)), replace=False)]
        pool = retrieved + [f"d{i}" for i in range(n_docs, n_docs + 20)]  # some relevant never retrieved
        judged = rng.choice(pool, size=int(rng.integers(1, 15)), replace=False)
        qrels[f"q{q}"] = {d: int(rng.integers(-1, 4)) for d in judged}  # grades -1..3
        scores = rng.random(len(retrieved))
        if round_scores is not None:
            scores = np.round(scores, round_scores)  # ties: trec_eval breaks them by doc id, decreasing
        run[f"q{q}"] = {d: float(s) for d, s in zip(retrieved, scores)}
    return run, qrels


@pytest.mark.parametrize("round_scores", [None, 1])
@pytest.mark.parametrize("seed", range(4))
def test_metrics_equal_pytrec_eval(seed, round_scores):
    rng = np.random.default_rng(seed)
    run, qrels = random_run_and_qrels(rng, round_scores=round_scores)
    mine = evaluate_run(run, qrels)
    cuts = ",".join(map(str, KS))
    reference = pytrec_eval.RelevanceEvaluator(qrels, {f"ndcg_cut.{cuts}", f"recall.{cuts}", f"map_cut.{cuts}"})
    expected = reference.evaluate(run)
    for k in KS:
        # trec_eval's recip_rank has no cutoff: MRR@k is recip_rank of the run cut to its top k
        top_k = {q: {d: run[q][d] for d in rank_run(run[q])[:k]} for q in run}
        rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top_k)
        for q in run:
            assert mine.at[q, f"ndcg@{k}"] == pytest.approx(expected[q][f"ndcg_cut_{k}"], abs=1e-6)
            assert mine.at[q, f"recall@{k}"] == pytest.approx(expected[q][f"recall_{k}"], abs=1e-6)
            assert mine.at[q, f"map@{k}"] == pytest.approx(expected[q][f"map_cut_{k}"], abs=1e-6)
            assert mine.at[q, f"mrr@{k}"] == pytest.approx(rr[q]["recip_rank"], abs=1e-6)


def test_metric_names_and_perfect_ranking():
    assert metric_names() == [f"{m}@{k}" for m in ("ndcg", "recall", "mrr", "map") for k in (1, 3, 5, 10, 100)]
    qrels = [{"a": 2, "b": 1, "c": 0}]
    perfect = score_rankings([["a", "b", "c", "x"]], qrels)
    assert (perfect[[f"ndcg@{k}" for k in KS] + [f"mrr@{k}" for k in KS]] == 1).all(axis=None)
    assert perfect["recall@1"].item() == 0.5 and perfect["recall@3"].item() == 1
    nothing = score_rankings([["x", "y"]], qrels)
    assert (nothing == 0).all(axis=None)
    swapped = score_rankings([["b", "a"]], qrels)
    assert 0 < swapped["ndcg@3"].item() < 1 and swapped["recall@3"].item() == 1  # graded: order matters


# ---------------------------------------------------------------------------------------------------------
# Loading labelled queries


def write_beir(folder, corpus_src, queries: dict[str, str], qrels: list[tuple[str, str, object]], split="test",
               newline="\r\n"):
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(corpus_src, folder / "corpus.jsonl")
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n"
                                                  for q, t in queries.items()))
    (folder / "qrels").mkdir(exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in qrels]
    (folder / "qrels" / f"{split}.tsv").write_bytes((newline.join(lines) + newline).encode())
    return folder


@pytest.fixture()
def beir_dir(tmp_path, sample_corpus):
    queries = {f"q{i}": text for i, text in enumerate(QUESTIONS)}
    qrels = [(f"q{i}", doc, 1) for i, doc in enumerate(QUESTIONS.values())] + [("q0", "great-wall", 0)]
    queries["unjudged"] = "a query nobody labelled"
    return write_beir(tmp_path / "sample", sample_corpus, queries, qrels)


@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"])
def test_beir_folder_any_line_endings_and_unjudged_queries_counted(tmp_path, sample_corpus, newline):
    folder = write_beir(tmp_path / "d", sample_corpus, {"1": "eiffel", "2": "python", "3": "nothing"},
                        [("1", "eiffel-tower", 1), ("2", "python-language", 2), ("2", "bm25", 0)], newline=newline)
    bench = load_beir(folder)
    assert list(bench.judgments.queries) == ["1", "2"]
    assert bench.judgments.qrels["2"] == {"python-language": 2, "bm25": 0}
    assert len(bench.corpus.documents) == 26
    assert any("1 of 3 queries have no judgments" in note for note in bench.judgments.notes)


def test_qrels_ids_not_in_corpus_are_counted_and_shown(tmp_path, sample_corpus):
    folder = write_beir(tmp_path / "d", sample_corpus, {"1": "a", "2": "b"},
                        [("1", "eiffel-tower", 1), ("1", "no-such-doc", 1), ("2", "ghost-1", 1), ("2", "ghost-2", 1)])
    with pytest.raises(QrelsError) as info:
        load_beir(folder)
    message = str(info.value)
    assert "3 document id(s) in the judgments are not in the corpus" in message
    assert "'ghost-1'" in message and "'no-such-doc'" in message
    kept = load_beir(folder, missing="drop").judgments  # dropping them is explicit
    assert kept.qrels == {"1": {"eiffel-tower": 1}}
    assert any("left without a relevant document" in note for note in kept.notes)


@pytest.mark.parametrize("qrels_line, expected", [
    ("1\teiffel-tower\tyes", "line 2: the score 'yes' is not a number"),
    ("1\teiffel-tower\t1.5", "line 2: the score '1.5' is not a whole number"),
    ("1\teiffel-tower", "line 2: expected 3 tab-separated columns"),
    ("1\teiffel-tower\t1\n1\teiffel-tower\t2", "line 3: duplicate judgment for query '1' and document 'eiffel-tower'"),
    ("9\teiffel-tower\t1", "1 query id(s) in the judgments are not in the queries file: '9'"),
])
def test_bad_qrels_are_clear_errors(tmp_path, qrels_line, expected):
    (tmp_path / "queries.jsonl").write_text('{"_id": "1", "text": "eiffel"}\n')
    (tmp_path / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels_line + "\n")
    with pytest.raises(QrelsError, match="test.tsv") as info:
        load_judgments(tmp_path / "test.tsv", tmp_path / "queries.jsonl")
    assert expected in str(info.value)


def test_duplicate_query_ids_and_missing_split(tmp_path, sample_corpus):
    (tmp_path / "queries.jsonl").write_text('{"_id": "1", "text": "a"}\n{"_id": "1", "text": "b"}\n')
    (tmp_path / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\td\t1\n")
    with pytest.raises(QrelsError, match=r"queries.jsonl, line 2: duplicate query id '1'"):
        load_judgments(tmp_path / "test.tsv", tmp_path / "queries.jsonl")
    folder = write_beir(tmp_path / "d", sample_corpus, {"1": "a"}, [("1", "bm25", 1)], split="dev")
    with pytest.raises(QrelsError, match="no qrels/test.tsv; the splits here are: dev"):
        load_beir(folder)
    assert len(load_beir(folder, "dev").judgments) == 1


def test_csv_of_query_text_and_doc_ids(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text('query,relevant_doc_id,score\n"When was the Eiffel Tower built, exactly?",eiffel-tower,2\n'
                    "who made python,python-language,1\nwho made python,bm25,0\n")
    judgments = load_judgments(path)
    assert list(judgments.queries.values()) == ["When was the Eiffel Tower built, exactly?", "who made python"]
    assert list(judgments.qrels.values()) == [{"eiffel-tower": 2}, {"python-language": 1, "bm25": 0}]
    path.write_text("who made python,python-language\nwho made python,python-language\n")  # no header, no score
    with pytest.raises(QrelsError, match="labels.csv, line 2: duplicate judgment"):
        load_judgments(path)
    path.write_text("q,d,high\n")
    with pytest.raises(QrelsError, match="line 1: the score 'high' is not a number"):
        load_judgments(path)


def zip_folder(folder, path, prefix="scifact-like/"):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                z.write(file, prefix + file.relative_to(folder).as_posix())
    return path


def test_beir_zip_nested_folder_loads_and_leaves_nothing_behind(beir_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    bench = load_beir(zip_folder(beir_dir, tmp_path / "sample.zip"))
    assert len(bench.judgments) == 10 and len(bench.corpus.documents) == 26
    assert list((tmp_path / "tmp").iterdir()) == []  # the extraction folder was removed


@pytest.mark.parametrize("member, reason", [("../evil.txt", "'..' path component"),
                                            ("/etc/evil.txt", "absolute path"),
                                            ("a/../../evil.txt", "'..' path component"),
                                            ("C:/evil.txt", "absolute path")])
def test_zip_with_unsafe_paths_is_refused_before_writing(tmp_path, member, reason):
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("queries.jsonl", "{}")
        z.writestr(member, "x")
    dest = tmp_path / "out" / "inner"
    dest.mkdir(parents=True)
    with pytest.raises(QrelsError, match=f"unsafe zip member.*{reason}"):
        safe_extract(path, dest)
    assert not (tmp_path / "out" / "evil.txt").exists() and list(dest.iterdir()) == []


def test_zip_symlink_bomb_and_member_count_are_refused(tmp_path):
    link = zipfile.ZipInfo("queries.jsonl")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as z:
        z.writestr(link, "/etc/passwd")
    with pytest.raises(QrelsError, match="symbolic link"):
        safe_extract(tmp_path / "link.zip", tmp_path / "o1")
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("corpus.jsonl", b"\0" * (3 * 2**20))  # 3 MiB of zeros compress to a few KB
    assert os.path.getsize(tmp_path / "bomb.zip") < 50_000
    with pytest.raises(LimitError, match="more than the limit of 2 MiB"):
        safe_extract(tmp_path / "bomb.zip", tmp_path / "o2", max_bytes=2 * 2**20)
    with zipfile.ZipFile(tmp_path / "many.zip", "w") as z:
        for i in range(11):
            z.writestr(f"f{i}.txt", "x")
    with pytest.raises(LimitError, match="11 files in the zip, more than the limit of 10"):
        safe_extract(tmp_path / "many.zip", tmp_path / "o3", max_members=10)
    with pytest.raises(QrelsError, match="not a readable zip"):
        safe_extract(tmp_path / "link.zip.missing", tmp_path / "o4")


# ---------------------------------------------------------------------------------------------------------
# Evaluating configurations


@pytest.fixture(scope="module")
def sample_bench(sample_corpus, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    queries = {f"q{i}": text for i, text in enumerate(QUESTIONS)}
    write_beir(folder, sample_corpus, queries, [(f"q{i}", d, 1) for i, d in enumerate(QUESTIONS.values())])
    return load_beir(folder)


def whole_documents(model, **fields) -> RetrievalConfig:
    """A configuration scoring each document as one chunk (what evaluation did by default before chunking)."""
    return RetrievalConfig(model=model, chunk_size=None, **fields)


def session_on(bench) -> Session:
    session = Session()
    session.set_corpus(bench.corpus)
    return session


def test_real_model_finds_the_labelled_documents(sample_bench):
    result = evaluate(session_on(sample_bench), sample_bench.judgments,
                      whole_documents("all-MiniLM-L6-v2", instruction=""))
    means = result.means()
    assert means["mrr@10"] > 0.9 and means["recall@10"] == 1.0  # obvious questions, a trained model
    per_query = result.per_query()
    assert list(per_query.columns[:3]) == ["query_id", "query", "first_relevant"]
    assert per_query["query"].tolist() == list(QUESTIONS)
    # the rank of the first relevant document agrees with MRR
    np.testing.assert_allclose(1 / per_query["first_relevant"].astype(float), per_query["mrr@100"])
    assert all(len(r) == 26 and len(set(r)) == 26 for r in result.rankings)  # every document ranked once
    assert result.config["document_score"].startswith("whole document") and result.reranked is None


def test_chunked_document_score_is_its_best_chunk(sample_bench, tiny_encoder):
    session = session_on(sample_bench)
    config = RetrievalConfig(model=tiny_encoder, instruction="", chunk_size=24, overlap=4, precision="fp32")
    result = evaluate(session, sample_bench.judgments, config)
    assert result.config["chunks"] > 26
    embedder = load_embedder(tiny_encoder, precision="fp32")
    from bge_explorer.data.chunking import chunk_documents
    chunks = chunk_documents(sample_bench.corpus.documents, embedder.tokenizer, 24, 4)
    vectors = embedder.encode_corpus(chunks.passages())
    qvecs = embedder.encode_queries(result.queries, "")
    best = pd.DataFrame(qvecs @ vectors.T).T.groupby(chunks.table["doc_id"].to_numpy()).max()
    for i, ranking in enumerate(result.rankings):
        expected = best[i].sort_values(ascending=False, kind="stable")
        assert set(ranking) == set(expected.index)  # all 26 documents, each once
        np.testing.assert_allclose(expected[ranking].to_numpy(), expected.to_numpy(), atol=1e-5)


def test_reranking_reorders_only_the_top_n(sample_bench, tiny_encoder, tiny_reranker):
    config = whole_documents(tiny_encoder, instruction="", reranker=tiny_reranker, top_n=5, precision="fp32")
    result = evaluate(session_on(sample_bench), sample_bench.judgments, config)
    assert result.reranked is not None and list(result.reranked.columns) == metric_names()
    for before, after in zip(result.rankings, result.reranked_rankings):
        assert sorted(before[:5]) == sorted(after[:5]) and before[5:] == after[5:]
    np.testing.assert_allclose(result.retrieval["recall@10"], result.reranked["recall@10"])
    table = result.per_query()
    assert {"first_relevant_reranked", "reranked_ndcg@10"} <= set(table.columns)
    out = result.to_dict()
    assert set(out) >= {"config", "retrieval", "reranked", "per_query"}
    assert out["config"]["reranker"] == tiny_reranker and out["config"]["top_n"] == 5
    json.dumps(out)


def test_ab_identical_configs_is_no_difference_and_embeds_once(sample_bench, tiny_encoder):
    session = session_on(sample_bench)
    config = whole_documents(tiny_encoder, instruction="", precision="fp32")
    embedder = load_embedder(tiny_encoder, precision="fp32")
    before = embedder.corpus_texts_encoded
    ab = run_ab(session, sample_bench.judgments, config, config.with_(instruction="search: "))
    assert embedder.corpus_texts_encoded - before == 26  # B shares A's model: no passage embedded twice
    assert ab.b.config["passages_embedded"] == 0 and ab.b.config["instruction"] == "search: "
    same = compare(ab.a, ab.a)
    assert (same.table["diff"] == 0).all() and (same.table["p_value"] == 1).all()
    assert (same.table[["ci_low", "ci_high"]] == 0).all(axis=None)
    assert (same.table["ties"] == 10).all() and (same.table["wins"] + same.table["losses"] == 0).all()
    figure = ab.comparison.figure("ndcg@10")
    assert isinstance(figure, go.Figure) and len(figure.data[0].y) == 10
    assert set(ab.to_dict()) == {"a", "b", "comparison"}


def test_paired_test_detects_a_consistent_gain():
    rng = np.random.default_rng(0)
    a = rng.random(50) * 0.5
    result = paired_test(a, a + 0.1 + rng.normal(0, 0.01, 50))
    assert result.p_value < 0.001 and result.wins == 50
    assert result.ci_low < result.diff < result.ci_high and result.ci_low > 0
    noisy = paired_test(a, a + rng.normal(0, 0.2, 50))
    assert noisy.p_value > 0.01 and noisy.ci_low < 0 < noisy.ci_high
    exact = paired_test([0, 0, 0], [1, 0, 0])  # one query differs: half of all sign flips are as extreme
    assert exact.p_value == 1.0 and exact.wins == 1 and exact.ties == 2


def test_without_instruction_pair():
    a, b = without_instruction(RetrievalConfig(model="bge-small-en-v1.5", instruction="x", label="mine"))
    assert (a.instruction, b.instruction, a.model, b.model) == (None, "", "bge-small-en-v1.5", "bge-small-en-v1.5")


# ---------------------------------------------------------------------------------------------------------
# CLI


def test_cli_evaluate_prints_the_table_and_writes_json(beir_dir, tiny_encoder, tiny_reranker, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["evaluate", "--beir", str(beir_dir), "--model", tiny_encoder, "--no-instruction",
                 "--reranker", tiny_reranker, "--top-n", "3", "--json", str(out), "--precision", "fp32"]) == 0
    printed, err = capsys.readouterr()
    assert "retrieval" in printed and "reranked" in printed and "ndcg" in printed and "@100" in printed
    assert "1 of 11 queries have no judgments and were skipped" in err
    data = json.loads(out.read_text())
    assert set(data) >= {"config", "retrieval", "reranked", "per_query"}
    assert set(data["retrieval"]) == set(metric_names()) and len(data["per_query"]) == 10
    assert data["config"]["instruction"] == "" and data["config"]["chunk_size"] is None


def test_cli_ab_with_and_without_instruction(beir_dir, tiny_encoder, tmp_path, capsys):
    out, plot = tmp_path / "ab.json", tmp_path / "ab.html"
    assert main(["evaluate", "--beir", str(zip_folder(beir_dir, tmp_path / "b.zip")), "--model", tiny_encoder,
                 "--instruction", "query: ", "--ab", "--b-no-instruction", "--json", str(out),
                 "--plot", str(plot), "--resamples", "2000"]) == 0
    printed = capsys.readouterr().out
    assert "B-A" in printed and "95% CI" in printed and "B wins/ties/losses" in printed
    data = json.loads(out.read_text())
    assert data["a"]["config"]["instruction"] == "query: " and data["b"]["config"]["instruction"] == ""
    assert set(data["comparison"]["metrics"]["ndcg@10"]) >= {"A", "B", "diff", "p_value", "ci_low", "ci_high",
                                                            "wins", "ties", "losses"}
    assert plot.stat().st_size > 0


def test_cli_ab_config_file_and_errors(beir_dir, tiny_encoder, tmp_path, capsys):
    config = tmp_path / "ab.json"
    config.write_text(json.dumps({"a": {"model": tiny_encoder, "instruction": ""},
                                  "b": {"chunk_size": 16, "overlap": 4}}))
    assert main(["evaluate", "--beir", str(beir_dir), "--ab-config", str(config)]) == 0
    assert "chunks of 16" in capsys.readouterr().out
    config.write_text(json.dumps({"b": {"modle": "x"}}))
    assert main(["evaluate", "--beir", str(beir_dir), "--model", tiny_encoder, "--ab-config", str(config)]) == 2
    assert "unknown field(s) modle" in capsys.readouterr().err
    (beir_dir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq0\tnowhere\t1\n")
    assert main(["evaluate", "--beir", str(beir_dir), "--model", tiny_encoder]) == 2
    assert "1 document id(s) in the judgments are not in the corpus" in capsys.readouterr().err


def test_cli_corpus_with_csv_qrels(sample_corpus, tiny_encoder, tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    labels.write_text("query,relevant_doc_id\nwhen was the eiffel tower built,eiffel-tower\n")
    assert main(["evaluate", "--corpus", sample_corpus, "--qrels", str(labels), "--model", tiny_encoder]) == 0
    assert "1 queries, 26 documents" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------
# Evaluate tab handlers (no browser)


def test_evaluate_tab_handler_with_session_corpus_and_ab(sample_corpus, beir_dir, tiny_encoder):
    import gradio as gr

    from bge_explorer.app import evaluate as ui_evaluate
    from bge_explorer.app.state import AppState

    session = AppState()
    session.session.load_corpus([sample_corpus])
    files = [str(beir_dir / "queries.jsonl"), str(beir_dir / "qrels" / "test.tsv")]
    mode = ui_evaluate.same_model_with_and_without_instruction(tiny_encoder, "none", 20, 0)
    out = ui_evaluate.evaluate(session, files, "test", tiny_encoder, mode[0], mode[1], "none", 20, 0,
                                     mode[2], *mode[3:], "ndcg@10", progress=lambda *a, **k: None)
    new_session, status, a_table, b_table, ab_table, per_query, chart, downloads = out
    assert new_session is session and "10 queries, 26 documents" in status
    assert "1 of 11 queries have no judgments" in status
    assert a_table["metric"].tolist() == metric_names() and b_table is not None
    assert ab_table.set_index("metric").loc["ndcg@10", "p"] <= 1
    assert {"query_id", "query", "A first relevant", "B - A ndcg@10"} <= set(per_query.columns)
    assert isinstance(chart, go.Figure)
    csv_path, json_path = downloads
    assert len(pd.read_csv(csv_path)) == 10 and set(json.loads(open(json_path).read())) == {"a", "b", "comparison"}
    with pytest.raises(gr.Error, match="load the corpus in the Search tab first"):
        ui_evaluate.evaluate(AppState(), files, "test", tiny_encoder, "none", "", "none", 20, 0, False,
                                   tiny_encoder, "none", "", "none", 20, 0, progress=lambda *a, **k: None)


def test_evaluate_tab_zip_brings_its_corpus_and_errors_are_escaped(beir_dir, tiny_encoder, tmp_path):
    import gradio as gr

    from bge_explorer.app import evaluate as ui_evaluate
    from bge_explorer.app.state import AppState

    session = AppState()
    zipped = str(zip_folder(beir_dir, tmp_path / "sample.zip"))
    out = ui_evaluate.evaluate(session, [zipped], "test", tiny_encoder, "none", "", "none", 20, 0, False,
                                     tiny_encoder, "none", "", "none", 20, 0, progress=lambda *a, **k: None)
    assert out[0].session.corpus is not None and len(out[0].session.corpus.documents) == 26  # for the Search tab
    assert out[3] is None and out[6] is None
    bad = tmp_path / "<b>labels.csv"
    bad.write_text("q,d,<img src=x>\n")
    with pytest.raises(gr.Error) as info:
        ui_evaluate.evaluate(session, [str(bad)], "test", tiny_encoder, "none", "", "none", 20, 0, False,
                                   tiny_encoder, "none", "", "none", 20, 0, progress=lambda *a, **k: None)
    assert "&lt;img src=x&gt;" in info.value.message and "&lt;b&gt;labels.csv" in info.value.message
    assert "<" not in info.value.message


def test_evaluate_api_endpoint_and_row_pick(beir_dir, tmp_path):
    """``/evaluate`` through gradio_client, as a script would call the app; a row click picks its query."""
    import gradio as gr
    from gradio_client import Client, handle_file

    from bge_explorer.app import evaluate as ui_evaluate

    with gr.Blocks() as demo:
        state = gr.State(None)
        with gr.Tab("Evaluate"):
            parts = ui_evaluate.build_evaluate_tab(state)
    assert {"per_query", "selected_query", "selected_relevant"} <= set(parts)
    demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        status, a_table, b_table, ab_table, per_query, chart, downloads = client.predict(
            files=[handle_file(str(zip_folder(beir_dir, tmp_path / "s.zip")))], a_model="all-MiniLM-L6-v2",
            a_instruction_mode="none", compare=True, b_instruction_mode="custom", b_instruction="query: ",
            api_name="/evaluate")
    finally:
        demo.close()
    assert "10 queries, 26 documents" in status and "0 passages embedded" in status  # B reused A's embeddings
    assert ab_table["headers"][:4] == ["metric", "A", "B", "B - A"]
    table = pd.DataFrame(per_query["data"], columns=per_query["headers"])
    assert table.loc[0, "relevant documents"] == "eiffel-tower" and len(downloads) == 2
    picked = ui_evaluate.pick_query(table, gr.SelectData(None, {"index": [1, 3], "value": "x"}))
    assert picked == (list(QUESTIONS)[1], "photosynthesis")
