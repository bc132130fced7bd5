"""Explore an existing index: Parquet shards, and the same shards loaded into milvus-lite and Qdrant local mode,
searched through a read-only connection: same hits as exact search, reranked, mismatched model refused,
a store without identity asks for a confirmed model, nothing written."""
from __future__ import annotations

import json
import os
import types

import gradio as gr
import numpy as np
import pytest

from bge_explorer.cli.commands import main
from bge_explorer.errors import ConfigError
from bge_explorer.indexes import create
from bge_explorer.models import random_models
from bge_explorer.models.loading import load_embedder, load_reranker
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.retrieval.pipeline import rerank
from bge_explorer.retrieval.rerank import RerankCache
from bge_explorer.scale.connect import connect, load_shards, search, search_hits
from conftest import write_parquet_index


@pytest.fixture(scope="module")
def shards_dir(tmp_path_factory, tiny_encoder):
    """Two shards of the single-process embedding of 60 random documents, and the session that made them."""
    folder = tmp_path_factory.mktemp("shards")
    return (folder, *write_parquet_index(folder, tiny_encoder))


def expected(session, ids, query: str, k: int) -> list[int]:
    ranking = session.search(query, session.config.with_(k=k, instruction=""))
    return ids[ranking.rows].tolist()


@pytest.mark.parametrize("backend", ["parquet", "milvus", "qdrant"])
def test_connected_search_equals_exact_and_reranks(shards_dir, tmp_path, backend, tiny_encoder, tiny_reranker):
    folder, session, ids = shards_dir
    if backend == "parquet":
        where = dict(path=str(folder))
    else:
        uri = str(tmp_path / ("m.db" if backend == "milvus" else "q"))
        load_shards(folder, backend, uri=uri, collection="c").close()
        where = dict(uri=uri, collection="c")
    connection = connect(backend, **where)
    assert connection.index.read_only and connection.notes == [] and connection.index.count() == len(ids)
    query = "cell protein gene"
    ranking = search(connection, query, k=10)
    assert [int(i) for i in connection.index.search(
        connection.embedder.encode_queries([query])[0][None], 10)[1][0]] == expected(session, ids, query, 10)
    by_chunk = dict(zip(session.chunks.table["chunk_id"], session.chunks.table["text"]))
    assert [by_chunk[c] for c in ranking.chunks.table["chunk_id"]] == ranking.chunks.table["text"].tolist()
    rerank(ranking, load_reranker(tiny_reranker, precision="fp32"), 5, RerankCache())
    assert len(ranking.rerank_logits) == 5 and ranking.reranked()["rerank_rank"].notna().sum() == 5
    with pytest.raises(ConfigError, match="read-only"):
        connection.index.add(np.zeros((1, connection.index.dim), np.float32))
    connection.index.close()

    other = random_models.build(tmp_path / "other-version", "encoder", seed=7)
    with pytest.raises(ConfigError) as err:
        connect(backend, model=other, **where)
    assert err.value.field == "model" and "different model versions" in str(err.value)


@pytest.mark.parametrize("backend", ["parquet", "milvus", "qdrant"])
def test_a_map_of_a_connected_index_samples_it_and_places_every_hit(shards_dir, tmp_path, backend, tiny_reranker):
    """The store's map: a seeded uniform sample of its vectors (equal to the embedded ones), UMAP over them; a
    query's top k from the whole store drawn, those outside the sample placed by the transform."""
    from bge_explorer.scale.store_map import map_store, query_marks

    folder, session, ids = shards_dir
    if backend == "parquet":
        connection = connect("parquet", path=str(folder))
    else:
        uri = str(tmp_path / ("m.db" if backend == "milvus" else "q"))
        load_shards(folder, backend, uri=uri, collection="c").close()
        connection = connect(backend, uri=uri, collection="c")
    stored = dict(zip(ids.tolist(), session.vectors))
    drawn = map_store(connection, n=40, seed=1)
    assert len(drawn.ids) == 40 < drawn.total == len(ids) and set(drawn.ids.tolist()) <= set(stored)
    assert drawn.sampled and "sample of 40 of its" in drawn.describe()
    np.testing.assert_allclose(drawn.vectors, [stored[i] for i in drawn.ids.tolist()], atol=1e-6)
    assert drawn.projection.coords.shape == (40, 2) and len(drawn.clusters) == 40
    assert drawn.ids.tolist() == map_store(connection, n=40, seed=1).ids.tolist()  # seeded: the same sample
    by_id = dict(zip(ids.tolist(), session.chunks.table["chunk_id"]))
    assert drawn.chunks.table["chunk_id"].tolist() == [by_id[i] for i in drawn.ids.tolist()]

    query = "cell protein gene"
    ranking, hit_ids = search_hits(connection, query, k=12)
    rerank(ranking, load_reranker(tiny_reranker, precision="fp32"), 6, RerankCache())
    marks = query_marks(connection, drawn, ranking, hit_ids, 12)
    top = expected(session, ids, query, 12)
    assert marks.chunks["chunk_id"].iloc[marks.retrieved].tolist() == [by_id[i] for i in top]
    inside = [i for i in top if i in set(drawn.ids.tolist())]
    assert marks.outside == 12 - len(inside) > 0 and len(marks.chunks) == 40 + marks.outside
    outside = [i for i in top if i not in set(inside)]
    read = connection.index.vectors(outside)  # Qdrant keeps them normalised again: equal to 1e-6, not bit for bit
    np.testing.assert_allclose(read, [stored[i] for i in outside], atol=1e-6)
    np.testing.assert_allclose(marks.coords[40:], drawn.projection.transform(read), atol=1e-4)
    reranked = ranking.chunks.table["chunk_id"].to_numpy()[ranking.final_rows()[:12]]
    assert marks.chunks["chunk_id"].iloc[marks.reranked].tolist() == reranked.tolist()
    connection.index.close()


def test_store_without_identity_needs_a_confirmed_model(tmp_path, tiny_encoder):
    uri = str(tmp_path / "q")
    embedder = load_embedder(tiny_encoder, precision="fp32")
    store = create("qdrant", embedder.dim, None, uri=uri, collection="bare")
    store.add(embedder.encode_corpus(["the cell", "the river"]))
    store.close()
    with pytest.raises(ConfigError, match="no model identity metadata") as err:
        connect("qdrant", uri=uri, collection="bare", model=tiny_encoder)
    assert err.value.field == "model"
    connection = connect("qdrant", uri=uri, collection="bare", model=tiny_encoder, confirm_model=True)
    assert "confirmed" in connection.notes[0] and search(connection, "cell", k=2).rows.tolist() == [0, 1]
    connection.index.close()


def test_cli_load_index_and_connect(shards_dir, tmp_path, capsys, tiny_encoder, tiny_reranker):
    folder, session, ids = shards_dir
    uri = str(tmp_path / "cli.db")
    assert main(["load-index", "--shards", str(folder), "--index", "milvus", "--uri", uri, "--collection", "c"]) == 0
    assert main(["connect", "--index", "milvus", "--uri", uri, "--collection", "c", "--reranker", tiny_reranker,
                 "--top-n", "3", "--k", "5", "--format", "json", "cell protein"]) == 0
    out = capsys.readouterr()
    rows = json.loads(out.out)
    assert len(rows) == 3 and all(r["rerank_logit"] is not None for r in rows) and "embedded with" in out.err
    assert main(["connect", "--index", "milvus", "--uri", uri, "--collection", "nope", "x"]) == 2
    assert "no Milvus collection 'nope'" in capsys.readouterr().err


def test_app_connect_tab_handlers(shards_dir, tiny_encoder, tiny_reranker, tmp_path):
    from bge_explorer.app.connect import open_connection, search_connection

    folder, session, ids = shards_dir
    status, state = open_connection("parquet", "", "", str(folder), "", False, None)
    assert state is not None and "embedded with" in status
    before, after = search_connection("cell protein gene", 5, tiny_reranker, 3, state)
    assert len(before) == 5 and len(after) == 5 and list(after["retrieval rank"][:3]) != []
    other = random_models.build(tmp_path / "other", "encoder", seed=8)
    status, kept = open_connection("parquet", "", "", str(folder), other, False, state)
    assert "different model versions" in status and kept is state  # refused, the old connection stays
    state.connection.index.close()


def test_a_connection_runs_its_model_on_the_chosen_backend(shards_dir, tiny_encoder, tiny_reranker, tmp_path,
                                                           monkeypatch, capsys):
    """The app's deployment route (BGE_EXPLORER_BACKEND) and the CLI's --backend reach the connection's embedder and
    the reranker; OpenVINO fp32 finds the same hits as torch."""
    pytest.importorskip("openvino")
    from bge_explorer.app.connect import open_connection

    folder, session, ids = shards_dir
    monkeypatch.setenv("BGE_EXPLORER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BGE_EXPLORER_BACKEND", "openvino")
    monkeypatch.setenv("BGE_EXPLORER_PRECISION", "fp32")
    status, state = open_connection("parquet", "", "", str(folder), "", False, None)
    embedder = state.connection.embedder
    assert (embedder.backend, embedder.precision) == ("openvino", "fp32")
    query = "cell protein gene"
    hits = state.connection.index.search(embedder.encode_queries([query])[0][None], 10)[1][0]
    assert [int(i) for i in hits] == expected(session, ids, query, 10)
    state.connection.index.close()

    assert main(["connect", "--index", "parquet", "--path", str(folder), "--backend", "openvino", "--precision",
                 "fp32", "--reranker", tiny_reranker, "--top-n", "3", "--k", "5", "--format", "json", query]) == 0
    out = capsys.readouterr()
    assert len(json.loads(out.out)) == 3 and "openvino fp32" in out.err


def test_grading_connected_results_feeds_the_experiment_and_downloads(shards_dir, tiny_encoder, tiny_reranker):
    """Judging in place on a connected index: select a row, grade it, the next unjudged is selected; the grades
    show in both tables, survive a reconnect, download as a BEIR zip that reads back, and are the experiment's
    judgments when nothing is uploaded."""
    from bge_explorer.app import connect as tab
    from bge_explorer.data.judging import JudgmentStore

    folder, session, ids = shards_dir
    _, state = tab.open_connection("parquet", "", "", str(folder), "", False, None)
    with pytest.raises(gr.Error, match="Grade some results first"):
        tab.export_judgments(state)
    query = "cell protein gene"
    before, after = tab.search_connection(query, 6, tiny_reranker, 6, state)
    status, state = tab.select_after(state, gr.SelectData(None, {"index": [1, 0], "value": "", "selected": True}))
    reranked = tab.final_table(state.ranking, 6)["doc_id"].astype(str).tolist()
    assert f"reranked #2, document <b>{reranked[1]}</b> (unjudged)" in status
    before, after, status, state = tab.grade_connected(3, state)
    assert state.selected == ("after", 2)  # the next unjudged of the same table
    assert after["grade"].tolist()[1] == "3 perfect"
    assert before.loc[before["document"].str.contains(reranked[1], regex=False), "grade"].tolist() == ["3 perfect"]
    retrieved = state.ranking.table["doc_id"].astype(str).head(6).tolist()
    other = next(j for j, d in enumerate(retrieved) if d != reranked[1])
    tab.select_before(state, gr.SelectData(None, {"index": [other, 2], "value": "", "selected": True}))
    *_, state = tab.grade_connected(0, state)
    assert state.judgments.grades(query) == {reranked[1]: 3, retrieved[other]: 0}
    _, state = tab.open_connection("parquet", "", "", str(folder), "", False, state)  # reconnect: grades kept
    assert state.judgments.grades(query)[reranked[1]] == 3
    back = JudgmentStore()
    back.load_file(tab.export_judgments(state))
    assert back.grades(query) == state.judgments.grades(query)
    status, table, _ = tab.experiment_connection(None, tab.experiment_template(state), "", state)
    assert "on 1 judged queries" in status and len(table) == 3
    workdir = state.workdir
    assert os.path.isdir(workdir)
    tab.drop(state)  # the tab's state expired: its files go (and its client is closed)
    assert not os.path.exists(workdir)


def test_app_map_of_the_connected_index(shards_dir, tiny_encoder):
    """The tab's map: every stored chunk (fewer than the sample size), then the query and its hits after a
    search; a click on a point opens its chunk; markup in the query stays text."""
    from bge_explorer.app import connect as tab
    from bge_explorer.maps import points

    folder, session, ids = shards_dir
    _, state = tab.open_connection("parquet", "", "", str(folder), "", False, None)
    assert tab.redraw_map(state)[0] == gr.skip()  # no map yet: nothing to redraw
    payload, status, state = tab.map_connection(state, progress=lambda *a, **k: None)
    data = json.loads(payload)
    assert data["n"] == len(ids) and f"all {len(ids):,} of its vectors" in status and data["query"] is None
    tab.search_connection("<b>cell</b> protein", 5, "none", 5, state)
    payload, status, state = tab.redraw_map(state)
    data = json.loads(payload)
    chunk_ids = state.drawn["chunk_id"].tolist()
    assert [chunk_ids[r] for r in data["query"]["retrieved"]] == state.ranking.chunks.table["chunk_id"].tolist()
    assert "<b>" not in data["query"]["text"] and "0 of the hits are outside the sample" in status
    assert points.decode_array(data["cluster"]).tolist() == state.store_map.clusters.tolist()
    row = data["query"]["retrieved"][0]
    detail = tab.map_point(state, types.SimpleNamespace(_data={"row": row}))
    assert f"Point {row}:" in detail and "<b>cell</b>" not in detail
    with pytest.raises(gr.Error, match="click one of its points"):
        tab.map_point(state, types.SimpleNamespace(_data={"row": 10**6}))
    state.close()


def connected_judgments(session, n: int = 8, seed: int = 4):
    """``n`` queries of random corpus words, each with two relevant documents and one judged irrelevant."""
    from bge_explorer.data.qrels import Judgments

    rng = np.random.default_rng(seed)
    docs = session.corpus.documents["doc_id"].astype(str).tolist()
    queries, qrels = {}, {}
    for i in range(n):
        queries[f"q{i}"] = " ".join(rng.choice(random_models.WORDS, 4))
        picked = rng.choice(docs, 3, replace=False)
        qrels[f"q{i}"] = {str(picked[0]): 2, str(picked[1]): 1, str(picked[2]): 0}
    return Judgments(queries, qrels, "generated")


def test_an_experiment_on_a_connected_index_equals_the_in_memory_one(shards_dir, tmp_path, tiny_encoder,
                                                                     tiny_reranker):
    """Dense, dense + reranker and dense + BM25 (RRF) on milvus-lite give the metrics of the same configurations
    evaluated in memory (the store is small enough that every chunk is a candidate); another model is refused."""
    from bge_explorer.evaluation.evaluate import evaluate
    from bge_explorer.evaluation.experiment import ExperimentPlan
    from bge_explorer.scale.experiment import CANDIDATES, run_connected_experiment

    folder, session, ids = shards_dir
    assert len(ids) <= CANDIDATES
    uri = str(tmp_path / "e.db")
    load_shards(folder, "milvus", uri=uri, collection="c").close()
    connection = connect("milvus", uri=uri, collection="c")
    judgments = connected_judgments(session)
    base = RetrievalConfig(model=tiny_encoder, chunk_size=16, overlap=4, precision="fp32", instruction="")
    plan = ExperimentPlan.from_dict({"configurations": [
        {"name": "dense"}, {"name": "reranked", "reranker": tiny_reranker, "top_n": 10},
        {"name": "hybrid", "modes": ["dense", "bm25"], "fusion": "rrf"}]}, base=base)
    alone = {c.label: evaluate(session, judgments, c) for c in plan.configurations}
    result = run_connected_experiment(connection, judgments, plan, n_resamples=500)
    for config in plan.configurations:
        np.testing.assert_allclose(result.results[config.label].final.to_numpy(),
                                   alone[config.label].final.to_numpy(), rtol=0, atol=1e-9, err_msg=config.label)
    table = result.table("ndcg@10")
    assert set(table.index) == {"dense", "reranked", "hybrid"} and np.isnan(table.at["dense", "p_value"])
    assert (table["wins"] + table["ties"] + table["losses"]).drop("dense").eq(len(judgments)).all()
    with pytest.raises(ConfigError, match="not the store's embedding model"):
        run_connected_experiment(connection, judgments, ExperimentPlan.from_dict(
            {"configurations": [{"name": "other", "model": "all-MiniLM-L6-v2"}]}))
    with pytest.raises(ConfigError, match="M3's weighted sum") as err:
        run_connected_experiment(connection, judgments, ExperimentPlan.from_dict(
            {"configurations": [{"name": "m3", "modes": ["dense", "bm25"], "fusion": "m3"}]}, base=base))
    assert err.value.field == "configurations[0].fusion"
    assert connection.index.count() == len(ids)  # nothing written
    connection.index.close()




def test_cli_experiment_index_on_qdrant_matches_in_memory(shards_dir, tmp_path, capsys, tiny_encoder, tiny_reranker):
    """``experiment-index`` with BEIR-layout judgments on a Qdrant folder: the JSON's nDCG@10 of each configuration
    is the in-memory evaluation's; bad judgments options are named."""
    import yaml

    from bge_explorer.evaluation.evaluate import evaluate

    folder, session, ids = shards_dir
    store = str(tmp_path / "q")
    load_shards(folder, "qdrant", uri=store, collection="c").close()
    judgments = connected_judgments(session, n=6, seed=9)
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n"
                                                for q, t in judgments.queries.items()))
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t{g}\n" for q, docs in judgments.qrels.items() for d, g in docs.items()))
    configs = tmp_path / "configs.yaml"
    configs.write_text(yaml.safe_dump({"configurations": [
        {"name": "plain", "instruction": ""}, {"name": "reranked", "instruction": "", "reranker": tiny_reranker,
                                               "top_n": 5}], "baseline": "plain"}))
    out = tmp_path / "e.json"
    assert main(["experiment-index", "--index", "qdrant", "--uri", store, "--collection", "c", "--precision", "fp32",
                 "--beir", str(beir), "--configs", str(configs), "--resamples", "200", "--json", str(out)]) == 0
    printed = capsys.readouterr()
    assert "best on ndcg@10" in printed.out and "embedded with" in printed.err
    got = {c["name"]: c["metrics"]["ndcg@10"]["mean"] for c in json.loads(out.read_text())["configurations"]}
    base = RetrievalConfig(model=tiny_encoder, chunk_size=16, overlap=4, precision="fp32", instruction="")
    want = {"plain": evaluate(session, judgments, base).final["ndcg@10"].mean(),
            "reranked": evaluate(session, judgments, base.with_(reranker=tiny_reranker, top_n=5)
                                 ).final["ndcg@10"].mean()}
    assert got == pytest.approx(want, abs=1e-9)
    assert main(["experiment-index", "--index", "qdrant", "--uri", store, "--collection", "c",
                 "--configs", str(configs)]) == 2
    assert "--beir DIR_OR_ZIP or as --qrels" in capsys.readouterr().err


def test_app_experiment_on_a_connected_index(shards_dir, tmp_path, tiny_encoder):
    """The Connect tab's experiment: judgments uploaded as CSV, the template's configurations (stored instruction,
    none, BM25 fusion) on the store give the in-memory metrics; names render as text; bad YAML names the field."""
    import yaml

    from bge_explorer.app.connect import experiment_connection, experiment_template, open_connection
    from bge_explorer.evaluation.evaluate import evaluate

    folder, session, ids = shards_dir
    _, state = open_connection("parquet", "", "", str(folder), "", False, None)
    judgments = connected_judgments(session, n=6, seed=2)
    csv = tmp_path / "judged.csv"
    csv.write_text("query,doc_id,grade\n" + "".join(f'"{judgments.queries[q]}",{d},{g}\n'
                                                    for q, docs in judgments.qrels.items() for d, g in docs.items()))
    template = yaml.safe_load(experiment_template(state))
    template["configurations"][1]["name"] = "<b>none</b>"
    status, table, _ = experiment_connection([str(csv)], yaml.safe_dump(template), "", state)
    assert "6 judged queries" in status and "<b>none</b>" not in status
    base = RetrievalConfig(model=tiny_encoder, chunk_size=16, overlap=4, precision="fp32")
    for config in template["configurations"]:
        fields = {k: v for k, v in config.items() if k != "name"}
        want = evaluate(session, judgments, RetrievalConfig.from_dict({**base.to_dict(), **fields})).final["ndcg@10"].mean()
        got = table.loc[table["configuration"].str.contains("none") if "none" in config["name"]
                        else table["configuration"] == config["name"], "ndcg@10"].item()
        assert got == pytest.approx(want, abs=5e-5), config["name"]  # the table rounds to 4 places
    with pytest.raises(gr.Error, match="configurations"):
        experiment_connection([str(csv)], "configurations: [", "", state)
    state.connection.index.close()
