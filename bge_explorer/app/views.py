"""Empty states: which panels have content for a session, and what the page says in place of the others.

A table, plot or panel is shown only once it has content; until then one line says what to do first, with a
button that goes there ("Build the index first" -> the Model & index tab). :func:`facts` reads what a session
has; :func:`empty_message` turns it into the line for each gate (None: the gate's content is shown). The layout
lays out one :class:`Gate` per place and refreshes them all after every event that changes a session
(:func:`refresh`), so visibility never depends on which handler ran.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from bge_explorer.app import state as app_state
from bge_explorer.app.render import box

TABS = {"corpus": "Corpus", "model": "Model & index", "search": "Search", "compare": "Compare prefixes",
        "map": "Map", "export": "Export", "evaluate": "Evaluate"}
GO = {f"Go to {label}": tab for tab, label in TABS.items()}  # the empty state's button label -> its tab


@dataclasses.dataclass(frozen=True)
class Facts:
    """What one session has, as far as the page's panels care."""

    corpus: bool = False
    sample: bool = False  # the corpus is the bundled sample (its prepared queries apply)
    index: bool = False
    results: bool = False
    reranked: bool = False
    explained: bool = False
    lexical: bool = False  # the index's model gives M3 lexical weights and ColBERT vectors
    compared: bool = False
    mapped: bool = False
    evaluated: bool = False
    evaluated_b: bool = False


def facts(state: Any) -> Facts:
    app = app_state.get(state)
    session = app.session
    ranking = app.current_ranking()
    embedder = session.embedder if session.current is not None else None
    return Facts(corpus=session.corpus is not None, sample=getattr(app, "corpus_name", None) == "sample",
                 index=session.current is not None,
                 results=ranking is not None, reranked=ranking is not None and ranking.rerank_logits is not None,
                 explained=ranking is not None and getattr(app, "explained_ranking", None) is ranking,
                 lexical=embedder is not None and "lexical" in embedder.produces,
                 compared=app.compare is not None and session.current is not None,
                 mapped=session.current is not None and getattr(app, "mapped_state", None) is session.current,
                 evaluated=getattr(app, "evaluated", None) is not None,
                 evaluated_b=getattr(app, "evaluated", None) == "ab")


# gate -> (the line in place of the content, the tab its button opens or None); None when the content shows
def empty_message(gate: str, f: Facts) -> tuple[str, str | None] | None:
    build_first = ("Build the index first: choose a model and press <b>Build index</b>.", "model")
    if gate == "documents":
        return None if f.corpus else ("No corpus yet: upload files and press <b>Load files</b>, load the sample "
                                      "corpus, or press <b>Try the demo</b> at the top.", None)
    if gate == "chunks":
        if f.index:
            return None
        return ("The chunks appear here once the index is built.", "model") if f.corpus else \
            ("Load a corpus: its chunks appear here once the index is built.", None)
    if gate == "model":
        return None if f.corpus else ("Load a corpus first: the index is built from it.", "corpus")
    if gate in ("results", "compare", "map"):
        if not f.index:
            return build_first if f.corpus else ("Load a corpus and build the index first.", "corpus")
        done = {"results": f.results, "compare": f.compared, "map": f.mapped}[gate]
        return None if done else {
            "results": ("Type a query above and press <b>Search</b>.", None),
            "compare": ("Type a query above and press <b>Compare</b>.", None),
            "map": ("Press <b>Show map</b> to draw every chunk of the index.", None)}[gate]
    if gate == "after":
        return None if f.reranked else ("Choose a reranker above to see the reranked list here, with each result's "
                                        "movement.", None)
    if gate == "export":
        return None if f.results else ("Search first: the export holds the current results.", "search")
    if gate in ("evaluate", "evaluate_b"):
        done = f.evaluated if gate == "evaluate" else f.evaluated_b
        return None if done else (("Upload labelled queries and press <b>Evaluate</b>: the metrics appear here.", None)
                                  if gate == "evaluate" else ("Tick <b>Compare with configuration B</b> to see B and "
                                                              "the A/B test here.", None))
    raise KeyError(gate)


# panels shown only with content, without a line in their place
def shown(panel: str, f: Facts) -> bool:
    return {"prepared": f.sample, "why": f.results, "why_lexical": f.explained and f.lexical, "why_bm25": f.explained}[panel]


def empty_html(message: tuple[str, str | None] | None) -> str:
    return box("empty", message[0]) if message else ""


def go_label(message: tuple[str, str | None] | None) -> str:
    return f"Go to {TABS[message[1]]}" if message and message[1] else ""


def go_to(button_label: str) -> str | None:
    """The tab a "Go to ..." button opens (None for any other label)."""
    return GO.get(button_label)
