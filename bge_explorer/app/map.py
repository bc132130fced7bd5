"""The Map tab's handlers: a map you work in, drawn by plotly.js in the page (``assets/map.js``) from a binary
payload (:mod:`bge_explorer.maps.points`), its clicks and lasso / box selections sent back as events.

Every chunk is drawn. A click opens the chunk (and "Find similar" searches with its text through the Search
tab's own handler); a selection fills a table that can be exported, graded for the current query in one action,
or searched within. Points are coloured by document, cluster, retrieval score, reranker movement, judgment grade
or a corpus column; the last query, its retrieved top k and reranked top n are drawn with lines to the hits;
cluster keyword labels (c-TF-IDF) are placed on the map, fine ones once zoomed in. Handlers take and return the
session's :class:`~bge_explorer.app.state.AppState`, as in :mod:`bge_explorer.app.explorer`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import gradio as gr
import numpy as np
import pandas as pd

from bge_explorer.app import state as app_state
from bge_explorer.app.explorer import _tmpdir, chunk_detail
from bge_explorer.app.render import box, cell, esc, fail, label, query_terms, snippet
from bge_explorer.app.state import AppState
from bge_explorer.data.judging import SCALES
from bge_explorer.errors import ExplorerError
from bge_explorer.exports import write_csv
from bge_explorer.maps import labels as cluster_words, points, projection, spaces
from bge_explorer.retrieval.pipeline import resolve_instruction

ROOT = Path(__file__).resolve().parents[2]
MAP_JS = ROOT / "assets" / "map.js"
COLOR_BY = ("document", "cluster", "retrieval score", "reranker movement", "grade", "file", "page", "title")
COLUMNS = {"file": "source", "page": "page", "title": "title"}  # colour-by name -> chunk table column
METADATA = "column: "  # colour-by names of the corpus's metadata columns: "column: <name>"
NEAREST = 10  # "Find in the map" marks this many nearest chunks to the typed text, besides its lexical matches
NUMERIC_VALUES = 12  # a metadata column of numbers with more distinct values than this is coloured on a scale
GRADE_COLOURS = ("#8C564B", "#E6A532", "#5AAE61", "#1B7837")  # 0 irrelevant .. 3 perfect
UNJUDGED = "unjudged"
FINE_CLUSTERS = 3  # the fine labels (shown zoomed in) come from this many times the coarse clusters, up to 40
SELECTION_HEADERS = ["document", "chunk", "grade", "text"]
SEARCH_HEADERS = ["rank", "score", "document", "chunk", "text"]


def plotly_js() -> Path:
    """plotly.min.js as the installed ``plotly`` package ships it (MIT): the page loads it from here, offline."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"plotly.min.js is not in the installed plotly package ({path})")
    return path


def static_files() -> list[Path]:
    """The two files the map's page needs, served by Gradio as static files (exactly these, no folder)."""
    return [plotly_js(), MAP_JS]


def head() -> str:
    """``<script>`` tags for the page head: plotly.js and the map's renderer, from this server."""
    return "".join(f'<script src="gradio_api/file={path}"></script>' for path in static_files())


# The map's component: plotly draws into the div; the payload (the component's value) is JSON of the map.
TEMPLATE = '<div class="bx-map-clusters" hidden></div><div class="bx-map-plot" data-testid="bx-map-plot"></div>'
JS_ON_LOAD = """
const plot = element.querySelector('.bx-map-plot');
const hooks = {
  click: (row) => trigger('point_click', {row: row}),
  select: (rows, shape) => trigger('points_selected', {rows: rows, shape: shape}),
};
const show = () => {
  if (!props.value || !window.BxMap) return;
  window.BxMap.draw(plot, JSON.parse(props.value), hooks);
};
show();
watch('value', show);
new ResizeObserver(() => { if (plot.classList.contains('js-plotly-plot') && plot.offsetWidth) Plotly.Plots.resize(plot); })
  .observe(plot);
"""
PNG_JS = "() => { const gd = document.querySelector('#map-plot .bx-map-plot'); if (gd && window.BxMap) BxMap.png(gd); }"


def _key(app: AppState) -> str:
    try:
        return app.map_key()
    except ExplorerError as exc:
        raise fail(exc) from None


def _projection(app: AppState, key: str) -> projection.Projection:
    return app.maps.ready(key) or app.maps.pca(key, app.session.vectors)


def _clusters(app: AppState, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(coarse, fine) k-means labels of the chunk vectors, (n,) each; computed once per map."""
    def compute():
        vectors = app.session.vectors
        coarse = projection.clusters(vectors)
        k = len(np.unique(coarse))
        fine = projection.clusters(vectors, min(40, FINE_CLUSTERS * k)) if len(vectors) > FINE_CLUSTERS * k else coarse
        return coarse, fine

    return app.maps.derived(key, "clusters", compute)


def _label_sets(app: AppState, key: str, proj: projection.Projection) -> tuple[list, list]:
    """(coarse, fine) cluster labels (c-TF-IDF keywords at their centroids on ``proj``); computed once per map."""
    coarse, fine = _clusters(app, key)
    texts = app.session.chunks.table["text"].astype(str).tolist()

    def compute() -> tuple[list, list]:
        return (cluster_words.cluster_labels(texts, coarse, proj.coords),
                cluster_words.cluster_labels(texts, fine, proj.coords))

    return app.maps.derived(key, f"labels-{proj.kind}", compute)


def _grades(app: AppState) -> tuple[list[object], str]:
    ranking = app.current_ranking()
    if ranking is None:
        return [UNJUDGED] * len(app.session.chunks), ""
    store = app.session.judgments
    judged = {doc: min(grade, store.top_grade) for doc, grade in store.grades(ranking.query).items()}
    return [judged.get(d, UNJUDGED) for d in app.session.chunks.table["doc_id"].astype(str)], ranking.query


def colouring(app: AppState, key: str, proj: projection.Projection, color_by: str) -> tuple[points.Colouring, str]:
    """The points' colours for ``color_by`` (one of :func:`colour_choices`) and a sentence on what they mean."""
    table = app.session.chunks.table
    n = len(table)
    ranking = app.current_ranking()
    if color_by == "cluster":
        coarse, _ = _clusters(app, key)
        words = {found.cluster: found.text for found in _label_sets(app, key, proj)[0]}
        return (points.by_category([f"{c}: {words[c]}" for c in coarse], "cluster"),
                " Colour: k-means clusters of the chunk embeddings, named by their c-TF-IDF keywords.")
    if color_by in ("retrieval score", "reranker movement"):
        values = np.full(n, np.nan)
        if ranking is None:
            return points.by_value(values, color_by), f" Colour by {color_by} needs a search first."
        if color_by == "retrieval score":
            values[ranking.rows] = ranking.score
            return points.by_value(values, "score"), (f" Colour: the retrieval score of the top {len(ranking)} for "
                                                      f"“{label(ranking.query)}”; grey: not retrieved.")
        movement = ranking.table["movement"]
        scored = movement.notna().to_numpy()
        values[ranking.rows[scored]] = movement[scored].astype(float)
        note = (" Colour: places the reranker moved each of its top n (up: positive); grey: not reranked."
                if scored.any() else " Colour by reranker movement needs a search with a reranker.")
        return points.by_value(values, "movement"), note
    if color_by == "grade":
        grades, query = _grades(app)
        scale = SCALES[app.session.judgments.scale]
        order = [UNJUDGED, *range(len(scale))]
        names = [f"{UNJUDGED} ({grades.count(UNJUDGED)})"] + [f"{g} {name} ({grades.count(g)})"
                                                               for g, name in enumerate(scale)]
        colours = [points.OTHER_COLOUR, *GRADE_COLOURS[:len(scale)]]
        made = points.by_category(grades, "grade", colours=colours, order=order)
        made = points.Colouring("category", "grade", codes=made.codes, names=tuple(points.plain(x) for x in names),
                                colours=tuple(colours))
        note = (f" Colour: this session's grades of the documents for “{label(query)}” "
                f"({len(app.session.judgments.grades(query))} judged; grade in Search, the Workbench or here)."
                if query else " Colour by grade needs a search first.")
        return made, note
    if color_by in COLUMNS:
        column = table[COLUMNS[color_by]]
        values = [None if v is None or v != v else (int(v) if color_by == "page" else v) for v in column]
        return points.by_category(values, color_by), f" Colour: the corpus's {color_by} column."
    if color_by.startswith(METADATA) and color_by in colour_choices(app):
        return metadata_colouring(app, color_by.removeprefix(METADATA))
    return points.by_category(table["doc_id"].astype(str), "document"), ""


def colour_choices(state: Any) -> list[str]:
    """What the map can be coloured by for this session: :data:`COLOR_BY`, then the corpus's metadata columns."""
    corpus = app_state.get(state).session.corpus
    return [*COLOR_BY, *(f"{METADATA}{c}" for c in (corpus.metadata.columns if corpus is not None else ()))]


def metadata_colouring(app: AppState, column: str) -> tuple[points.Colouring, str]:
    """Colour by one metadata column of the corpus (a CSV's column, a JSON field): by category, or on a scale
    when every value is a number and there are more than NUMERIC_VALUES of them."""
    corpus = app.session.corpus
    by_doc = dict(zip(corpus.documents["doc_id"].astype(str), corpus.metadata[column]))
    values = pd.Series([by_doc.get(d) for d in app.session.chunks.table["doc_id"].astype(str)], dtype=object)
    numbers = pd.to_numeric(values, errors="coerce")
    given = values.notna()
    if given.any() and numbers[given].notna().all() and numbers[given].nunique() > NUMERIC_VALUES:
        return (points.by_value(numbers.to_numpy(dtype=float), column),
                f" Colour: the corpus's “{label(column)}” column (numbers; grey: no value).")
    return points.by_category(values, column), f" Colour: the corpus's “{label(column)}” column."


def _query(app: AppState, proj: projection.Projection) -> dict | None:
    ranking = app.current_ranking()
    if ranking is None or app.query_vector is None:
        return None
    xy = proj.transform(app.query_vector[None, :])[0]
    k = app.shown_k
    reranked = ranking.final_rows()[:min(k, len(ranking.rerank_logits))] if ranking.rerank_logits is not None else []
    return {"text": points.plain(ranking.query, points.HOVER_CHARS), "x": float(xy[0]), "y": float(xy[1]),
            "retrieved": [int(r) for r in ranking.rows[:k]], "reranked": [int(r) for r in reranked]}


def lexical_matches(texts: pd.Series, find: str) -> np.ndarray:
    """Rows whose text holds every word of ``find`` (case-insensitive, as whole-word prefixes)."""
    terms = query_terms(find)
    if not terms:
        return np.empty(0, dtype=np.int64)
    hit = np.ones(len(texts), dtype=bool)
    for term in terms:
        hit &= texts.str.contains(rf"\b{term}", case=False, regex=True, na=False).to_numpy()
    return np.flatnonzero(hit)


def semantic_matches(app: AppState, find: str, n: int = NEAREST) -> np.ndarray:
    """The ``n`` chunks nearest to ``find`` as a query (the current model and the index's instruction), best
    first; none for blank text, an index without an embedding model, or text over the query limit."""
    current = app.session.current
    find = (find or "").strip()
    if not find or current is None or current.embedder is None:
        return np.empty(0, dtype=np.int64)
    instruction = resolve_instruction(app.ranking_config or app.session.config, current)
    try:
        app.session.limits.check_query(find, None, instruction)
    except ExplorerError:
        return np.empty(0, dtype=np.int64)
    vector = np.asarray(current.embedder.encode_queries([find], instruction)[0], dtype=np.float32)
    scores = np.asarray(app.session.vectors, dtype=np.float32) @ vector
    top = np.argsort(-scores, kind="stable")[:n]
    return top.astype(np.int64)


def payload(app: AppState, key: str, proj: projection.Projection, color_by: str, find: str = "") -> tuple[dict, str]:
    """The page's map of the current index -> (payload, what the colours mean)."""
    table = app.session.chunks.table
    colour, note = colouring(app, key, proj, color_by)
    axis = "UMAP" if proj.kind == "umap" else "PCA"
    matches = lexical_matches(table["text"].astype(str), find or "")
    coarse, fine = _label_sets(app, key, proj)
    clusters = _clusters(app, key)[0]  # (n,) each chunk's coarse cluster: the cluster list selects by it
    data = points.point_payload(proj.coords, table, colour, axis=axis, revision=f"{key}-{proj.kind}",
                                title=f"{axis} of {len(table):,} chunk embeddings", query=_query(app, proj),
                                labels={"coarse": points.label_payload(coarse), "fine": points.label_payload(fine)},
                                cluster=points.encode_array(clusters, points.code_dtype(int(clusters.max()) + 1)),
                                find=points.plain(find or "", 40), matches=[int(r) for r in matches],
                                near=[int(r) for r in semantic_matches(app, find)], space="a")
    return data, note


def _status(app: AppState, proj: projection.Projection, data: dict, note: str, find: str) -> str:
    kind = "UMAP" if proj.kind == "umap" else "PCA"
    extra = f" ({esc(proj.note)})" if proj.note else ""
    marks = (" Query: star, with lines to its retrieved top k (open circles) and reranked top n (red diamonds)."
             if app.current_ranking() is not None else " Search to see the query on the map.")
    found = (f" “{label(find)}”: {len(data['matches'])} chunk(s) hold its words (orange squares), its "
             f"{len(data['near'])} nearest chunks by the model (green triangles)." if (find or "").strip() else "")
    return (f"{kind} map of {data['n']:,} chunks{extra}, every chunk drawn ({points.bytes_per_point(data):.0f} bytes "
            f"per point sent); computed once, reused for every query.{marks}{note}{found} Click a point to read it; "
            "lasso or box select (toolbar) to list, grade, export or search the chunks inside.")


def map_view(color_by: str = "document", state: Any = None, find: str = "") -> Iterator[tuple]:
    """The map (generator): a PCA preview at once, then UMAP (fitted once per corpus and model) with the last
    query, its hits and the lexical matches of ``find``. Yields (map payload JSON, status, state)."""
    app = app_state.get(state)
    key = _key(app)
    vectors = app.session.vectors
    color_by = color_by if color_by in colour_choices(app) else "document"
    app.mapped_state = app.session.current
    ready = app.maps.ready(key)
    if ready is None:
        pca = app.maps.pca(key, vectors)
        data, _ = payload(app, key, pca, color_by, find)
        yield (json.dumps(data), box("info", "PCA preview. UMAP is computing (the first map in a fresh process also "
                                             "compiles numba code)…"), app)
        try:
            ready = app.maps.umap(key, vectors)
        except RuntimeError as exc:
            yield gr.skip(), box("warn", f"UMAP failed, the PCA map stays: {label(exc)}"), app
            return
    data, note = payload(app, key, ready, color_by, find)
    yield json.dumps(data), box("ok", _status(app, ready, data, note, find)), app


# ------------------------------------------------------------------------------------------- click and selection

def _mapped(app: AppState) -> pd.DataFrame:
    """The chunk table of the map on the page; ExplorerError when the index changed since it was drawn."""
    if app.session.current is None or app.mapped_state is not app.session.current:
        raise ExplorerError("The index changed: press Show map again.")
    return app.session.chunks.table


def _rows(value: Any, n: int, field: str) -> list[int]:
    """Row numbers from the page, checked: whole numbers in 0..n-1, sorted, without repeats."""
    values = value if isinstance(value, (list, tuple)) else [value]
    rows = set()
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v) or not 0 <= int(v) < n:
            raise ExplorerError(f"{field}: expected chunk rows between 0 and {n - 1}; got {str(v)[:20]!r}")
        rows.add(int(v))
    return sorted(rows)


def point_click(state: Any, evt: gr.EventData):
    """A point clicked on the map: its chunk in the detail panel. -> (detail, state)."""
    app = app_state.get(state)
    try:
        table = _mapped(app)
        row = _rows((evt._data or {}).get("row"), len(table), "row")[0]
    except ExplorerError as exc:
        raise fail(exc) from None
    app.map_point = row
    ranking = app.current_ranking()
    return chunk_detail(table.iloc[row], ranking.query if ranking else "", f"Chunk row {row}: "), app


def selection_table(app: AppState, rows: list[int]) -> pd.DataFrame:
    """document, chunk, grade (for the current query), text of the selected rows."""
    table = app.session.chunks.table.iloc[rows]
    grades, _ = _grades(app)
    store = app.session.judgments
    shown = [g if g == UNJUDGED else store.label(g) for g in (grades[r] for r in rows)]
    return pd.DataFrame({"document": [cell(d) for d in table["doc_id"].astype(str)],
                         "chunk": table["chunk"].astype(int).to_numpy(), "grade": shown,
                         "text": [snippet(t) for t in table["text"]]}, columns=SELECTION_HEADERS)


def _selection_status(app: AppState, rows: list[int], shape: dict | None = None) -> str:
    if not rows:
        return box("info", "Nothing selected: choose the lasso or box select in the map's toolbar and draw around "
                           "points.")
    docs = app.session.chunks.table.iloc[rows]["doc_id"].nunique()
    cluster = (shape or {}).get("cluster")
    how = (" (lasso)" if shape and "lasso" in shape else " (box)" if shape and "box" in shape else
           f" (cluster {cluster})" if isinstance(cluster, int) and not isinstance(cluster, bool) else "")
    return box("info", f"<b>{len(rows):,}</b> chunk(s) of {docs:,} document(s) selected{how}.")


def points_selected(state: Any, evt: gr.EventData):
    """A lasso or box selection on the map -> (selection table, status, state)."""
    app = app_state.get(state)
    data = evt._data or {}
    try:
        rows = _rows(data.get("rows") or [], len(_mapped(app)), "rows")
    except ExplorerError as exc:
        raise fail(exc) from None
    app.map_selection = rows
    shape = data.get("shape") if isinstance(data.get("shape"), dict) else None
    return selection_table(app, rows), _selection_status(app, rows, shape), app


def _selected(app: AppState) -> list[int]:
    _mapped(app)
    if not app.map_selection:
        raise ExplorerError("Select chunks on the map first (lasso or box select in its toolbar).")
    return app.map_selection


def similar_query(state: Any = None):
    """"Find similar": the clicked chunk's text becomes the query (cut to fit the query limit with its
    instruction); the Search tab's handler runs it next. -> (query, status, state)."""
    app = app_state.get(state)
    try:
        table = _mapped(app)
        if app.map_point is None:
            raise ExplorerError("Click a point on the map first.")
        text = " ".join(str(table.iloc[app.map_point]["text"]).split())
        instruction = resolve_instruction(app.ranking_config or app.session.config, app.session.current)
    except ExplorerError as exc:
        raise fail(exc) from None
    room = max(1, app.session.limits.max_query_chars - len(instruction))
    cut = f" (its first {room:,} characters: the query limit)" if len(text) > room else ""
    return (text[:room], box("info", f"Searching with chunk row {app.map_point}'s text{cut}; the map shows its "
                                     "nearest neighbours by the current model."), app)


def grade_selection(grade: Any, state: Any = None):
    """One grade for the documents of every selected chunk, for the current query, into the session's
    judgments. -> (selection table, status, state)."""
    app = app_state.get(state)
    try:
        rows = _selected(app)
        ranking = app.current_ranking()
        if ranking is None:
            raise ExplorerError("Search first: the selection is graded for the current query.")
        value = float(str(grade).split()[0])
        docs = list(dict.fromkeys(app.session.chunks.table.iloc[rows]["doc_id"].astype(str)))
        for doc in docs:
            app.session.judgments.grade(ranking.query, doc, int(value) if value == int(value) else value)
    except (ExplorerError, ValueError) as exc:
        raise fail(exc) from None
    name = app.session.judgments.label(int(value) if value == int(value) else value)
    return (selection_table(app, rows),
            box("ok", f"Graded {len(docs):,} document(s) of the {len(rows):,} selected chunks as <b>{esc(name)}</b> "
                      f"for “{label(ranking.query)}”."), app)


def search_selection(query: str, state: Any = None):
    """Rank the selected chunks by the current model's similarity to ``query`` (dense, the index's
    instruction). -> (table: rank, score, document, chunk, text; status; state)."""
    app = app_state.get(state)
    query = (query or "").strip()
    try:
        rows = np.asarray(_selected(app), dtype=np.int64)
        if not query:
            raise ExplorerError("Type what to search for within the selection.")
        current = app.session.current
        instruction = resolve_instruction(app.ranking_config or app.session.config, current)
        app.session.limits.check_query(query, None, instruction)
        vector = np.asarray(current.embedder.encode_queries([query], instruction)[0], dtype=np.float32)
    except ExplorerError as exc:
        raise fail(exc) from None
    scores = np.asarray(current.vectors[rows], dtype=np.float32) @ vector
    order = np.argsort(-scores, kind="stable")
    table = app.session.chunks.table.iloc[rows[order]]
    out = pd.DataFrame({"rank": np.arange(1, len(order) + 1), "score": np.round(scores[order], 4),
                        "document": [cell(d) for d in table["doc_id"].astype(str)],
                        "chunk": table["chunk"].astype(int).to_numpy(), "text": [snippet(t) for t in table["text"]]},
                       columns=SEARCH_HEADERS)
    return out, box("info", f"The {len(rows):,} selected chunks ranked by similarity to “{label(query)}”."), app


def export_selection(state: Any = None) -> str:
    """The selected chunks (chunk id, document, chunk, x, y, text) as CSV, formula-looking cells neutralised."""
    app = app_state.get(state)
    try:
        rows = _selected(app)
        proj = _projection(app, _key(app))
    except ExplorerError as exc:
        raise fail(exc) from None
    table = app.session.chunks.table
    coords = points.coordinates_table(proj.coords, table, proj.kind).iloc[rows]
    coords = coords.assign(text=table["text"].iloc[rows].astype(str).to_numpy())
    return write_csv(coords, os.path.join(_tmpdir(app), "bge-explorer-selection.csv"))


# ------------------------------------------------------------------------------------------------------- export

def standalone_html(data: dict) -> str:
    """A page that draws ``data`` with plotly.js and the map's renderer inlined: it opens offline."""
    safe = json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    scripts = "".join(f"<script>{path.read_text(encoding='utf-8')}</script>" for path in static_files())
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>BGE Explorer map</title>{scripts}</head>'
            '<body><div class="bx-map-clusters" hidden></div>'
            '<div id="map" style="width:100%;min-height:640px"></div>'
            f'<script type="application/json" id="map-data">{safe}</script>'
            "<script>BxMap.draw(document.getElementById('map'), "
            "JSON.parse(document.getElementById('map-data').textContent), {});</script></body></html>")


def export_map(color_by: str = "document", state: Any = None, find: str = ""):
    """The current map as a standalone HTML page (interactive, offline) and its 2-D coordinates with chunk ids
    as CSV and Parquet. -> (files, note). PNG: the camera in the map's toolbar, or the PNG button."""
    app = app_state.get(state)
    key = _key(app)
    proj = _projection(app, key)
    data, _ = payload(app, key, proj, color_by if color_by in colour_choices(app) else "document", find)
    folder = _tmpdir(app)
    page = Path(folder) / "bge-explorer-map.html"
    page.write_text(standalone_html(data), encoding="utf-8")
    coords = points.coordinates_table(proj.coords, app.session.chunks.table, proj.kind)
    csv = write_csv(coords, os.path.join(folder, "bge-explorer-map-coordinates.csv"))
    parquet = os.path.join(folder, "bge-explorer-map-coordinates.parquet")
    coords.to_parquet(parquet, index=False)
    return [str(page), csv, parquet], box("info", "HTML (opens offline), coordinates CSV and Parquet ready. PNG: the "
                                                  "camera icon in the map's toolbar or the PNG button.")


# ------------------------------------------------------------------------------------------ two embedding spaces

def _space_label(state) -> str:
    size = "whole documents" if state.chunk_size is None else f"chunks of {state.chunk_size} (overlap {state.overlap})"
    return f"{state.embedder.spec.name} · {size}"


def other_spaces(app: AppState) -> dict[str, Any]:
    """The session's other dense index states of this corpus, by label (another model or chunking)."""
    current = app.session.current
    return {_space_label(s): s for s in app.session.states()
            if s is not current and s.embedder is not None and s.vectors is not None}


def space_choices(state: Any = None):
    """The "compare with" dropdown's choices: the other indexes built in this session. -> (update, state)."""
    app = app_state.get(state)
    labels = list(other_spaces(app))
    return gr.update(choices=labels, value=labels[-1] if labels else None), app


def _aligned(a_ids: pd.Series, b_ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the chunks both spaces hold, matched by chunk id -> (rows in A, rows in B), in A's order."""
    b_row = pd.Series(np.arange(len(b_ids)), index=b_ids.astype(str).to_numpy())
    b_row = b_row[~b_row.index.duplicated()]
    a = a_ids.astype(str).to_numpy()
    keep = np.flatnonzero(pd.Index(a).isin(b_row.index))
    return keep, b_row.loc[a[keep]].to_numpy()


def space_numbers(a_vectors: np.ndarray, b_vectors: np.ndarray, documents: np.ndarray) -> dict:
    """kNN overlap (k=10, or n-1 when smaller) between two spaces of the same chunks, and the silhouette of the
    document labels in each; over a fixed sample of :data:`~bge_explorer.maps.spaces.SAMPLE` chunks past that."""
    n = len(documents)
    rows = spaces.sample_rows(n)
    k = min(spaces.DEFAULT_K, n - 1)
    return {"k": k, "chunks": n, "sampled": len(rows),
            "overlap": spaces.knn_overlap(a_vectors, b_vectors, k, rows) if k >= 1 else None,
            "silhouette_a": spaces.document_silhouette(a_vectors, documents, rows),
            "silhouette_b": spaces.document_silhouette(b_vectors, documents, rows)}


def _numbers_html(numbers: dict, a: str, b: str) -> str:
    def fmt(value: float | None) -> str:
        return "undefined" if value is None else f"{value:.3f}"

    sample = (f" (over a fixed sample of {numbers['sampled']:,} of them)" if numbers["sampled"] < numbers["chunks"]
              else "")
    return box("info", f"<b>{numbers['chunks']:,}</b> chunks in both spaces{sample}. kNN overlap@{numbers['k']}: "
                       f"<b>{fmt(numbers['overlap'])}</b> (mean share of each chunk's {numbers['k']} nearest "
                       f"neighbours that both spaces agree on). Silhouette of the documents (cosine; higher: "
                       f"chunks sit with their own document): A {label(a)} <b>{fmt(numbers['silhouette_a'])}</b>, "
                       f"B {label(b)} <b>{fmt(numbers['silhouette_b'])}</b>.")


def compare_spaces(other: str, state: Any = None):
    """Map the chosen other index (space B) next to the current one (A), selection linked through chunk ids,
    with kNN overlap and document silhouettes. -> (B's map payload JSON, numbers, state)."""
    app = app_state.get(state)
    try:
        table = _mapped(app)
        chosen = other_spaces(app).get(other or "")
        if chosen is None:
            raise ExplorerError("Choose another index to compare with: build the corpus with a second model (or "
                                "chunking) in Model & index, then come back; this session keeps the recent ones.")
    except ExplorerError as exc:
        raise fail(exc) from None
    rows_a, rows_b = _aligned(table["chunk_id"], chosen.chunks.table["chunk_id"])
    if len(rows_a) < 3:
        raise fail(ExplorerError("The two indexes share fewer than 3 chunks (chunk ids differ: a different "
                                 "tokenizer cuts other chunks); build both with chunking none to compare."))
    b_table = chosen.chunks.table
    key = projection.vectors_key(chosen.vectors, chosen.embedder.cache_key)
    proj = app.maps.umap(key, chosen.vectors)
    peer = np.full(len(b_table), -1, dtype=np.int64)
    peer[rows_b] = rows_a
    order = list(dict.fromkeys(table["doc_id"].astype(str).tolist() + b_table["doc_id"].astype(str).tolist()))
    colour = points.by_category(b_table["doc_id"].astype(str), "document", order=order)
    axis = "UMAP" if proj.kind == "umap" else "PCA"
    data = points.point_payload(proj.coords, b_table, colour, axis=axis, revision=f"{key}-{proj.kind}",
                                title=f"B: {points.plain(chosen.embedder.spec.name, 60)}", query=None,
                                labels={"coarse": [], "fine": []}, find="", matches=[], space="b",
                                peer=points.encode_array(peer, "int32"))
    numbers = space_numbers(app.session.vectors[rows_a], chosen.vectors[rows_b],
                            table["doc_id"].astype(str).to_numpy()[rows_a])
    current = _space_label(app.session.current)
    return json.dumps(data), _numbers_html(numbers, current, other), app
