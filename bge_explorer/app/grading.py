"""Judging in place, in the Search tab: select a result row (before or after reranking), grade it 0-3 with a
button or its key, go to the next unjudged result with **n**. The grade lands in the session's
:class:`~bge_explorer.data.judging.JudgmentStore` under (query text, document id), so it counts for every
configuration, the Workbench and the map; both result tables show it in their ``grade`` column.

Handlers take and return the session's :class:`AppState`; :data:`GRADE_KEYS_JS` binds the keys on the page
(Search and the Workbench's judging table alike).
"""
from __future__ import annotations

from typing import Any

import gradio as gr

from bge_explorer.app import state as app_state
from bge_explorer.app.explorer import chunk_detail, final_table, result_tables
from bge_explorer.app.render import box, esc, fail, label
from bge_explorer.app.state import AppState
from bge_explorer.errors import ExplorerError

TABLES = {"before": "retrieved", "after": "reranked"}

GRADE_KEYS_JS = """() => {
  document.addEventListener('keydown', (e) => {
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
    const shown = (id) => document.getElementById(id)?.offsetParent;
    const prefix = shown('judge-table') ? '' : shown('before') ? 'search-' : null;
    if (prefix === null) return;
    const key = {'0': 'grade-0', '1': 'grade-1', '2': 'grade-2', '3': 'grade-3', 'n': 'next-unjudged'}[e.key];
    const button = key && document.getElementById(prefix + key);
    if (button) { e.preventDefault(); button.click(); }
  });
}"""


def _rows(app: AppState, which: str):
    """The rows of one result table as shown: ``which`` is "before" (retrieval order) or "after"."""
    ranking = app.current_ranking()
    if ranking is None:
        raise ExplorerError("Search first: the results of the last search are graded here.")
    if which == "after" and ranking.rerank_logits is not None:
        return ranking, final_table(ranking, app.shown_k)
    return ranking, ranking.table.head(app.shown_k).reset_index(drop=True)


def _selection(app: AppState) -> tuple[str, int]:
    """The selected (table, row), or the first row of the table a user reads (reranked when there is one)."""
    if app.graded_row is not None:
        return app.graded_row
    ranking = app.current_ranking()
    return ("after" if ranking is not None and ranking.rerank_logits is not None else "before"), 0


def grading_status(state: Any = None) -> str:
    """What the grade keys act on now, and the judged / unjudged counts of the query's shown documents."""
    app = app_state.get(state)
    ranking = app.current_ranking()
    if ranking is None:
        return box("info", "Search, then select a result (or press <b>n</b>) and grade it: keys <b>0-3</b>.")
    store = app.session.judgments
    which, row = _selection(app)
    _, rows = _rows(app, which)
    docs = rows["doc_id"].astype(str).tolist()
    c = store.counts(ranking.query, docs)
    head = (f"Grading “{label(ranking.query)}”: of the {c.judged + c.holes} documents shown, {c.judged} judged "
            f"({c.relevant} relevant), {c.holes} unjudged ({esc(store.scale)} scale).")
    if app.graded_row is None:
        return box("info", f"{head} Select a row, or press <b>n</b> for the first unjudged one; keys <b>0-3</b> "
                           "grade it.")
    doc = docs[row] if row < len(docs) else ""
    grade = store.label(store.get(ranking.query, doc)) or "unjudged"
    return box("info", f"{head} Selected: {TABLES[which]} #{row + 1}, document <b>{label(doc)}</b> ({esc(grade)}); "
                       "keys <b>0-3</b> grade it, <b>n</b> goes to the next unjudged.")


def select_result(which: str, state: Any, evt: gr.SelectData):
    """A row picked in a result table becomes the one the grade keys act on. -> (status, state)."""
    app = app_state.get(state)
    if evt is None or evt.index is None or app.current_ranking() is None:
        return gr.skip(), app
    index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    app.graded_row = (which, int(index))
    return grading_status(app), app


def select_before(state: Any, evt: gr.SelectData):
    return select_result("before", state, evt)


def select_after(state: Any, evt: gr.SelectData):
    return select_result("after", state, evt)


def _detail(app: AppState, which: str, row: int) -> str:
    ranking, rows = _rows(app, which)
    return chunk_detail(rows.iloc[row], ranking.query, f"{TABLES[which].capitalize()} #{row + 1}: ")


def grade_result(grade: float, state: Any = None):
    """Grade the selected result of the last search (its document, for its query), then select the next unjudged
    result of the same table. -> (before, after, status, detail, state).

    Args:
        grade: 0-3 on the graded scale (irrelevant, related, relevant, perfect), 0-1 on the binary one.
    """
    app = app_state.get(state)
    try:
        if app.graded_row is None:
            raise ExplorerError("Select a result row first (or press n for the next unjudged one).")
        which, row = app.graded_row
        ranking, rows = _rows(app, which)
        if not 0 <= row < len(rows):
            raise ExplorerError(f"row {row + 1} is not in the {TABLES[which]} results")
        docs = rows["doc_id"].astype(str).tolist()
        value = float(grade)
        app.session.judgments.grade(ranking.query, docs[row], int(value) if value == int(value) else value)
    except (ExplorerError, TypeError, ValueError) as exc:
        raise fail(exc) from None
    following = app.session.judgments.next_unjudged(ranking.query, docs, after=row)
    app.graded_row = (which, row if following is None else following)
    before, after = result_tables(app)
    return before, after, grading_status(app), _detail(app, *app.graded_row), app


def next_result(state: Any = None):
    """Select the next unjudged result (after the selected one, wrapping). -> (status, detail, state)."""
    app = app_state.get(state)
    try:
        which, row = _selection(app)
        ranking, rows = _rows(app, which)
    except ExplorerError as exc:
        raise fail(exc) from None
    docs = rows["doc_id"].astype(str).tolist()
    start = row - 1 if app.graded_row is None else row
    following = app.session.judgments.next_unjudged(ranking.query, docs, after=start)
    app.graded_row = (which, row if following is None else following)
    return grading_status(app), _detail(app, *app.graded_row), app
