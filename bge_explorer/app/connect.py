"""The "Connect to an index" tab: search a Milvus or Qdrant collection, or a folder of Parquet shards, read-only.

The handlers call :mod:`bge_explorer.scale.connect`: the stored model identity is checked against the model
chosen (a mismatch is refused with the reason shown), a store without identity metadata needs the model
confirmed, and the results are the Search tab's before/after tables, reranked through the same cache. An
experiment on uploaded judgments runs through :mod:`bge_explorer.scale.experiment` and shows the Workbench's
leaderboard.
Off on a public deployment: a visitor must not make the server open files or reach other hosts.
"""
from __future__ import annotations

import json
import os
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
import yaml

from bge_explorer import settings
from bge_explorer.app import choices, map as map_tab, state as app_state, workspace
from bge_explorer.app.explorer import after_table, before_table, chunk_detail, final_table
from bge_explorer.app.render import box, esc, fail, label
from bge_explorer.app.workbench import parse_plan, results_figure, results_table
from bge_explorer.data.judging import SCALES, JudgmentStore
from bge_explorer.errors import ExplorerError
from bge_explorer.models.backends import deployment_route
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.retrieval.rerank import RerankCache
from bge_explorer.maps import points
from bge_explorer.scale import connect as engine
from bge_explorer.scale.store_map import MAP_SAMPLE, StoreMap, map_store, query_marks

HELP = ("Search an index you already have. **Milvus**: a milvus-lite `.db` file or `http://host:19530`; "
        "**Qdrant**: a local folder or `http://host:6333`; **Parquet**: the folder `embed --engine ray` wrote. "
        "Nothing is written to the store. The model stored with the index is used unless you name another of the "
        "same embedding space.")


class Connected:
    """One browser session's connection, reranker cache, last search and the judgments graded on its results."""

    def __init__(self, connection: engine.Connection, judgments: JudgmentStore | None = None):
        self.connection, self.rerank_cache = connection, RerankCache()
        self.judgments = judgments if judgments is not None else JudgmentStore()
        self.ranking, self.k = None, 10
        self.hit_ids: np.ndarray | None = None  # the store ids of the last ranking's rows
        self.selected: tuple[str, int] | None = None  # (table, row) the grade buttons act on
        self.workdir: str | None = None
        self.store_map: StoreMap | None = None  # the map of a sample of the store, fitted once per connection
        self.drawn: pd.DataFrame | None = None  # the chunks of the points on the map, in payload order

    def rows(self, which: str) -> pd.DataFrame:
        """The rows of one result table as shown: "before" (the store's order) or "after" (reranked)."""
        if self.ranking is None:
            raise ExplorerError("Search first: the results of the last search are graded here.")
        if which == "after" and self.ranking.rerank_logits is not None:
            return final_table(self.ranking, self.k)
        return self.ranking.table.head(self.k).reset_index(drop=True)

    def tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(before, after) of the last search, with this tab's grades for its query."""
        query = self.ranking.query
        grades = {d: self.judgments.label(g) for d, g in self.judgments.grades(query).items()}
        return (before_table(self.ranking, self.k, query, grades=grades),
                after_table(self.ranking, self.k, query, grades=grades))

    def close(self) -> None:
        self.connection.index.close()
        workspace.remove(self.workdir)


def drop(value: Any) -> None:
    """``gr.State(delete_callback=...)``: the tab's state expired; its client is closed, its files removed."""
    if isinstance(value, Connected):
        value.close()
        app_state.release_memory()


def experiment_template(current: Connected | None) -> str:
    """Configurations a connected store can compare: its instruction or none, BM25 fusion over the candidates."""
    instruction = current.connection.instruction if current is not None else ""
    return yaml.safe_dump({"baseline": "stored instruction", "configurations": [
        {"name": "stored instruction", "instruction": instruction},
        {"name": "no instruction", "instruction": ""},
        {"name": "+ BM25 (RRF)", "instruction": instruction, "modes": ["dense", "bm25"], "fusion": "rrf"}]},
        sort_keys=False, allow_unicode=True)


def read_judgments(files: Any, graded: JudgmentStore | None = None):
    """Uploaded judgments (a BEIR zip or a ``query,doc_id[,grade]`` CSV) and those ``graded`` in the tab ->
    Judgments."""
    paths = workspace.upload_paths(files)
    if not paths and not (graded is not None and len(graded)):
        raise ExplorerError("Upload judgments first (a BEIR zip of queries.jsonl + qrels/test.tsv, or a "
                            "query,doc_id,grade CSV), or grade search results in this tab.")
    store = JudgmentStore()
    if graded is not None:
        store.load(*graded.numbered())
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
        judgments = read_judgments(files, current.judgments)
        plan = parse_plan(configs_yaml, baseline, RetrievalConfig(model=current.connection.embedder.spec.name,
                                                                  chunk_size=None, **deployment_route()))
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
        route = deployment_route()
        connection = engine.connect(backend, uri=uri.strip() or None, collection=collection.strip() or None,
                                    path=path.strip() or None, model=model.strip() or None, confirm_model=confirm,
                                    precision=route["precision"], model_backend=route["backend"])
    except ExplorerError as exc:
        return box("error", esc(str(exc))), current
    judgments = current.judgments if current is not None else None  # grades outlive a change of index
    if current is not None:
        current.close()
    notes = "".join(f"<br>note: {esc(n)}" for n in connection.notes)
    return box("info", esc(connection.describe()) + notes), Connected(connection, judgments)


def search_connection(query: str, k: float, reranker: str, top_n: float, current: Connected | None
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Top ``k`` from the store (before) and, with a reranker, the reranked top n (after)."""
    if current is None:
        raise fail(ExplorerError("Connect to an index first."))
    try:
        ranking, hit_ids = engine.search_hits(current.connection, query, k=int(k))
        if _reranks(reranker):
            from bge_explorer.models.loading import load_reranker
            from bge_explorer.retrieval.pipeline import rerank

            rerank(ranking, load_reranker(reranker, **deployment_route()), int(top_n), current.rerank_cache)
    except ExplorerError as exc:
        raise fail(exc) from None
    current.ranking, current.hit_ids, current.k, current.selected = ranking, hit_ids, int(k), None
    return current.tables()


def grading_status(current: Connected | None) -> str:
    """What the grade buttons act on, and how many of the shown documents are judged."""
    if current is None or current.ranking is None:
        return box("info", "Search, then select a result and grade it: the grades feed this tab's experiment and "
                           "download as judgments.")
    query = current.ranking.query
    which, row = current.selected or ("after" if current.ranking.rerank_logits is not None else "before", None)
    docs = current.rows(which)["doc_id"].astype(str).tolist()
    c = current.judgments.counts(query, docs)
    head = (f"Grading “{label(query)}”: {c.judged} of the {len(docs)} documents shown judged ({c.relevant} "
            f"relevant); {len(current.judgments)} judgments in this tab.")
    if row is None:
        return box("info", f"{head} Select a row in a table to grade it.")
    grade = current.judgments.label(current.judgments.get(query, docs[row])) or "unjudged"
    return box("info", f"{head} Selected: {'reranked' if which == 'after' else 'retrieved'} #{row + 1}, document "
                       f"<b>{label(docs[row])}</b> ({esc(grade)}).")


def select_connected(which: str, current: Connected | None, evt: gr.SelectData):
    """A row picked in the retrieved (``which`` "before") or reranked ("after") table. -> (status, state)."""
    if current is None or current.ranking is None or evt is None or evt.index is None:
        return gr.skip(), current
    index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    if 0 <= int(index) < len(current.rows(which)):
        current.selected = (which, int(index))
    return grading_status(current), current


def select_before(current: Connected | None, evt: gr.SelectData):
    return select_connected("before", current, evt)


def select_after(current: Connected | None, evt: gr.SelectData):
    return select_connected("after", current, evt)


def grade_connected(grade: float, current: Connected | None):
    """Grade the selected result's document for the last query, then select the next unjudged one of the same
    table. -> (before, after, status, state)."""
    try:
        if current is None or current.ranking is None:
            raise ExplorerError("Connect and search first.")
        if current.selected is None:
            raise ExplorerError("Select a result row first.")
        which, row = current.selected
        docs = current.rows(which)["doc_id"].astype(str).tolist()
        value = float(grade)
        current.judgments.grade(current.ranking.query, docs[row], int(value) if value == int(value) else value)
    except (ExplorerError, TypeError, ValueError) as exc:
        raise fail(exc) from None
    following = current.judgments.next_unjudged(current.ranking.query, docs, after=row)
    current.selected = (which, row if following is None else following)
    return (*current.tables(), grading_status(current), current)


def export_judgments(current: Connected | None) -> str:
    """This tab's judgments as a BEIR zip (queries.jsonl + qrels/test.tsv): the Workbench and the CLI read it."""
    if current is None or not len(current.judgments):
        raise fail(ExplorerError("Grade some results first."))
    current.workdir = current.workdir or workspace.new_dir()
    return str(current.judgments.to_beir_zip(os.path.join(current.workdir, "connected-judgments.zip")))


def map_connection(current: Connected | None, progress=gr.Progress()):
    """The map of the connected store: UMAP of a seeded sample (once per connection), with the last query and
    its top k from the whole store. -> (map payload JSON, status, state)."""
    if current is None:
        raise fail(ExplorerError("Connect to an index first."))
    try:
        if current.store_map is None:
            progress(0.1, desc=f"sampling up to {MAP_SAMPLE:,} vectors and fitting UMAP")
            current.store_map = map_store(current.connection)
        data, note = _store_payload(current)
    except ExplorerError as exc:
        raise fail(exc) from None
    return json.dumps(data), box("ok", esc(current.store_map.describe()) + note), current


def redraw_map(current: Connected | None):
    """After a search: the map again with the new query, when it is drawn already."""
    if current is None or current.store_map is None:
        return gr.skip(), gr.skip(), current
    data, note = _store_payload(current)
    return json.dumps(data), box("ok", esc(current.store_map.describe()) + note), current


def _store_payload(current: Connected) -> tuple[dict, str]:
    """The map's payload (points.point_payload) and a sentence on the query's marks."""
    drawn, note = current.store_map, " Search to see the query and its hits on the map."
    coords, table, query = drawn.projection.coords, drawn.chunks.table, None
    if current.ranking is not None:
        marks = query_marks(current.connection, drawn, current.ranking, current.hit_ids, current.k)
        coords, table = marks.coords, marks.chunks
        query = {"text": points.plain(current.ranking.query, points.HOVER_CHARS), "x": float(marks.xy[0]),
                 "y": float(marks.xy[1]), "retrieved": marks.retrieved, "reranked": marks.reranked}
        note = (f" Query: star, with lines to its top {len(marks.retrieved)} from the whole store (open circles) and "
                f"reranked top n (red diamonds); {marks.outside} of the hits are outside the sample and placed by "
                "UMAP's transform.")
    outside = len(table) - len(drawn.ids)
    words = {found.cluster: found.text for found in drawn.cluster_labels}
    names = [f"{c}: {words[c]}" for c in drawn.clusters] + ["hits outside the sample"] * outside
    codes = np.concatenate([drawn.clusters, np.full(outside, drawn.clusters.max(initial=0) + 1)])
    current.drawn = table
    data = points.point_payload(coords, table, points.by_category(names, "cluster"), axis="UMAP",
                                revision=f"store-{id(drawn)}", title=f"UMAP of {len(drawn.ids):,} stored chunks",
                                query=query, labels={"coarse": points.label_payload(drawn.cluster_labels),
                                                     "fine": []},
                                cluster=points.encode_array(codes, points.code_dtype(int(codes.max(initial=0)) + 1)),
                                find="", matches=[], space=None)
    return data, note + " Click a point to read it."


def map_point(current: Connected | None, evt: gr.EventData) -> str:
    """A point clicked on the store's map: its chunk."""
    row = (evt._data or {}).get("row")
    if current is None or current.drawn is None or not isinstance(row, int) or isinstance(row, bool) \
            or not 0 <= row < len(current.drawn):
        raise fail(ExplorerError("Draw the map, then click one of its points."))
    query = current.ranking.query if current.ranking is not None else ""
    return chunk_detail(current.drawn.iloc[row], query, f"Point {row}: ")


def build_connect_tab() -> None:
    """Lay out the tab inside the caller's ``with gr.Tab(...)``, with its own session state (expiring like the
    page's: its client is released with it)."""
    state = gr.State(None, time_to_live=workspace.session_ttl_s(), delete_callback=drop)
    gr.Markdown(HELP)
    with gr.Row():
        backend = gr.Dropdown(list(engine.EXTERNAL), value="milvus", label="Index", elem_id="connect-backend")
        uri = gr.Textbox(label="URI (Milvus / Qdrant)")
        collection = gr.Textbox(label="Collection", value="chunks")
        path = gr.Textbox(label="Parquet folder", elem_id="connect-path")
    with gr.Row():
        model = gr.Textbox(label="Model (empty: the one stored with the index)")
        confirm = gr.Checkbox(label="The index has no model metadata: I confirm this model embedded it")
        connect = gr.Button("Connect", variant="primary", elem_id="connect-btn")
    status = gr.HTML(box("info", "Not connected."), elem_id="connect-status")
    with gr.Row():
        query = gr.Textbox(label="Query", scale=3, elem_id="connect-query")
        k = gr.Number(value=10, minimum=1, maximum=engine.FETCH_LIMIT, precision=0, label="k")
        with gr.Column(min_width=200):
            reranker = gr.Dropdown(choices.choices("reranker"), value=choices.NO_RERANKER, allow_custom_value=True,
                                   label="Reranker (catalog, Hub id or local path)", elem_id="connect-reranker")
            reranker_where = gr.HTML(elem_id="connect-reranker-availability")
        top_n = gr.Number(value=10, minimum=1, maximum=engine.FETCH_LIMIT, precision=0, label="Rerank top n")
        search = gr.Button("Search", elem_id="connect-search-btn")
    empty = gr.HTML(_empty_line(False), elem_id="connect-empty")
    with gr.Column(visible=False) as results:
        before = gr.Dataframe(label="Retrieved", datatype="markdown", wrap=True, elem_id="connect-before")
        after = gr.Dataframe(label="Reranked", datatype="markdown", wrap=True, visible=False,
                             elem_id="connect-after")
        grading = gr.HTML(grading_status(None), elem_id="connect-grading")
        with gr.Row():
            grades = [gr.Button(f"{g} {name}", size="sm", elem_id=f"connect-grade-{g}")
                      for g, name in enumerate(SCALES["graded"])]
            download = gr.Button("Download these judgments (BEIR zip)", size="sm", elem_id="connect-judgments-btn")
        judgments_file = gr.File(label="Judgments", interactive=False, visible=False, elem_id="connect-judgments-file")
    with gr.Accordion("Map of this index (a sample)", open=False):
        gr.Markdown(f"UMAP of a seeded uniform sample of up to {MAP_SAMPLE:,} of the store's vectors (every id is "
                    "listed, only the sample's vectors are read), clusters named by their keywords; after a search "
                    "the query and its top k from the whole store, hits outside the sample placed by UMAP's "
                    "transform. Fitted once per connection.")
        map_btn = gr.Button("Map a sample of the index", elem_id="connect-map-btn")
        map_status = gr.HTML(elem_id="connect-map-status")
        plot = gr.HTML("", html_template=map_tab.TEMPLATE, js_on_load=map_tab.JS_ON_LOAD, head=map_tab.head(),
                       elem_id="connect-map", min_height=640, visible=False)
        map_detail = gr.HTML(elem_id="connect-map-detail")
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
        ex_status = gr.HTML(box("info", "Connect, upload judgments, then run: the leaderboard and its chart "
                                        "appear here."), elem_id="connect-experiment-status")
        leaderboard = gr.Dataframe(label="Leaderboard", wrap=True, elem_id="connect-leaderboard", visible=False)
        chart = gr.Plot(label="nDCG@10 with 95% intervals", visible=False)
    connected = connect.click(open_connection, [backend, uri, collection, path, model, confirm, state],
                              [status, state], api_name="connect_index")
    connected.then(experiment_template, state, configs, api_visibility="private")
    connected.then(lambda current: _empty_line(current is not None), state, empty, api_visibility="private")
    ran = run.click(experiment_connection, [judgments, configs, baseline, state], [ex_status, leaderboard, chart],
                    api_name="experiment_index")
    ran.success(lambda: (gr.update(visible=True),) * 2, None, [leaderboard, chart], api_visibility="private")
    reranker.change(lambda name: choices.availability_html(name, "reranker"), reranker, reranker_where,
                    api_visibility="private")
    searched = gr.on([search.click, query.submit], search_connection, [query, k, reranker, top_n, state],
                     [before, after], api_name="search_index")
    searched.success(_show_results, [reranker, state], [empty, results, after, grading], api_visibility="private")
    searched.success(redraw_map, state, [plot, map_status, state], api_visibility="private")
    map_btn.click(map_connection, state, [plot, map_status, state], api_name="map_index",
                  concurrency_limit=1).success(lambda: gr.update(visible=True), None, plot, api_visibility="private")
    plot.point_click(map_point, state, map_detail, api_visibility="private")
    before.select(select_before, state, [grading, state], api_visibility="private")
    after.select(select_after, state, [grading, state], api_visibility="private")
    for g, button in enumerate(grades):
        button.click(lambda current, g=g: grade_connected(g, current), state, [before, after, grading, state],
                     api_visibility="private")
    download.click(export_judgments, state, judgments_file, api_name="export_index_judgments").success(
        lambda: gr.update(visible=True), None, judgments_file, api_visibility="private")


def _empty_line(connected: bool) -> str:
    """What the results area says before it has results."""
    if settings.current().public:
        return box("info", "Connecting to an index is off on this public deployment: it would let a visitor make "
                           "the server open files or reach other hosts.")
    if not connected:
        return box("info", "Connect to an index first: choose Milvus, Qdrant or a Parquet folder above and press "
                           "Connect. Its results show here.")
    return box("info", "Connected: type a query and press Search.")


def _reranks(reranker: str | None) -> bool:
    """Whether the reranker field names one ("none", as the list offers, or "(none)" or empty: no)."""
    return (reranker or "").strip().lower() not in ("", choices.NO_RERANKER, f"({choices.NO_RERANKER})")


def _show_results(reranker: str, current: Connected | None):
    """After a search: the retrieved table, the reranked one when a reranker was chosen, the grading line."""
    reranked = _reranks(reranker)
    return gr.update(visible=False), gr.update(visible=True), gr.update(visible=reranked), grading_status(current)
