"""The "Connect to an index" tab: search a Milvus or Qdrant collection, or a folder of Parquet shards, read-only.

The handlers call :mod:`bge_explorer.scale.connect`: the stored model identity is checked against the model
chosen (a mismatch is refused with the reason shown), a store without identity metadata needs the model
confirmed, and the results are the Search tab's before/after tables, reranked through the same cache.
Off on a public deployment: a visitor must not make the server open files or reach other hosts.
"""
from __future__ import annotations

import gradio as gr
import pandas as pd

from bge_explorer import settings
from bge_explorer.app import state as app_state, workspace
from bge_explorer.app.explorer import after_table, before_table
from bge_explorer.app.render import box, esc, fail
from bge_explorer.errors import ExplorerError
from bge_explorer.models.catalog import RERANKERS
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
    connect.click(open_connection, [backend, uri, collection, path, model, confirm, state], [status, state],
                  api_name="connect_index")
    gr.on([search.click, query.submit], search_connection, [query, k, reranker, top_n, state], [before, after],
          api_name="search_index")
