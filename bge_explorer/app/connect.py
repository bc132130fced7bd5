"""The "Connect to an index" tab: search a Milvus or Qdrant collection, or a folder of Parquet shards, read-only.

The handlers call :mod:`bge_explorer.scale.connect`: the stored model identity is checked against the model
chosen (a mismatch is refused with the reason shown), a store without identity metadata needs the model
confirmed, and the results are the Search tab's before/after tables, reranked through the same cache. An
experiment on uploaded judgments runs through :mod:`bge_explorer.scale.experiment` and shows the Workbench's
leaderboard.
Off on a public deployment: a visitor must not make the server open files or reach other hosts.
"""
from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd
import yaml

from bge_explorer import settings
from bge_explorer.app import state as app_state, workspace
from bge_explorer.app.explorer import after_table, before_table
from bge_explorer.app.render import box, esc, fail
from bge_explorer.app.workbench import parse_plan, results_figure, results_table
from bge_explorer.data.judging import JudgmentStore
from bge_explorer.errors import ExplorerError
from bge_explorer.models.catalog import RERANKERS
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.retrieval.rerank import RerankCache
from bge_explorer.scale import connect as engine

NO_RERANKER = "(none)"
HELP = ("Search an index you already have. **Milvus**: a milvus-lite `.db` file or `http://host:19530`; "
        "**Qdrant**: a local folder or `http://host:6333`; **Parquet**: the folder `embed --engine ray` wrote. "
        "Nothing is written to the store. The model stored with the index is used unless you name another of the "
        "same embedding space.")


class Connected:
    """One browser session's connection and reranker cache."""

    def __init__(self, connection: engine.Connection):
        self.connection, self.rerank_cache = connection, RerankCache()


def experiment_template(current: Connected | None) -> str:
    """Configurations a connected store can compare: its instruction or none, BM25 fusion over the candidates."""
    instruction = current.connection.instruction if current is not None else ""
    return yaml.safe_dump({"baseline": "stored instruction", "configurations": [
        {"name": "stored instruction", "instruction": instruction},
        {"name": "no instruction", "instruction": ""},
        {"name": "+ BM25 (RRF)", "instruction": instruction, "modes": ["dense", "bm25"], "fusion": "rrf"}]},
        sort_keys=False, allow_unicode=True)


def read_judgments(files: Any):
    """Uploaded judgments (a BEIR zip or a ``query,doc_id[,grade]`` CSV) -> Judgments."""
    paths = workspace.upload_paths(files)
    if not paths:
        raise ExplorerError("Upload judgments first: a BEIR zip (queries.jsonl + qrels/test.tsv) or a "
                            "query,doc_id,grade CSV.")
    store = JudgmentStore()
    for path in paths:
        store.load_file(path)
    return store.to_judgments()


def experiment_connection(files: Any, configs_yaml: str, baseline: str, current: Connected | None,
                          progress=gr.Progress()):
    """Run the configurations on the connected store against the uploaded judgments -> (status, leaderboard,
    chart)."""
    from bge_explorer.scale.experiment import run_connected_experiment

    if current is None:
        raise fail(ExplorerError("Connect to an index first."))
    try:
        judgments = read_judgments(files)
        plan = parse_plan(configs_yaml, baseline, RetrievalConfig(model=current.connection.embedder.spec.name,
                                                                  chunk_size=None))
        result = run_connected_experiment(
            current.connection, judgments, plan, rerank_cache=current.rerank_cache, n_resamples=5_000,
            progress=lambda stage, done, total: progress(done / max(total, 1), desc=f"{stage} {done}/{total}"))
    except ExplorerError as exc:
        raise fail(exc) from None
    best, margin, p = result.best("ndcg@10")
    notes = dict.fromkeys(n for r in result.results.values() for n in r.notes)
    status = (f"{len(plan.configurations)} configurations on {len(judgments)} judged queries of "
              f"{esc(current.connection.where)}. Best on nDCG@10: {esc(best)}"
              + ("" if best == plan.baseline else f", {margin:+.4f} over {esc(plan.baseline)} (Holm p = {p:.4f})")
              + "".join(f"<br>note: {esc(n)}" for n in notes))
    return box("info", status), results_table(result), results_figure(result)


def open_connection(backend: str, uri: str, collection: str, path: str, model: str, confirm: bool,
                    current: Connected | None) -> tuple[str, Connected | None]:
    """Connect; returns the status box and the new state (the old connection is closed)."""
    if settings.current().public:
        raise fail(ExplorerError("Connecting to an index is off on a public deployment."))
    try:
        connection = engine.connect(backend, uri=uri.strip() or None, collection=collection.strip() or None,
                                    path=path.strip() or None, model=model.strip() or None, confirm_model=confirm)
    except ExplorerError as exc:
        return box("error", esc(str(exc))), current
    if current is not None:
        current.connection.index.close()
    notes = "".join(f"<br>note: {esc(n)}" for n in connection.notes)
    return box("info", esc(connection.describe()) + notes), Connected(connection)


def search_connection(query: str, k: float, reranker: str, top_n: float, current: Connected | None
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Top ``k`` from the store (before) and, with a reranker, the reranked top n (after)."""
    if current is None:
        raise fail(ExplorerError("Connect to an index first."))
    try:
        ranking = engine.search(current.connection, query, k=int(k))
        if reranker and reranker != NO_RERANKER:
            from bge_explorer.models.loading import load_reranker
            from bge_explorer.retrieval.pipeline import rerank

            rerank(ranking, load_reranker(reranker), int(top_n), current.rerank_cache)
    except ExplorerError as exc:
        raise fail(exc) from None
    return before_table(ranking, int(k), query), after_table(ranking, int(k), query)


def build_connect_tab() -> None:
    """Lay out the tab inside the caller's ``with gr.Tab(...)``, with its own session state (expiring like the
    page's: its client is released with it)."""
    state = gr.State(None, time_to_live=workspace.session_ttl_s(), delete_callback=app_state.drop)
    gr.Markdown(HELP)
    with gr.Row():
        backend = gr.Dropdown(list(engine.EXTERNAL), value="milvus", label="Index")
        uri = gr.Textbox(label="URI (Milvus / Qdrant)")
        collection = gr.Textbox(label="Collection", value="chunks")
        path = gr.Textbox(label="Parquet folder")
    with gr.Row():
        model = gr.Textbox(label="Model (empty: the one stored with the index)")
        confirm = gr.Checkbox(label="The index has no model metadata: I confirm this model embedded it")
        connect = gr.Button("Connect", variant="primary")
    status = gr.HTML(box("info", "Not connected."))
    with gr.Row():
        query = gr.Textbox(label="Query", scale=3)
        k = gr.Number(value=10, minimum=1, maximum=engine.FETCH_LIMIT, precision=0, label="k")
        reranker = gr.Dropdown([NO_RERANKER, *RERANKERS], value=NO_RERANKER, label="Reranker")
        top_n = gr.Number(value=10, minimum=1, maximum=engine.FETCH_LIMIT, precision=0, label="Rerank top n")
        search = gr.Button("Search")
    before = gr.Dataframe(label="Retrieved", datatype="markdown", wrap=True)
    after = gr.Dataframe(label="Reranked", datatype="markdown", wrap=True)
    with gr.Accordion("Experiment on this index: configurations against your judgments", open=False):
        gr.Markdown("Compare the query instruction, BM25 fusion over the fetched candidates and rerankers on the "
                    "stored vectors; each configuration gets intervals and a Holm-adjusted test against the "
                    "baseline. Judgments: a BEIR zip (queries.jsonl + qrels/test.tsv, as the Workbench exports) "
                    "or a query,doc_id,grade CSV. To compare rerankers add `reranker: NAME` and `top_n: 20` to "
                    "a configuration.")
        with gr.Row():
            judgments = gr.File(label="Judgments (.zip or .csv)", file_types=[".zip", ".csv"],
                                file_count="multiple", elem_id="connect-judgments")
            configs = gr.Code(experiment_template(None), language="yaml", label="Configurations (YAML)",
                              elem_id="connect-configs")
        with gr.Row():
            baseline = gr.Textbox(label="Baseline (empty: the file's)", scale=2)
            run = gr.Button("Run the experiment", variant="primary", elem_id="connect-experiment-btn")
        ex_status = gr.HTML(elem_id="connect-experiment-status")
        leaderboard = gr.Dataframe(label="Leaderboard", wrap=True, elem_id="connect-leaderboard")
        chart = gr.Plot(label="nDCG@10 with 95% intervals")
    connect.click(open_connection, [backend, uri, collection, path, model, confirm, state], [status, state],
                  api_name="connect_index").then(experiment_template, state, configs)
    run.click(experiment_connection, [judgments, configs, baseline, state], [ex_status, leaderboard, chart],
              api_name="experiment_index")
    gr.on([search.click, query.submit], search_connection, [query, k, reranker, top_n, state], [before, after],
          api_name="search_index")
