"""The one-click demo and shared links: handlers that set the controls, then reuse the page's own handlers.

"Try the demo" (:func:`start_demo`) loads the sample corpus and sets the controls (the default model, a reranker
that can load here, a prepared query); the layout then chains the ordinary build, search, comparison and map
handlers, so the demo shows exactly what a user's own clicks would. A shared link (:func:`open_link`, on page
load) sets the controls from validated query parameters (:mod:`bge_explorer.app.share`); the ``restore_*`` steps
then load the corpus, build and search only when the link asked for it.
"""
from __future__ import annotations

from typing import Any, Callable

import gradio as gr

from bge_explorer.app import explorer, share, state as app_state
from bge_explorer.app.render import box, esc, label
from bge_explorer.data.chunking import DEFAULT_OVERLAP, DEFAULT_SIZE
from bge_explorer.models.availability import availability
from bge_explorer.models.catalog import DEFAULT_MODEL, RERANKERS
from bge_explorer.retrieval.config import DEFAULT_TOP_N

PREPARED_QUERIES = ["When was the Eiffel Tower built?", "How do plants turn sunlight into sugar?",
                    "I forgot my password, how do I get a new one?", "Who discovered the first antibiotic?",
                    "how does a search engine rank documents by term frequency"]
DEMO_K = 10


def demo_reranker(preferred: str | None = None) -> tuple[str, str]:
    """The reranker the demo uses: ``preferred`` (``app.py --demo-reranker``) or the first catalog reranker that
    can load here; ``none`` when none can. -> (name, a note for the page)."""
    reasons = []
    for name in [n for n in (preferred, *RERANKERS) if n]:
        found = availability(name, "reranker")
        if found.can_load:
            return name, ""
        reasons.append(f"{name}: {found.reason}")
    return explorer.NO_RERANKER, "No reranker can load here, so the demo shows retrieval only (" + \
        "; ".join(reasons[:2]) + ")."


def start_demo(preferred_reranker: str | None, state: Any = None):
    """Step 1 of the demo: the sample corpus, and the controls of a first search. -> (tabs, corpus summary,
    documents, problems, model, pooling, class, chunking, chunk size, overlap, instruction mode, query, k,
    reranker, top n, mode, compare query, note, state)."""
    summary, documents, problems, app = explorer.load_sample(state)
    reranker, note = demo_reranker(preferred_reranker)
    query = PREPARED_QUERIES[0]
    return (gr.Tabs(selected="search"), summary, documents, problems, DEFAULT_MODEL, "auto", "auto", "tokens",
            DEFAULT_SIZE, DEFAULT_OVERLAP, "model default", query, DEMO_K, reranker, DEFAULT_TOP_N, "dense", query,
            box("info", f"Demo: the sample corpus, the default model ({esc(DEFAULT_MODEL)}; the panel below names the "
                        f"one loaded) and a prepared query; click another prepared query to run it. {label(note)}"),
            app)


# ------------------------------------------------------------------------------------------------ shared links

def open_link(state: Any = None, request: gr.Request = None):
    """``demo.load``: the link's validated parameters set the controls. -> (view, model, instruction mode,
    instruction, reranker, mode, k, query, compare query, note)."""
    params = dict(getattr(request, "query_params", None) or {})
    view, notes = share.parse_view(params)
    keep = gr.skip()

    def value(v: Any) -> Any:
        return keep if v is None else v

    note = box("warn", "; ".join(label(n) for n in notes) + ".") if notes else ""
    if not view.empty and not notes:
        note = box("info", "Opened from a shared link" + (": loading the sample corpus, building the index and "
                                                          "running the query…" if view.corpus else "."))
    return (view, value(view.model), value(view.instruction_mode), value(view.instruction), value(view.reranker),
            value(view.mode), value(view.k), value(view.query), value(view.query), note)


def restore_corpus(view: share.View | None, state: Any = None):
    """Load the corpus the link names (the sample); nothing when it names none. -> (summary, documents, problems,
    state)."""
    if not isinstance(view, share.View) or view.corpus != "sample":
        return gr.skip(), gr.skip(), gr.skip(), app_state.get(state)
    return explorer.load_sample(state)


def restore_build(view: share.View | None, model: str, pooling: str, model_class: str,
                  chunking: str, chunk_size: float, overlap: float, state: Any = None,
                  progress: Callable = gr.Progress(), request: gr.Request = None):
    """Build the index when the link loaded a corpus. -> build_index's outputs."""
    app = app_state.get(state)
    if not isinstance(view, share.View) or view.corpus != "sample" or app.session.corpus is None:
        return (gr.skip(),) * 5 + (app,)
    out = list(explorer.build_index(model, pooling, model_class, chunking, chunk_size, overlap, app, progress=progress,
                                    request=request))
    if view.instruction is not None:  # the build sets the model's default instruction; the link's stays
        out[2] = view.instruction
    return tuple(out)


def restore_search(view: share.View | None, *inputs):
    """Run the link's query once the index is built (``inputs``: the search handler's), and open the Search tab on
    it. -> (tabs, then search's outputs)."""
    state = inputs[6]
    app = app_state.get(state)
    if not isinstance(view, share.View) or not view.query or app.session.current is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), app
    return (gr.Tabs(selected="search"), *explorer.search_once(*inputs))


def view_query(query: str, instruction_mode: str, instruction: str, reranker: str, mode: str, k: float,
               state: Any = None) -> str:
    """The query string of a link to the current results ("" before any search)."""
    app = app_state.get(state)
    if app.current_ranking() is None or app.session.embedder is None:
        return ""
    return share.view_query(app.corpus_name, app.session.embedder.spec.name, instruction_mode, instruction,
                            reranker, mode, int(k or DEMO_K), query)
