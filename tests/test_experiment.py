"""Experiments over many configurations: statistics against hand-computed values, grids, and runs that equal
separate evaluations (with one corpus encode per model)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from bge_explorer.cli.commands import main
from bge_explorer.data.qrels import load_beir
from bge_explorer.errors import ConfigError
from bge_explorer.evaluation.evaluate import evaluate
from bge_explorer.evaluation.experiment import (ExperimentPlan, condensed_ndcg, expand, holm, judged_at,
                                                run_experiment, weight_grid, wins_ties_losses)
from bge_explorer.evaluation.significance import bootstrap_interval
from bge_explorer.models.loading import load_embedder
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.retrieval.fusion import GRID
from bge_explorer.session import Session
from conftest import SCIFACT
from test_evaluation import beir_dir  # noqa: F401  (fixture)


def test_holm_by_hand():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> kept monotone at 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.02]) == pytest.approx([0.02])


def test_wins_ties_and_losses_by_hand():
    assert wins_ties_losses(np.array([0.5, 0.2, 0.3, 1.0]), np.array([0.4, 0.2, 0.6, 0.0])) == (2, 1, 1)


def test_condensed_ndcg_and_judged_at_by_hand():
    ranking = ["u1", "r1", "n1", "u2", "r2"]
    qrels = {"r1": 1, "n1": 0, "r2": 2}
    # condensed: r1, n1, r2 -> DCG = 1/log2(2) + 0 + 2/log2(4) = 2; ideal 2, 1 -> 2 + 1/log2(3)
    assert condensed_ndcg([ranking], [qrels])[0] == pytest.approx(2 / (2 + 1 / np.log2(3)))
    assert judged_at([ranking], [qrels])[0] == pytest.approx(0.3)  # 3 judged of the top 10 (5 ranks missing)
    assert judged_at([ranking], [qrels], k=2)[0] == pytest.approx(0.5)


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    values = np.random.default_rng(3).normal(0.5, 0.2, size=80)
    a, b = bootstrap_interval(values, seed=7), bootstrap_interval(values, seed=7)
    assert a == b and a[0] < values.mean() < a[1] and bootstrap_interval(values, seed=8) != a
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values))  # the normal approximation, for scale
    assert a[1] - a[0] == pytest.approx(2 * half, rel=0.15)


def test_grids_expand_and_bad_entries_are_named():
    configs = expand([{"name": "m", "model": "all-MiniLM-L6-v2", "instruction": ["", "query: "],
                       "top_n": [10, 20], "reranker": "bge-reranker-base"},
                      {"name": "both", "model": None, "modes": ["bm25"]},
                      {"name": "sweep", "modes": [["dense"], "dense+bm25"]}])
    assert [c.label for c in configs] == [
        'm[instruction="",top_n=10]', 'm[instruction="",top_n=20]', 'm[instruction="query: ",top_n=10]',
        'm[instruction="query: ",top_n=20]', "both", "sweep[modes=dense]", "sweep[modes=dense+bm25]"]
    assert configs[4].modes == ("bm25",) and set(configs[6].modes) == {"dense", "bm25"}
    assert configs[2].instruction == "query: " and configs[2].top_n == 10 and configs[2].reranker == "bge-reranker-base"
    with pytest.raises(ConfigError) as info:
        expand([{"name": "a"}, {"name": "b", "modle": "x"}])
    assert info.value.field == "configurations[1]" and "modle" in info.value.reason
    with pytest.raises(ConfigError, match="repeated: a"):
        expand([{"name": "a"}, {"name": "a", "k": 5}])
    with pytest.raises(ConfigError) as info:
        ExperimentPlan.from_dict({"configurations": [{"name": "a"}], "baseline": "zzz"})
    assert info.value.field == "baseline"
    with pytest.raises(ConfigError, match="13 configurations"):
        ExperimentPlan.from_dict({"configurations": [{"name": "a", "k": list(range(1, 14))}]})


def test_the_hybrid_optimiser_grid_expands_and_is_bounded():
    assert weight_grid(["dense", "bm25"], 0.25) == [{"dense": 0.0, "bm25": 1.0}, {"dense": 0.25, "bm25": 0.75},
                                                    {"dense": 0.5, "bm25": 0.5}, {"dense": 0.75, "bm25": 0.25},
                                                    {"dense": 1.0, "bm25": 0.0}]
    assert len(weight_grid(["dense", "bm25"], 0.1)) == 11
    assert len(weight_grid(["dense", "sparse", "bm25"], 0.5)) == 6  # (0,0,1) (0,.5,.5) (0,1,0) (.5,0,.5) (.5,.5,0) (1,0,0)
    configs = expand([{"name": "h", "modes": ["dense", "bm25"], "fusion": "grid", "weights": {"step": 0.1}}])
    assert len(configs) == len(GRID) * 11 == 99
    assert {c.fusion for c in configs} == set(GRID)
    assert configs[0].label == "h[fusion=rrf,weights=dense=0.0,bm25=1.0]"
    ExperimentPlan(configs, configs[0].label).checked()  # 99 cheap variants of one configuration: allowed
    with pytest.raises(ConfigError, match="weights"):
        expand([{"name": "h", "modes": ["hybrid"], "weights": {"step": 0.1}}])
    with pytest.raises(ConfigError, match="step must divide 1"):
        expand([{"name": "h", "modes": ["dense", "bm25"], "weights": {"step": 0.3}}])
    with pytest.raises(ConfigError, match="over the limit of 120"):
        ExperimentPlan.from_dict({"configurations": [
            {"name": "h", "modes": ["dense", "sparse", "bm25"], "fusion": "grid", "weights": {"step": 0.25}}]})


def test_a_fusion_and_weight_sweep_encodes_nothing_again_and_equals_separate_runs(beir_dir, tiny_encoder):  # noqa: F811
    data = load_beir(beir_dir)
    plan = ExperimentPlan.from_dict({"configurations": [
        {"name": "dense", "instruction": ""},
        {"name": "h", "instruction": "", "modes": ["dense", "bm25"], "fusion": "grid", "weights": {"step": 0.5}}]},
        base=RetrievalConfig(model=tiny_encoder, chunk_size=None))
    assert len(plan.configurations) == 1 + 3 * len(GRID)
    embedder = load_embedder(tiny_encoder)
    session = Session()
    session.set_corpus(data.corpus)
    before = embedder.corpus_texts_encoded
    result = run_experiment(session, data.judgments, plan, n_resamples=500)
    assert embedder.corpus_texts_encoded - before == len(data.corpus.documents)  # once for 1 + 27 configurations
    for config in plan.configurations[1::7]:
        fresh = Session()
        fresh.set_corpus(data.corpus)
        np.testing.assert_allclose(result.results[config.label].final.to_numpy(),
                                   evaluate(fresh, data.judgments, config).final.to_numpy(), rtol=0, atol=1e-9)
    best, margin, _ = result.best("ndcg@10")
    table = result.table("ndcg@10")
    assert margin == pytest.approx(table["mean"].max() - table.loc["dense", "mean"])


FOUR = [{"name": "dense", "instruction": ""},
        {"name": "dense+instruction", "instruction": "Represent this sentence for searching relevant passages: "},
        {"name": "bm25", "model": None, "modes": ["bm25"]},
        {"name": "dense+bm25 rrf", "instruction": "", "modes": ["dense", "bm25"], "fusion": "rrf"}]


def test_an_experiment_equals_separate_evaluations_and_encodes_the_corpus_once(beir_dir, tiny_encoder):  # noqa: F811
    data = load_beir(beir_dir)
    entries = [{**e, "model": tiny_encoder} if e.get("model", "x") is not None else e for e in FOUR]
    plan = ExperimentPlan.from_dict({"configurations": entries, "baseline": "bm25"},
                                    base=RetrievalConfig(chunk_size=None))
    embedder = load_embedder(tiny_encoder)
    session = Session()
    session.set_corpus(data.corpus)
    before = embedder.corpus_texts_encoded
    result = run_experiment(session, data.judgments, plan, n_resamples=2_000)
    assert embedder.corpus_texts_encoded - before == len(data.corpus.documents)  # once, for three dense configs
    for config in plan.configurations:
        fresh = Session()
        fresh.set_corpus(data.corpus)
        alone = evaluate(fresh, data.judgments, config)
        np.testing.assert_allclose(result.results[config.label].final.to_numpy(), alone.final.to_numpy(),
                                   rtol=0, atol=1e-9)
    payload = json.loads(json.dumps(result.to_dict()))
    entry = {c["name"]: c for c in payload["configurations"]}
    assert payload["baseline"] == "bm25" and entry["bm25"]["vs_baseline"] is None
    for name in ("dense", "dense+instruction", "dense+bm25 rrf"):
        for metric in ("ndcg@10", "recall@100", "mrr@10", "map@100"):
            m, v = entry[name]["metrics"][metric], entry[name]["vs_baseline"][metric]
            assert m["ci_low"] <= m["mean"] <= m["ci_high"] and v["p_value"] <= v["p_holm"] <= 1
            assert v["wins"] + v["ties"] + v["losses"] == payload["queries"]
        assert 0 <= entry[name]["judged@10"] <= 1 and 0 <= entry[name]["ndcg_condensed@10"] <= 1
    assert RetrievalConfig.from_dict(entry["dense"]["config"]) == plan.configurations[0]  # reads back
    ps = [entry[n]["vs_baseline"]["ndcg@10"]["p_value"] for n in ("dense", "dense+instruction", "dense+bm25 rrf")]
    assert [entry[n]["vs_baseline"]["ndcg@10"]["p_holm"] for n in ("dense", "dense+instruction",
                                                                   "dense+bm25 rrf")] == pytest.approx(holm(ps))


def test_cli_experiment_prints_the_table_and_writes_json_and_csv(beir_dir, tiny_encoder, tmp_path,  # noqa: F811
                                                                 capsys):
    configs = tmp_path / "configs.yaml"
    configs.write_text(json.dumps({"configurations": [{**e, "model": tiny_encoder} if e.get("model", "x")
                                                      is not None else e for e in FOUR[:3]]}))
    out, per_query = tmp_path / "out.json", tmp_path / "per_query.csv"
    assert main(["experiment", "--beir", str(beir_dir), "--configs", str(configs), "--baseline", "bm25",
                 "--resamples", "500", "--json", str(out), "--csv", str(per_query), "--decision",
                 str(tmp_path / "winner.yaml"), "--code-dir", str(tmp_path / "code")]) == 0
    printed = capsys.readouterr().out
    assert "dense+instruction" in printed and "baseline" in printed and "best on ndcg@10" in printed
    payload = json.loads(out.read_text())
    assert [c["name"] for c in payload["configurations"]] == ["dense", "dense+instruction", "bm25"]
    best = max(payload["configurations"], key=lambda c: c["metrics"]["ndcg@10"]["mean"])
    winner = RetrievalConfig.load(tmp_path / "winner.yaml")
    assert winner.label == best["name"] and (winner.revision or not winner.model)  # a model is pinned
    if winner.model:
        assert sorted(os.listdir(tmp_path / "code")) == ["flagembedding_search.py", "langchain_search.py",
                                                         "llamaindex_search.py"]
    rows = per_query.read_text().splitlines()
    assert rows[0].startswith("name,query_id,query,ndcg@10") and len(rows) == 1 + 3 * payload["queries"]
    assert main(["experiment", "--beir", str(beir_dir), "--configs", str(configs), "--baseline", "nope"]) == 2
    assert "baseline" in capsys.readouterr().err


SCIFACT_CONFIGS = [
    {"name": "MiniLM", "model": "all-MiniLM-L6-v2", "instruction": "", "precision": "fp32"},
    {"name": "MiniLM + BGE instruction", "model": "all-MiniLM-L6-v2", "precision": "fp32",
     "instruction": "Represent this sentence for searching relevant passages: "},
    {"name": "BM25", "model": None, "modes": ["bm25"]},
    {"name": "MiniLM + BM25 (RRF)", "model": "all-MiniLM-L6-v2", "instruction": "", "precision": "fp32",
     "modes": ["dense", "bm25"], "fusion": "rrf"},
]


@pytest.mark.slow  # one fp32 encode of 5,183 abstracts (about 3 min on 2 cores), plus the CLI run it is checked against
@pytest.mark.skipif(not os.path.isfile(os.path.join(SCIFACT, "qrels", "test.tsv")), reason=f"no SciFact at {SCIFACT}")
def test_scifact_experiment_equals_separate_evaluations_with_one_corpus_encode():
    import test_scifact

    data = load_beir(SCIFACT)
    plan = ExperimentPlan.from_dict({"configurations": SCIFACT_CONFIGS, "baseline": "BM25"},
                                    base=RetrievalConfig(chunk_size=None))
    session = Session()
    session.set_corpus(data.corpus)
    result = run_experiment(session, data.judgments, plan, n_resamples=2_000)
    embedded = [result.results[c["name"]].config["passages_embedded"] for c in SCIFACT_CONFIGS]
    assert embedded == [5183, 0, 0, 0]  # one corpus encode for the three MiniLM configurations
    # MiniLM alone: the CLI's own run in another session (tests/test_scifact.py, fp32), per query
    cli = test_scifact.evaluate("fp32")
    alone = {q["query_id"]: q["retrieval"]["ndcg@10"] for q in cli["per_query"]}
    mine = result.results["MiniLM"].final["ndcg@10"]
    np.testing.assert_allclose(mine.to_numpy(), [alone[q] for q in mine.index], rtol=0, atol=1e-9)
    # BM25: a fresh session; the others: evaluate() on the experiment's encodings (a child session)
    fresh = Session()
    fresh.set_corpus(data.corpus)
    for config in plan.configurations[1:]:
        separate = evaluate(fresh if config.model is None else session.child(data.corpus), data.judgments, config)
        np.testing.assert_allclose(result.results[config.label].final.to_numpy(), separate.final.to_numpy(),
                                   rtol=0, atol=1e-9)
    table = result.table("ndcg@10")
    print(table.to_string())
    assert table.at["MiniLM", "mean"] == pytest.approx(test_scifact.MTEB_NDCG_AT_10, abs=test_scifact.TOLERANCE)


def test_query_sets_from_lines_csv_and_jsonl(tmp_path):
    from bge_explorer.data.qrels import QrelsError, parse_query_set, read_query_set

    assert parse_query_set("tower\n\n  bridge \ntower\n") == ["tower", "bridge"]
    (tmp_path / "q.csv").write_text("id,question\n1,where is the tower\n2,who built it\n")
    assert read_query_set(tmp_path / "q.csv") == ["where is the tower", "who built it"]
    (tmp_path / "q.jsonl").write_text('{"_id": "a", "text": "one"}\n{"_id": "b", "text": "two"}\n')
    assert read_query_set(tmp_path / "q.jsonl") == ["one", "two"]
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(QrelsError, match="empty.txt"):
        read_query_set(tmp_path / "empty.txt")


def test_cli_compare_two_configurations_over_a_query_set(sample_corpus, tiny_encoder, tmp_path, capsys):
    from bge_explorer.retrieval.compare import rbo
    from bge_explorer.retrieval.pipeline import retrieve

    queries = ["eiffel tower paris", "great wall of china", "river nile"]
    (tmp_path / "q.txt").write_text("\n".join(queries))
    a = RetrievalConfig(model=tiny_encoder, chunk_size=None, instruction="")
    b = RetrievalConfig(model=None, modes=("bm25",), chunk_size=None)
    (tmp_path / "a.yaml").write_text(a.to_yaml())
    (tmp_path / "b.yaml").write_text(b.to_yaml())
    out = tmp_path / "cmp.json"
    assert main(["compare", "--corpus", sample_corpus, "--queries", str(tmp_path / "q.txt"), "--a",
                 str(tmp_path / "a.yaml"), "--b", str(tmp_path / "b.yaml"), "--k", "5", "--json", str(out)]) == 0
    assert "RBO" in capsys.readouterr().out
    payload = json.loads(out.read_text())
    session = Session()
    session.load_corpus([sample_corpus])
    for row, query in zip(payload["per_query"], queries):  # by hand: each side's top 5 documents
        top_a = list(dict.fromkeys(retrieve(session, a, [query])[0].table["doc_id"].astype(str)))[:5]
        top_b = list(dict.fromkeys(retrieve(session, b, [query])[0].table["doc_id"].astype(str)))[:5]
        assert row["a_top"] == top_a and row["b_top"] == top_b
        assert row["overlap"] == len(set(top_a) & set(top_b)) and row["rbo"] == pytest.approx(rbo(top_a, top_b))
    assert payload["means"]["rbo"] == pytest.approx(np.mean([r["rbo"] for r in payload["per_query"]]))
    (tmp_path / "b.yaml").write_text(a.to_yaml())
    assert main(["compare", "--corpus", sample_corpus, "--queries", str(tmp_path / "q.txt"), "--a",
                 str(tmp_path / "a.yaml"), "--b", str(tmp_path / "b.yaml"), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["means"] == {"overlap": 10.0, "jaccard": 1.0, "rbo": pytest.approx(1.0),
                                                    "same_rank": 10.0}


def test_the_duration_estimate_uses_the_speeds_measured_in_this_process():
    from bge_explorer.models import meter

    meter.record("passage", "speed-a", 100, 2.0)  # 0.02 s a passage
    meter.record("query", "speed-a", 10, 0.5)  # 0.05 s a query
    meter.record("pair", "speed-r", 20, 4.0)  # 0.2 s a pair
    plan = ExperimentPlan.from_dict({"configurations": [
        {"name": "a", "model": "speed-a", "instruction": ""},
        {"name": "a+r", "model": "speed-a", "instruction": "q: ", "reranker": "speed-r", "top_n": 10},
        {"name": "b", "model": "speed-b"}]})
    seconds, unknown = plan.seconds(queries=5, chunks=50)
    # one corpus encode of speed-a (50 x 0.02), 2 x 5 queries (x 0.05), 5 x 10 pairs (x 0.2); speed-b not measured
    assert seconds == pytest.approx(50 * 0.02 + 2 * 5 * 0.05 + 5 * 10 * 0.2) and unknown == ["speed-b"]
