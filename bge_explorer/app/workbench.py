"""The Workbench tab: from looking to deciding. Judge results, keep a query set, run experiments over many
configurations, calibrate the reranker's threshold, compare two configurations without judgments, export
the decision with ready-to-run code.

Handlers are module-level functions taking and returning the session's :class:`AppState` (testable without
a browser); :func:`build_workbench_tab` lays the tab out and wires them, each with an ``api_name``. The
engine does the work: :mod:`bge_explorer.data.judging`, :mod:`bge_explorer.evaluation.experiment`,
:mod:`~bge_explorer.evaluation.calibration`, :mod:`~bge_explorer.evaluation.pairwise`,
:mod:`~bge_explorer.evaluation.decision`. User text reaches the page only as Dataframe cells, Textbox values
or escaped HTML.
"""
from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
import yaml

from bge_explorer.app import state as app_state, workspace
from bge_explorer.app.components import number_input
from bge_explorer.app.explorer import GRADE_COLUMN
from bge_explorer.app.render import box, cell, esc, fail, label, snippet
from bge_explorer.app.state import AppState
from bge_explorer.data.judging import SCALES
from bge_explorer.data.qrels import parse_query_set, read_query_set
from bge_explorer.errors import Cancelled, ConfigError, ExplorerError
from bge_explorer.evaluation.calibration import best_f1, judged_pairs, threshold_for_precision
from bge_explorer.evaluation.decision import TARGETS, decision, render_code
from bge_explorer.evaluation.experiment import ExperimentPlan, ExperimentResult, run_experiment
from bge_explorer.evaluation.metrics import score_rankings
from bge_explorer.evaluation.pairwise import compare_configurations, documents
from bge_explorer.exports import write_csv
from bge_explorer.models.catalog import RERANKERS
from bge_explorer.retrieval.config import HYBRID, RetrievalConfig
from bge_explorer.retrieval.pipeline import retrieve

JUDGED_K = 10  # rows of the judging table
NO_RERANKER = "none"
MAX_YAML_CHARS = 20_000


# ---------------------------------------------------------------------------------------------------------
# Judging


def _config(app: AppState) -> RetrievalConfig:
    """The configuration results are judged under: the last search's, else how the index was built."""
    if app.session.current is None:
        raise ExplorerError("Build the index first (Model & index tab), then search or pick a query here.")
    config = app.ranking_config if app.current_ranking() is not None else app.session.config
    return config.with_(k=max(config.k, JUDGED_K))


def judging_table(app: AppState, query: str) -> tuple[pd.DataFrame, list[str]]:
    """(table of the query's top JUDGED_K documents with their grades, their document ids)."""
    ranking = retrieve(app.session, _config(app), [query], state=app.session.current)[0]
    docs = documents(ranking)[:JUDGED_K]
    store = app.session.judgments
    text_of = dict(zip(ranking.chunks.table["doc_id"].astype(str), ranking.chunks.table["text"]))
    table = pd.DataFrame({"rank": np.arange(1, len(docs) + 1), "document": [cell(d) for d in docs],
                          GRADE_COLUMN: [store.label(store.get(query, d)) for d in docs],
                          "text": [snippet(text_of.get(d, "")) for d in docs]})
    return table, docs


def counts_html(app: AppState, query: str, docs: list[str]) -> str:
    store = app.session.judgments
    c = store.counts(query, docs)
    return box("info", f"“{label(query)}”: {c.judged} of {len(docs)} judged ({c.relevant} relevant), "
                       f"{c.holes} unjudged in the top {len(docs)}; {len(store)} judgments in this session "
                       f"({esc(store.scale)} scale: {esc(', '.join(f'{i} {n}' for i, n in enumerate(SCALES[store.scale])))}).")


def judge_query(query: str, state: Any = None):
    """Show the top documents of ``query`` (the last search's configuration) with their grades.
    -> (table, counts, selected row, state)."""
    app = app_state.get(state)
    query = (query or "").strip()
    try:
        app.session.limits.check_query(query, None, "")
        if not query:
            raise ExplorerError("Type a query (or search in the Search tab first).")
        table, docs = judging_table(app, query)
    except ExplorerError as exc:
        raise fail(exc) from None
    app.judging = (query, docs)
    return table, counts_html(app, query, docs), 0, app


def grade_row(value: float, row: float, state: Any = None):
    """A grade button (or its key 0-3, or ``/grade``): grade the selected row of the judging table, then select
    the next unjudged one. -> (table, counts, selected row, state)."""
    app = app_state.get(state)
    judging = app.judging
    if not judging:
        raise fail(ExplorerError("Pick a query to judge first."))
    query, docs = judging
    i = int(row or 0)
    if not 0 <= i < len(docs):
        raise fail(ExplorerError(f"row {i + 1} is not in the table"))
    store = app.session.judgments
    try:
        store.grade(query, docs[i], int(value) if float(value) == int(value) else value)
    except (ExplorerError, TypeError, ValueError) as exc:
        raise fail(exc) from None
    nxt = store.next_unjudged(query, docs, after=i)
    table, _ = judging_table(app, query)
    return table, counts_html(app, query, docs), i if nxt is None else nxt, app


def next_unjudged(row: float, state: Any = None):
    """The next unjudged row after the selected one (wrapping), or the same row when all are judged."""
    app = app_state.get(state)
    judging = app.judging
    if not judging:
        return 0
    query, docs = judging
    nxt = app.session.judgments.next_unjudged(query, docs, after=int(row or 0))
    return int(row or 0) if nxt is None else nxt


def select_row(evt: gr.SelectData) -> int:
    return int(evt.index[0]) if evt is not None and evt.index is not None else 0


def set_scale(scale: str, state: Any = None):
    app = app_state.get(state)
    try:
        app.session.judgments.set_scale(scale)
    except ExplorerError as exc:
        raise fail(exc) from None
    return box("info", f"Scale: {esc(scale)} ({esc(', '.join(f'{i} {n}' for i, n in enumerate(SCALES[scale])))})."), app


def import_judgments(files: Any, state: Any = None):
    """Judgments from a BEIR zip/folder export (queries.jsonl + qrels/test.tsv) or a query,doc_id,grade CSV,
    added to the session's. -> (summary, state)."""
    app = app_state.get(state)
    paths = workspace.upload_paths(files)
    if not paths:
        raise fail(ExplorerError("Choose a judgments file (.zip or .csv)."))
    store, read = app.session.judgments, 0
    try:
        for path in paths:
            read += store.load_file(path)
    except ExplorerError as exc:
        raise fail(exc) from None
    return box("info", f"Read {read} judgments; {len(store)} in this session over {len(store.queries())} queries."), app


def export_judgments(state: Any = None):
    """The session's judgments as a BEIR zip and a CSV, in the session's private directory. -> ([zip, csv], state)."""
    app = app_state.get(state)
    store = app.session.judgments
    if not len(store):
        raise fail(ExplorerError("No judgments yet: grade some results first."))
    folder = Path(tempfile.mkdtemp(prefix="judgments-", dir=app.ensure_workdir()))
    csv_path = folder / "judgments.csv"
    csv_path.write_text(store.to_csv(), encoding="utf-8")
    return [str(store.to_beir_zip(folder / "judgments.zip")), str(csv_path)], app


# ---------------------------------------------------------------------------------------------------------
# Query sets


def set_query_set(text: str, file: Any, state: Any = None):
    """A query set from pasted lines or a file (.txt lines, queries.jsonl, CSV/TSV with a query column).
    -> (summary, query picker, state)."""
    app = app_state.get(state)
    try:
        if file:
            path = file if isinstance(file, str) else getattr(file, "name", str(file))
            queries = read_query_set(path, Path(path).name)
        else:
            queries = parse_query_set(text or "", "the pasted queries")
        for q in queries:
            app.session.limits.check_query(q, None, "")
    except ExplorerError as exc:
        raise fail(exc) from None
    app.query_set = queries
    return (box("info", f"{len(queries)} queries in the set. Pick one to see and judge its results."),
            gr.update(choices=queries, value=queries[0]), app)


def judged_queries(state: Any = None):
    """The queries judged in this session as the query set. -> (summary, query picker, state)."""
    app = app_state.get(state)
    queries = app.session.judgments.queries()
    if not queries:
        raise fail(ExplorerError("No judged queries yet."))
    app.query_set = queries
    return box("info", f"{len(queries)} judged queries."), gr.update(choices=queries, value=queries[0]), app


QUERY_SET_BATCH = 16  # queries retrieved per step of a query-set run (the progress bar moves per step)


def run_query_set(state: Any = None, progress=gr.Progress(), request: gr.Request = None):
    """Run the last search's configuration (else how the index was built) over the whole query set: per query its
    top document and how many of its top 10 documents are judged, relevant and unjudged, with nDCG@10 where it
    has judgments. Select a row to judge that query. -> (summary, table, state)."""
    app = app_state.get(state)
    try:
        if not app.query_set:
            raise ExplorerError("Set a query set first (paste queries or upload a file above).")
        config = _config(app)
        queries = list(app.query_set)
        rankings = []
        with app_state.running(app, request):
            for start in range(0, len(queries), QUERY_SET_BATCH):
                app.check_cancelled()
                progress(start / len(queries), desc=f"queries {start}/{len(queries)}")
                rankings += retrieve(app.session, config, queries[start:start + QUERY_SET_BATCH],
                                     state=app.session.current)
    except Cancelled:
        return "Stopped.", gr.skip(), app
    except ExplorerError as exc:
        raise fail(exc) from None
    store = app.session.judgments
    rows = []
    for query, ranking in zip(queries, rankings):
        docs = documents(ranking)[:JUDGED_K]
        c = store.counts(query, docs)
        judged = store.grades(query)
        ndcg = score_rankings([documents(ranking)], [judged], [10])["ndcg@10"].iloc[0] if judged else None
        rows.append({"query": cell(query), "top document": cell(docs[0]) if docs else "", "judged": c.judged,
                     "relevant": c.relevant, "unjudged": c.holes,
                     "ndcg@10": round(float(ndcg), 4) if ndcg is not None else None})
    table = pd.DataFrame(rows)
    holes = int(table["unjudged"].sum())
    return (box("info", f"{len(queries)} queries run with <code>{esc(config.id)}</code>: {holes} unjudged documents "
                        f"in their top {JUDGED_K}s. Select a row to judge that query."), table, app)


def query_of_row(state: Any, evt: gr.SelectData) -> str:
    """The query of the row selected in the query-set run's table."""
    app = app_state.get(state)
    row = evt.index[0] if evt is not None and isinstance(evt.index, (list, tuple)) else None
    return app.query_set[int(row)] if row is not None and 0 <= int(row) < len(app.query_set) else gr.skip()


# ---------------------------------------------------------------------------------------------------------
# Experiments


def experiment_template(state: Any = None) -> str:
    """A starting configuration file for the current index's model: with and without its instruction, BM25,
    and dense + BM25 by reciprocal rank fusion."""
    app = app_state.get(state)
    config = app.session.config
    model = config.model if config is not None and config.model else None
    if model is None:
        return yaml.safe_dump({"baseline": "BM25", "configurations": [
            {"name": "BM25", "model": None, "modes": ["bm25"]}]}, sort_keys=False)
    chunking = {"chunk_size": config.chunk_size, "overlap": config.overlap}
    entries = [{"name": "dense, no instruction", "model": model, "instruction": "", **chunking},
               {"name": "dense, model's instruction", "model": model, **chunking},
               {"name": "BM25", "model": None, "modes": ["bm25"], **chunking},
               {"name": "dense + BM25 (RRF)", "model": model, "instruction": "", "modes": ["dense", "bm25"],
                "fusion": "rrf", **chunking}]
    return yaml.safe_dump({"baseline": "BM25", "configurations": entries}, sort_keys=False, allow_unicode=True)


def _plan(configs_yaml: str, baseline: str | None, app: AppState) -> ExperimentPlan:
    """The plan of the session's index: configurations default to its config, one mode, no reranker."""
    return parse_plan(configs_yaml, baseline, app.session.config.with_(label="", modes=("dense",), fusion="auto",
                                                                       weights={}, reranker=None)
                      if app.session.config else None)


def parse_plan(configs_yaml: str, baseline: str | None, base: RetrievalConfig | None) -> ExperimentPlan:
    """Configurations typed in the page (YAML, at most MAX_YAML_CHARS) -> a checked plan over ``base``; a
    non-empty ``baseline`` replaces the file's."""
    text = configs_yaml or ""
    if len(text) > MAX_YAML_CHARS:
        raise ExplorerError(f"the configurations have {len(text):,} characters, over the limit of "
                            f"{MAX_YAML_CHARS:,}")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("configurations", f"not valid YAML: {str(exc)[:200]}") from None
    plan = ExperimentPlan.from_dict(data, base=base)
    if baseline and baseline.strip():
        plan.baseline = baseline.strip()
    return plan.checked()


def estimate(configs_yaml: str, baseline: str, state: Any = None) -> str:
    """What the experiment will cost before it runs: configurations, corpus encodes, reranked pairs."""
    app = app_state.get(state)
    try:
        plan = _plan(configs_yaml, baseline, app)
        queries = len(app.session.judgments.to_judgments())
    except ExplorerError as exc:
        raise fail(exc) from None
    w = plan.workload(queries)
    chunks = len(app.session.chunks) if app.session.chunks is not None else len(app.session.corpus.documents) \
        if app.session.corpus is not None else 0
    return (f"{w['configurations']} configurations on {queries} judged queries: {w['corpus_encodes']} corpus "
            f"encode(s) (each about as long as building that index; none for a model and chunking already "
            f"built), {w['query_encodes']} query encodes, at most {w['reranked_pairs_at_most']} reranked pairs. "
            + duration(plan, queries, chunks))


def duration(plan: ExperimentPlan, queries: int, chunks: int) -> str:
    """"At most about N s", from the speeds measured in this process, naming the models not measured yet."""
    seconds, unknown = plan.seconds(queries, chunks)
    text = f"At most about {seconds:,.0f} s at the speeds measured here"
    return text + (f" (not counting {', '.join(unknown)}: not run in this process yet)." if unknown else ".")


def results_table(result: ExperimentResult) -> pd.DataFrame:
    rows = []
    for name in result.results:
        row = {"configuration": cell(name)}
        for metric in result.metrics:
            t = result.table(metric).loc[name]
            row[metric] = round(float(t["mean"]), 4)
            row[f"{metric} 95% CI"] = f"{t['ci_low']:.4f} – {t['ci_high']:.4f}"
            row[f"{metric} p (Holm)"] = ("baseline" if name == result.plan.baseline else
                                         f"{t['p_value']:.4f} ({t['p_holm']:.4f})")
        first = result.table(result.metrics[0]).loc[name]
        row[f"W/T/L {result.metrics[0]}"] = ("" if name == result.plan.baseline else
                                             f"{first['wins']}/{first['ties']}/{first['losses']}")
        row["judged@10"] = round(result.extras[name]["judged@10"], 3)
        row["ndcg_condensed@10"] = round(result.extras[name]["ndcg_condensed@10"], 4)
        timings = result.results[name].timings
        row["time (index / search / rerank, s)"] = " / ".join(f"{timings.get(k, 0):.1f}"
                                                              for k in ("index_s", "search_s", "rerank_s"))
        rows.append(row)
    return pd.DataFrame(rows)


def results_figure(result: ExperimentResult, metric: str = "ndcg@10"):
    """A bar per configuration with its 95% interval."""
    import plotly.graph_objects as go

    table = result.table(metric)
    fig = go.Figure(go.Bar(
        x=[label(n) for n in table.index], y=table["mean"],
        error_y=dict(type="data", symmetric=False, array=table["ci_high"] - table["mean"],
                     arrayminus=table["mean"] - table["ci_low"]),
        marker_color=["#9e9e9e" if n == result.plan.baseline else "#1565c0" for n in table.index]))
    fig.update_layout(title=dict(text=f"{metric} with 95% intervals (grey: the baseline)"), yaxis_title=metric,
                      margin=dict(l=60, r=20, t=60, b=120))
    return fig


def per_query_table(result: ExperimentResult, metric: str = "ndcg@10") -> pd.DataFrame:
    """One row per judged query: its text, then each configuration's ``metric`` in plan order (the others with
    their difference from the baseline), the queries where the configurations disagree most first. A cell
    opens that query in Search with that configuration (:func:`open_per_query`)."""
    names = list(result.results)
    scores = pd.DataFrame({n: result.results[n].final[metric].to_numpy() for n in names})
    base = scores[result.plan.baseline]
    table = pd.DataFrame({"query": [cell(q) for q in result.results[names[0]].queries]})
    for name in names:
        table[cell(name)] = [f"{v:.4f}" if name == result.plan.baseline else f"{v:.4f} ({v - b:+.4f})"
                             for v, b in zip(scores[name], base)]
    spread = (scores.max(axis=1) - scores.min(axis=1)).to_numpy()
    return table.iloc[np.argsort(-spread, kind="stable")].reset_index(drop=True)


def per_query_figure(result: ExperimentResult, metric: str = "ndcg@10", shown: int = 5):
    """Per-query differences from the baseline, sorted, for the ``shown`` best configurations: where each wins
    (above 0) and loses (below), and on how many queries."""
    import plotly.graph_objects as go

    table = result.table(metric).drop(index=result.plan.baseline)
    base = result.results[result.plan.baseline].final[metric].to_numpy()
    fig = go.Figure()
    for name in table["mean"].sort_values(ascending=False).index[:shown]:
        delta = np.sort(result.results[name].final[metric].to_numpy() - base)[::-1]
        wins, losses = int((delta > 0).sum()), int((delta < 0).sum())
        fig.add_trace(go.Scatter(y=delta, mode="lines", name=f"{label(name)} ({wins} wins, {losses} losses)"))
    fig.add_hline(y=0, line_color="#9e9e9e")
    fig.update_layout(title=dict(text=f"{metric} per query minus {label(result.plan.baseline)}'s, sorted"),
                      xaxis_title="queries", yaxis_title="difference", margin=dict(l=60, r=20, t=60, b=60))
    return fig


def search_controls(config: RetrievalConfig) -> tuple:
    """The Search tab's control values that run ``config`` on the current index: (instruction mode, instruction,
    k, reranker, top n, mode, fusion, *one weight per registered mode)."""
    from bge_explorer.app import hybrid
    from bge_explorer.retrieval import modes as registry

    if len(config.modes) == 1 and config.modes[0] in registry.REGISTRY:
        mode, weights = config.modes[0], hybrid.default_weights()
    else:
        mode = "hybrid"
        named = config.weight_map
        weights = {m: (named.get(m, 1.0) if m in config.modes or HYBRID in config.modes else 0.0)
                   for m in registry.names()}
    instruction_mode = "model default" if config.instruction is None else "custom"
    return (instruction_mode, config.instruction or "", config.k, config.reranker or NO_RERANKER, config.top_n, mode, config.fusion, *weights.values())


def open_per_query(state: Any, evt: gr.SelectData):
    """A cell of the per-query table: open its query in Search with its column's configuration (the first column:
    the baseline). A configuration on another model or chunking than the current index opens the query only,
    and says what to build. -> (tabs, query, *Search controls, before, after, summary, detail, state)."""
    from bge_explorer.app.explorer import search_once
    from bge_explorer.retrieval import modes as registry

    app = app_state.get(state)
    result = app.experiment
    keep = (gr.skip(),) * (2 + 7 + len(registry.names()) + 4)
    if result is None or evt is None or evt.index is None:
        return (*keep, app)
    row, column = (evt.index if isinstance(evt.index, (list, tuple)) else (evt.index, 0))
    table = per_query_table(result)
    query = str(table.iloc[int(row)]["query"]) if int(row) < len(table) else ""
    names = list(result.results)
    name = names[int(column) - 1] if 1 <= int(column) <= len(names) else result.plan.baseline
    config = next(c for c in result.plan.configurations if c.label == name)
    current = app.session.config
    if app.session.current is None or (config.model, config.chunk_size, config.overlap) != (
            current.model, current.chunk_size, current.overlap):
        note = box("warn", f"“{label(name)}” runs on {label(config.model or 'no model')} with chunking "
                           f"{config.chunk_size or 'none'}; the index here is {label(current.model or 'none')} with "
                           f"chunking {current.chunk_size or 'none'}. Build that index (Model &amp; index tab) to "
                           f"explore it here; the query is in the box.")
        return (gr.Tabs(selected="search"), query, *keep[2:-4], gr.skip(), gr.skip(), note, gr.skip(), app)
    controls = search_controls(config)
    before, after, summary, detail, app = search_once(query, *controls[:5], app, *controls[5:])
    return (gr.Tabs(selected="search"), query, *controls, before, after, summary, detail, app)


def experiment(configs_yaml: str, baseline: str, state: Any = None, progress=gr.Progress(),
                       request: gr.Request = None):
    """Run an experiment: up to 12 named retrieval configurations on this session's corpus and judgments, each
    metric with a 95% interval and its Holm-adjusted p-value against the baseline; the winner exported as a
    decision file and ready-to-run scripts. Returns (status, table, chart, downloads, per-query table, per-query
    chart, state).

    Args:
        configs_yaml: YAML {baseline: NAME, configurations: [{name: ..., model: ..., instruction: ..., modes: [...],
            reranker: ..., top_n: ...}, ...]}; a list value on a field expands into a sweep.
        baseline: the configuration the others are tested against (empty: the file's, else the first).
    """
    app = app_state.get(state)
    session = app.session
    try:
        if session.corpus is None:
            raise ExplorerError("Load a corpus first (Corpus tab).")
        judgments = session.judgments.to_judgments()
        plan = _plan(configs_yaml, baseline, app)

        def report(stage: str, done: int, total: int) -> None:
            app.check_cancelled()
            progress(done / max(total, 1), desc=f"{stage} {done}/{total}")

        with app_state.running(app, request):
            result = run_experiment(session, judgments, plan, progress=report, missing="drop", n_resamples=5_000)
    except Cancelled:
        return "Stopped.", gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), app
    except ExplorerError as exc:
        raise fail(exc) from None
    best, margin, p = result.best("ndcg@10")
    status = (f"{len(plan.configurations)} configurations on {len(judgments)} judged queries. Best on nDCG@10: "
              f"{best}" + ("" if best == plan.baseline else f", {margin:+.4f} over {plan.baseline} (Holm p = {p:.4f})"))
    app.experiment = result
    return (status, results_table(result), results_figure(result), _experiment_files(result, judgments, app),
            per_query_table(result), per_query_figure(result), app)


def _experiment_files(result: ExperimentResult, judgments, app: AppState) -> list[str]:
    """experiment.json, per_query.csv, the winner's decision.yaml and its scripts, in the session's directory."""
    folder = Path(tempfile.mkdtemp(prefix="experiment-", dir=app.ensure_workdir()))
    (folder / "experiment.json").write_text(json.dumps(result.to_dict(), indent=1, ensure_ascii=False),
                                            encoding="utf-8")
    paths = [str(folder / "experiment.json"), write_csv(result.per_query(), str(folder / "per_query.csv"))]
    name, _, _ = result.best("ndcg@10")
    winner = next(c for c in result.plan.configurations if c.label == name)
    entry = next(c for c in result.to_dict()["configurations"] if c["name"] == name)
    exported = decision(winner, result.results[name].config, judgments, entry["metrics"],
                        baseline=result.plan.baseline, vs_baseline=entry["vs_baseline"])
    (folder / "decision.yaml").write_text(yaml.safe_dump(exported, allow_unicode=True, sort_keys=False),
                                          encoding="utf-8")
    paths.append(str(folder / "decision.yaml"))
    try:
        for target in TARGETS:
            script = folder / f"{target}_search.py"
            script.write_text(render_code(winner, result.results[name].config, target), encoding="utf-8")
            paths.append(str(script))
    except ExplorerError:
        pass  # no script for a BM25-only winner: the decision file still says what it is
    return paths


# ---------------------------------------------------------------------------------------------------------
# Calibration and comparison


def calibrate(reranker: str, target: float, state: Any = None):
    """Thresholds for the dense cosine (and the reranker's sigmoid) on the session's judgments, under the
    current index's configuration. -> (status, thresholds table, distribution chart, state)."""
    app = app_state.get(state)
    session = app.session
    try:
        if session.current is None:
            raise ExplorerError("Build the index first (Model & index tab).")
        reranker = session.limits.check_field((reranker or "").strip(), "the reranker")
        config = session.config.with_(reranker=None if reranker.lower() in ("", NO_RERANKER) else reranker)
        pairs = judged_pairs(session, session.judgments.to_judgments(), config)
        target = float(target or 0.9)
        relevant = pairs["relevant"].to_numpy()
        rows = []
        for column in ("cosine", "sigmoid"):
            if column not in pairs:
                continue
            for what, t in (("best F1", best_f1(pairs[column], relevant)),
                            (f"precision >= {target:g}", threshold_for_precision(pairs[column], relevant, target))):
                rows.append({"score": column, "rule": what} | ({"threshold": round(t.value, 4),
                            "precision": round(t.precision, 3), "recall": round(t.recall, 3), "F1": round(t.f1, 3),
                            "TP": t.tp, "FP": t.fp, "FN": t.fn} if t else {"threshold": "never reached"}))
    except ExplorerError as exc:
        raise fail(exc) from None
    return (f"{len(pairs)} judged pairs ({int(relevant.sum())} relevant).", pd.DataFrame(rows),
            _distribution(pairs), app)


def _distribution(pairs: pd.DataFrame):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    columns = [c for c in ("cosine", "sigmoid") if c in pairs]
    fig = make_subplots(rows=1, cols=len(columns), subplot_titles=columns)
    for i, column in enumerate(columns, start=1):
        for relevant, colour in ((True, "#2e7d32"), (False, "#c62828")):
            values = pairs.loc[pairs["relevant"] == relevant, column]
            fig.add_trace(go.Histogram(x=values, name="relevant" if relevant else "not relevant", opacity=0.6,
                                       marker_color=colour, showlegend=i == 1, nbinsx=30), row=1, col=i)
    fig.update_layout(barmode="overlay", title=dict(text="Scores of judged pairs"), margin=dict(t=70))
    return fig


def compare(a_yaml: str, b_yaml: str, k: float, state: Any = None):
    """Compare two retrieval configurations over this session's query set without judgments: per query the overlap,
    Jaccard and rank-biased overlap (p = 0.9) of their top k documents. Returns (summary, per-query table, state).

    Args:
        a_yaml: configuration A as YAML fields, e.g. "model: bge-small-en-v1.5".
        b_yaml: configuration B as YAML fields, e.g. "model: null\nmodes: [bm25]".
        k: how many top documents to compare per query.
    """
    app = app_state.get(state)
    session = app.session
    try:
        queries = app.query_set
        if not queries:
            raise ExplorerError("Set a query set first (paste queries or upload a file).")
        if session.corpus is None:
            raise ExplorerError("Load a corpus first (Corpus tab).")
        configs = []
        for name, text in (("A", a_yaml), ("B", b_yaml)):
            if len(text or "") > MAX_YAML_CHARS:
                raise ExplorerError(f"configuration {name} is over {MAX_YAML_CHARS:,} characters")
            try:
                fields = yaml.safe_load(text or "") or {}
            except yaml.YAMLError as exc:
                raise ConfigError(name, f"not valid YAML: {str(exc)[:200]}") from None
            configs.append(RetrievalConfig.from_dict(fields, where=name))
        result = compare_configurations(session, configs[0], configs[1], queries, int(k or 10))
    except ExplorerError as exc:
        raise fail(exc) from None
    m = result.means()
    table = pd.DataFrame({"query": [cell(q) for q in result.per_query["query"]],
                          "overlap": result.per_query["overlap"], "Jaccard": result.per_query["jaccard"].round(3),
                          "RBO": result.per_query["rbo"].round(3),
                          "A top": [", ".join(map(cell, t)) for t in result.per_query["a_top"]],
                          "B top": [", ".join(map(cell, t)) for t in result.per_query["b_top"]]})
    return (box("info", f"{len(queries)} queries, top {result.k}: overlap {m['overlap']:.2f}, Jaccard "
                        f"{m['jaccard']:.3f}, RBO {m['rbo']:.3f}."), table.sort_values("RBO"), app)


# ---------------------------------------------------------------------------------------------------------
# Layout


def reveal(n: int = 1):
    """Empty states: tables, plots and file lists are laid out hidden and shown once their event filled them.
    -> an event function showing ``n`` components."""
    return lambda: gr.update(visible=True) if n == 1 else (gr.update(visible=True),) * n

def build_workbench_tab(page) -> None:
    """Lay out the Workbench tab inside the caller's ``with gr.Tab(...)``; ``page`` holds ``state``, ``tabs``, the
    Search tab's controls and outputs (built before this tab) and the model event options."""
    state = page.state
    gr.Markdown("Judge results, keep a query set, run experiments over many configurations with intervals and "
                "significance, calibrate thresholds and export the winner with ready-to-run code. Keys while the "
                "judging table is on screen: **0-3** grade the selected row, **n** goes to the next unjudged one.")
    with gr.Accordion("Judge", open=True):
        with gr.Row():
            query = gr.Textbox(label="Query to judge", scale=3, elem_id="judge-query", placeholder="the Search tab's query, or one of the "
                                                                             "query set")
            from_search = gr.Button("Use the Search query", scale=1, elem_id="judge-from-search")
            show = gr.Button("Show results", variant="primary", scale=1, elem_id="judge-show")
        scale = gr.Radio(list(SCALES), value="graded", label="Scale")
        counts = gr.HTML(box("info", "Type a query (or take the Search tab's) and press <b>Show results</b>: its "
                                     f"top {JUDGED_K} documents appear here to grade."), elem_id="judge-counts")
        table = gr.Dataframe(label=f"Top {JUDGED_K} documents (select a row, then grade it)", interactive=False,
                             wrap=True, elem_id="judge-table", visible=False)
        with gr.Row():
            row = number_input(0, label="Selected row (0 = first)", precision=0, minimum=0, maximum=JUDGED_K - 1)
            buttons = [gr.Button(f"{i} {name}", elem_id=f"grade-{i}", size="sm")
                       for i, name in enumerate(SCALES["graded"])]
            nxt = gr.Button("Next unjudged (n)", elem_id="next-unjudged", size="sm")
        with gr.Row():
            grade_value = number_input(1, label="Grade", precision=0, minimum=0, maximum=3)
            grade_btn = gr.Button("Grade the selected row", size="sm")
        with gr.Row():
            upload = gr.File(label="Import judgments (BEIR zip or query,doc_id,grade CSV)", file_count="multiple",
                             file_types=[".zip", ".csv"], type="filepath", elem_id="judge-upload")
            with gr.Column():
                import_btn = gr.Button("Import", elem_id="judge-import")
                export_btn = gr.Button("Export judgments", elem_id="judge-export")
            exported = gr.File(label="Judgments (zip, CSV)", file_count="multiple", interactive=False, visible=False,
                               elem_id="judge-exported")
    with gr.Accordion("Query set", open=False):
        with gr.Row():
            pasted = gr.Textbox(label="Queries, one a line", lines=5)
            query_file = gr.File(label="or a file (.txt, queries.jsonl, CSV/TSV)", type="filepath",
                                 file_types=[".txt", ".jsonl", ".csv", ".tsv"])
        with gr.Row():
            set_btn = gr.Button("Use these queries")
            judged_btn = gr.Button("Use the judged queries")
        set_status = gr.HTML()
        picker = gr.Dropdown([], label="Browse the query set (opens in Judge)", allow_custom_value=False)
        with gr.Row():
            run_set = gr.Button("Run the last search's configuration over the set")
            stop_set = gr.Button("Stop", size="sm")
        set_runs = gr.Dataframe(label="Per query: top document, judged / relevant / unjudged in the top 10, nDCG@10 "
                                      "where judged (select a row to judge it)", interactive=False, wrap=True,
                                visible=False, elem_id="query-set-run", max_height=420)
    with gr.Accordion("Experiment", open=False):
        configs = gr.Code(experiment_template(None), language="yaml", label="Configurations (YAML; a list value "
                          "on a field is a sweep; at most 12)", lines=14)
        with gr.Row():
            template = gr.Button("Template for the current index")
            estimate_btn = gr.Button("Estimate")
            baseline = gr.Textbox("", label="Baseline (default: the file's, else the first)")
            run = gr.Button("Run the experiment on my judgments", variant="primary")
            stop = gr.Button("Stop", size="sm")
        status = gr.Textbox("Judge some queries first, then run the configurations above on your judgments "
                            "(Estimate says what it will cost).", label="Status", interactive=False)
        results = gr.Dataframe(label="Configurations: mean, 95% interval, p against the baseline (Holm-adjusted)",
                               interactive=False, visible=False)
        chart = gr.Plot(label="nDCG@10 with intervals", visible=False)
        per_query = gr.Dataframe(label="Per query: nDCG@10 (difference from the baseline); the queries where the "
                                       "configurations disagree most first. Select a cell: that query in Search with "
                                       "that column's configuration", interactive=False, wrap=True, visible=False,
                                 elem_id="per-query", max_height=420)
        per_query_chart = gr.Plot(label="Per-query differences", visible=False)
        files = gr.File(label="experiment.json, per_query.csv, decision.yaml, scripts", file_count="multiple",
                        interactive=False, visible=False, elem_id="experiment-files")
    with gr.Accordion("Calibrate", open=False):
        with gr.Row():
            reranker = gr.Dropdown([NO_RERANKER] + RERANKERS, value=NO_RERANKER, label="Reranker",
                                   allow_custom_value=True)
            target = number_input(0.9, label="Target precision", minimum=0.01, maximum=1.0)
            cal_btn = gr.Button("Calibrate on my judgments")
        cal_status = gr.Textbox("Judge some results first: the thresholds are read off your judgments.",
                                label="Pairs", interactive=False)
        thresholds = gr.Dataframe(label="Thresholds (relevant when score >= threshold)", interactive=False,
                                  visible=False)
        distribution = gr.Plot(label="Score distributions", visible=False)
    with gr.Accordion("Compare A and B without judgments", open=False):
        with gr.Row():
            a_yaml = gr.Code("model: all-MiniLM-L6-v2\ninstruction: ''\n", language="yaml", label="A", lines=6)
            b_yaml = gr.Code("model: null\nmodes: [bm25]\n", language="yaml", label="B", lines=6)
        with gr.Row():
            k = number_input(10, label="Top k documents", precision=0, minimum=1, maximum=100)
            cmp_btn = gr.Button("Compare over the query set")
        cmp_status = gr.HTML(box("info", "Set a query set above, then compare two configurations over it."))
        cmp_table = gr.Dataframe(label="Per query, least alike first", interactive=False, wrap=True, visible=False)

    judged = [table, counts, row, state]
    from_search.click(lambda q: q, page.query, query, api_visibility="private")
    show.click(judge_query, [query, state], judged, api_name="judge_query", **page.models).success(
        reveal(), None, table, api_visibility="private")
    query.submit(judge_query, [query, state], judged, api_visibility="private", **page.models).success(
        reveal(), None, table, api_visibility="private")
    table.select(select_row, None, row, api_visibility="private")
    for i, button in enumerate(buttons):
        button.click(functools.partial(grade_row, i), [row, state], judged, api_visibility="private", **page.models)
    nxt.click(next_unjudged, [row, state], row, api_visibility="private")
    grade_btn.click(grade_row, [grade_value, row, state], judged, api_name="grade", **page.models)
    scale.change(set_scale, [scale, state], [counts, state], api_name="judging_scale")
    import_btn.click(import_judgments, [upload, state], [counts, state], api_name="import_judgments")
    export_btn.click(export_judgments, [state], [exported, state], api_name="export_judgments").success(
        reveal(), None, exported, api_visibility="private")
    set_btn.click(set_query_set, [pasted, query_file, state], [set_status, picker, state], api_name="query_set")
    judged_btn.click(judged_queries, [state], [set_status, picker, state], api_visibility="private")
    set_event = run_set.click(run_query_set, [state], [set_status, set_runs, state], api_name="run_query_set",
                              **page.models)
    set_event.success(reveal(), None, set_runs, api_visibility="private")
    stop_set.click(lambda s: app_state.get(s).cancel(), [state], None, cancels=[set_event], queue=False,
                   api_visibility="private")
    set_runs.select(query_of_row, [state], query, api_visibility="private").then(
        judge_query, [query, state], judged, api_visibility="private", **page.models).success(
        reveal(), None, table, api_visibility="private")
    picker.input(lambda q: q, picker, query, api_visibility="private").then(
        judge_query, [query, state], judged, api_visibility="private", **page.models).success(
        reveal(), None, table, api_visibility="private")
    template.click(experiment_template, [state], configs, api_visibility="private")
    estimate_btn.click(estimate, [configs, baseline, state], status, api_visibility="private")
    event = run.click(experiment, [configs, baseline, state],
                      [status, results, chart, files, per_query, per_query_chart, state],
                      api_name="experiment", **page.models)
    event.success(reveal(5), None, [results, chart, files, per_query, per_query_chart], api_visibility="private")
    per_query.select(open_per_query, [state],
                     [page.tabs, page.query, page.instruction_mode, page.instruction, page.k, page.reranker,
                      page.top_n, *page.retrieval_inputs, *page.search_outputs], api_visibility="private",
                     **page.models)
    stop.click(lambda s: app_state.get(s).cancel(), [state], None, cancels=[event], queue=False,
               api_visibility="private")
    cal_btn.click(calibrate, [reranker, target, state], [cal_status, thresholds, distribution, state],
                  api_name="calibrate", **page.models).success(reveal(2), None, [thresholds, distribution],
                                                               api_visibility="private")
    cmp_btn.click(compare, [a_yaml, b_yaml, k, state], [cmp_status, cmp_table, state], api_name="compare",
                  **page.models).success(reveal(), None, cmp_table, api_visibility="private")
