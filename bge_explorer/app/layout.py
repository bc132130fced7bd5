"""The page: components, tabs and the wiring of events to the handlers in :mod:`bge_explorer.app.explorer`.

Every action has an ``api_name`` (see the README's API section). Events that run a model share one
concurrency slot pool (``models``); index builds have their own (``builds``), and a Stop button.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Callable

import gradio as gr
from gradio.utils import get_upload_folder

from bge_explorer import settings
from bge_explorer.app import hybrid, state as app_state, workspace
from bge_explorer.app.components import number_input, slider_input
from bge_explorer.app.connect import build_connect_tab
from bge_explorer.app.evaluate import build_evaluate_tab
from bge_explorer.app.explorer import (INSTRUCTION_MODES, NO_RERANKER, build_index, client_left, compare_prefix,
                                       explain,
                                       explain_after, explain_before, export_chunks, export_map, export_results,
                                       load_corpus, load_sample, map_view, model_info, open_evaluated_query,
                                       rerun_search, retrieval_info, search_steps, show_after_chunk, show_before_chunk,
                                       stop, toggle_colbert)
from bge_explorer.app.render import box, esc
from bge_explorer.data.chunking import DEFAULT_OVERLAP, DEFAULT_SIZE
from bge_explorer.data.corpus import FORMATS
from bge_explorer.models.catalog import CATALOG, DEFAULT_MODEL, EMBEDDERS, RERANKERS
from bge_explorer.retrieval.config import AUTO, DEFAULT_TOP_N
from bge_explorer.retrieval.fusion import FUSIONS

SHOWN_K = 10  # rows shown at first; the slider goes to BGE_EXPLORER_MAX_K


def gpu(fn: Callable, duration: int = 60) -> Callable:
    """``spaces.GPU`` on Hugging Face ZeroGPU (when the ``spaces`` package imports); the function itself elsewhere."""
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(duration=duration)(fn)


def _df(label: str, datatype: list[str] | str = "str", **kwargs) -> gr.Dataframe:
    return gr.Dataframe(label=label, datatype=datatype, interactive=False, wrap=True, max_height=520,
                        buttons=["fullscreen", "copy"], **kwargs)


INTRO = """# BGE Explorer
Load a corpus, pick a BGE embedding model and its query instruction, search, rerank, and see where your
documents and queries sit on a map. Each browser tab has its own corpus and index."""


def build_app() -> gr.Blocks:
    """The Blocks app: one function per tab lays it out and wires its events. Launch it with ``css`` from
    assets/style.css (see app.py)."""
    config = settings.current()
    ttl = workspace.session_ttl_s()
    workspace.start_sweeper(get_upload_folder())  # idle sessions' files and Gradio's leftovers, on a schedule
    # Gradio's own copies of uploads and outputs (in GRADIO_TEMP_DIR) are deleted once older than the session TTL.
    with gr.Blocks(title="BGE Explorer", analytics_enabled=False, fill_width=True,
                   delete_cache=(int(max(60, min(600, ttl))), int(max(60, ttl)))) as demo:
        # One AppState per browser session; dropped (memory freed, files deleted) after `ttl` idle seconds, or an
        # hour after its tab closed (Gradio keeps a closed tab's state for a reconnect).
        page = Page(state=gr.State(None, time_to_live=ttl, delete_callback=app_state.drop), limits=config.limits,
                    # Events that run a model share the model slots; builds queue apart (the model is held per
                    # batch, so searches are served between a build's batches).
                    models=dict(concurrency_id="models", concurrency_limit=config.models_concurrency()),
                    builds=dict(concurrency_id="builds", concurrency_limit=config.models_concurrency()))
        gr.Markdown(INTRO)
        gr.Markdown(esc(config.describe()), elem_id="limits")
        page.loaded_model = gr.HTML(box("info", "No model loaded yet."), elem_id="loaded-model")
        with gr.Tabs() as page.tabs:
            with gr.Tab("Corpus", id="corpus"):
                _corpus_tab(page)
            with gr.Tab("Model & index", id="model"):
                _model_tab(page)
            with gr.Tab("Search", id="search") as page.search_tab:
                _search_tab(page)
            with gr.Tab("Compare prefixes", id="compare"):
                _compare_tab(page)
            with gr.Tab("Map", id="map"):
                _map_tab(page)
            with gr.Tab("Export", id="export"):
                _export_tab(page)
            with gr.Tab("Evaluate", id="evaluate"):
                evaluate_parts = build_evaluate_tab(page.state)
            with gr.Tab("Connect to an index", id="connect"):
                build_connect_tab()
        evaluate_parts["selected_query"].change(  # a per-query row opens in Search with its relevant documents
            gpu(open_evaluated_query),
            [evaluate_parts["selected_query"], evaluate_parts["selected_relevant"], page.instruction_mode,
             page.instruction, page.k, page.reranker, page.top_n, page.state, *page.retrieval_inputs],
            [page.tabs, page.query, *page.search_outputs], api_visibility="private", **page.models)
        demo.unload(client_left)
    return demo


class Page(SimpleNamespace):
    """The components tabs share (state, instruction, search controls ...), filled in as the tabs are laid out."""


def _corpus_tab(page: Page) -> None:
    with gr.Row():
        with gr.Column(scale=2):
            files = gr.File(label=f"Corpus files ({', '.join(FORMATS)})", file_count="multiple",
                            file_types=list(FORMATS), type="filepath", elem_id="corpus-files")
        with gr.Column(scale=1):
            with gr.Accordion("CSV / JSON columns (optional)", open=False):
                text_column = gr.Textbox(label="Text column", placeholder="text")
                id_column = gr.Textbox(label="Id column", placeholder="_id / id / row number")
                title_column = gr.Textbox(label="Title column", placeholder="title")
            load_btn = gr.Button("Load files", variant="primary", elem_id="load-files")
            sample_btn = gr.Button("Load the sample corpus", elem_id="load-sample")
    corpus_summary = gr.HTML(elem_id="corpus-summary")
    problems = gr.Textbox(label="Problems (skipped files and lines)", lines=2, interactive=False,
                          elem_id="corpus-problems")
    documents = _df("Documents", elem_id="documents")
    gr.Markdown("### Chunking\nApplied when the index is built, with the model's own tokenizer.")
    with gr.Row():
        page.chunking = gr.Radio(["tokens", "none"], value="tokens", label="Chunking",
                                 info="none: one chunk per document")
        page.chunk_size = number_input(DEFAULT_SIZE, label="Chunk size (tokens)", precision=0, minimum=1)
        page.overlap = number_input(DEFAULT_OVERLAP, label="Overlap (tokens)", precision=0, minimum=0)
    page.chunk_counts = gr.HTML(elem_id="chunk-counts")
    page.chunks_df = _df("Chunks", elem_id="chunks")
    outputs = [corpus_summary, documents, problems, page.state]
    load_btn.click(load_corpus, [files, text_column, id_column, title_column, page.state], outputs,
                   api_name="load_corpus")
    sample_btn.click(load_sample, [page.state], outputs, api_name="load_sample")


def _model_tab(page: Page) -> None:
    with gr.Row():
        model = gr.Dropdown(list(EMBEDDERS), value=DEFAULT_MODEL, allow_custom_value=True,
                            label="Embedding model (catalog, Hub id or local path)", elem_id="model")
        pooling = gr.Radio(["auto", "cls", "mean"], value="auto", label="Pooling",
                           info="auto: the catalog's, or CLS for a custom model")
        model_class = gr.Radio(["auto", "encoder", "m3"], value="auto", label="Model class")
    info = gr.HTML(model_info(DEFAULT_MODEL), elem_id="model-info")
    with gr.Row():
        page.instruction_mode = gr.Radio(INSTRUCTION_MODES, value="model default", label="Query instruction",
                                         info="custom: the text below; none: the query alone")
        page.instruction = gr.Textbox(label="Instruction text (prefix of every query)",
                                      value=CATALOG[DEFAULT_MODEL].instruction, elem_id="instruction")
    with gr.Row():
        build_btn = gr.Button("Build index", variant="primary", elem_id="build-index", scale=4)
        stop_btn = gr.Button("Stop", elem_id="stop-build", scale=1)
    index_status = gr.HTML(elem_id="index-status")
    model.change(model_info, [model], [info], api_name="model_info", queue=False)
    page.instruction.input(lambda: "custom", None, [page.instruction_mode], api_visibility="private", queue=False)
    build_event = build_btn.click(
        gpu(build_index, 300), [model, pooling, model_class, page.chunking, page.chunk_size, page.overlap, page.state],
        [page.loaded_model, index_status, page.instruction, page.chunks_df, page.chunk_counts, page.state],
        api_name="build_index", **page.builds)
    stop_btn.click(stop, [page.state], [index_status], cancels=[build_event], queue=False, api_visibility="private")


def _search_tab(page: Page) -> None:
    limits, state = page.limits, page.state
    with gr.Row():
        page.query = gr.Textbox(label="Query", placeholder="Ask something about your documents", scale=4,
                                elem_id="query")
        search_btn = gr.Button("Search", variant="primary", scale=1, elem_id="search-btn")
    with gr.Row():
        page.k = slider_input(1, limits.max_k, value=SHOWN_K, step=1, label="Top k")
        page.reranker = gr.Dropdown([NO_RERANKER] + RERANKERS, value=NO_RERANKER, allow_custom_value=True,
                                    label="Reranker (catalog, Hub id or local path)", elem_id="reranker")
        page.top_n = slider_input(1, limits.max_k, value=DEFAULT_TOP_N, step=1, label="Candidates the reranker rescores")
    with gr.Accordion("Retrieval mode: dense, sparse, ColBERT, BM25, hybrid", open=False, elem_id="retrieval-mode"):
        with gr.Row():
            retrieval = gr.Radio(hybrid.mode_choices(), value="dense", label="Mode", elem_id="mode",
                                 info="sparse and ColBERT need a BGE-M3 model; BM25 works with any")
            fusion = gr.Radio([AUTO, *FUSIONS], value=AUTO, label="Hybrid fusion", elem_id="fusion",
                              info="auto: m3 for a BGE-M3 model's own modes, else rrf; "
                                   + "; ".join(f"{n}: {f.label}" for n, f in FUSIONS.items()))
        with gr.Row():  # one weight per registered mode: a new mode gets its slider here
            weights = [slider_input(0, 1, value=w, step=0.05, label=f"{hybrid.short_label(m)} weight",
                                 elem_id=f"weight-{m}") for m, w in hybrid.default_weights().items()]
        with gr.Row():
            colbert_on = gr.Checkbox(False, label="ColBERT on (keeps a vector per chunk token)", elem_id="colbert-on")
            retrieval_panel = gr.HTML(elem_id="retrieval-info")
    summary = gr.HTML(elem_id="search-summary")
    with gr.Row(equal_height=False):
        # text stays at the same position; per-mode and "relevant" columns come after it (plain text)
        before = _df("Retrieval (before reranking)", ["number", "str", "number", "number", "str", "html"] + ["str"] * 10,
                     elem_id="before", column_widths=["48px", "120px", "52px", "70px", "64px", "360px"])
        after = _df("After reranking", ["number", "str", "number", "number", "number", "number", "str", "number",
                                        "html"] + ["str"] * 10, elem_id="after",
                    column_widths=["48px", "96px", "64px", "64px", "64px", "64px", "120px", "52px", "360px"])
    detail = gr.HTML(elem_id="chunk-detail")
    explain_outputs = _explain_panel(page, before, after)
    page.retrieval_inputs = [retrieval, fusion, *weights]
    page.search_outputs = [before, after, summary, detail, state]
    inputs = [page.query, page.instruction_mode, page.instruction, page.k, page.reranker, page.top_n, state,
              *page.retrieval_inputs]
    # A generator: the retrieval table first, the reranked one filling in batch by batch.
    gr.on([search_btn.click, page.query.submit], gpu(search_steps), inputs, page.search_outputs, api_name="search",
          show_progress="minimal", **page.models)
    gr.on([page.instruction_mode.input, page.k.release, page.top_n.release, page.reranker.input, retrieval.input,
           fusion.input, *(w.release for w in weights)], gpu(rerun_search), inputs, page.search_outputs,
          api_visibility="private", trigger_mode="always_last", show_progress="minimal", **page.models)
    before.select(show_before_chunk, [state], [detail], api_visibility="private")
    after.select(show_after_chunk, [state], [detail], api_visibility="private")
    before.select(gpu(explain_before), [state], explain_outputs, api_visibility="private", **page.models)
    after.select(gpu(explain_after), [state], explain_outputs, api_visibility="private", **page.models)
    gr.on([page.search_tab.select, retrieval.input], retrieval_info, [state], [retrieval_panel],
          api_visibility="private", queue=False)
    colbert_on.input(gpu(toggle_colbert, 300), [colbert_on, state], [colbert_on, retrieval_panel, state],
                     api_name="colbert", **page.builds)


def _explain_panel(page: Page, before: gr.Dataframe, after: gr.Dataframe) -> list:
    """"Why this match": -> the outputs a picked row fills (its rank, then the explanation's parts)."""
    with gr.Accordion("Why this match (select a result)", open=True, elem_id="why"):
        with gr.Row():
            rank = number_input(1, label="Result (rank in retrieval order)", precision=0, minimum=1, elem_id="explain-rank")
            explain_btn = gr.Button("Explain", elem_id="explain-btn")
        summary = gr.HTML(elem_id="explain-summary")
        with gr.Row(equal_height=False):
            lexical = _df("M3 lexical weights: shared tokens and their contributions",
                          ["str", "str", "number", "number", "number"], elem_id="explain-lexical")
            bm25 = _df("BM25 term contributions", ["str", "number"], elem_id="explain-bm25")
        heat = gr.Plot(label="ColBERT: query token → chunk token similarity", elem_id="explain-colbert")
        alignment = _df("ColBERT: best chunk token per query token", ["str", "str", "number", "number"],
                        elem_id="explain-colbert-table")
    parts = [summary, lexical, heat, alignment, bm25]
    explain_btn.click(gpu(explain), [rank, page.state], parts, api_name="explain", **page.models)
    return [rank, *parts]


def _compare_tab(page: Page) -> None:
    gr.Markdown("The same query with and without the query instruction (the instruction box on the "
                "Model & index tab; empty means the model's default).")
    with gr.Row():
        query = gr.Textbox(label="Query", scale=4, elem_id="compare-query")
        k = slider_input(1, page.limits.max_k, value=SHOWN_K, step=1, label="Top k")
        compare_btn = gr.Button("Compare", variant="primary", elem_id="compare-btn")
    summary = gr.HTML(elem_id="compare-summary")
    with gr.Row(equal_height=False):
        with_df = _df("With the instruction", ["number", "str", "str", "number", "str", "number", "html"],
                      elem_id="with-instruction")
        without_df = _df("Without", ["number", "str", "str", "number", "str", "number", "html"],
                         elem_id="without-instruction")
    compare_btn.click(gpu(compare_prefix), [query, page.instruction, k, page.state],
                      [with_df, without_df, summary, page.state], api_name="compare_prefix", **page.models)


def _map_tab(page: Page) -> None:
    with gr.Row():
        color_by = gr.Radio(["document", "cluster"], value="document", label="Colour by")
        map_btn = gr.Button("Show map", variant="primary", elem_id="map-btn")
        export_btn = gr.Button("Export map (HTML / PNG)", elem_id="export-map-btn")
    status = gr.HTML(elem_id="map-status")
    plot = gr.Plot(label="Chunk embeddings", elem_id="map-plot")
    files = gr.File(label="Map files", file_count="multiple", interactive=False)
    note = gr.HTML()
    map_btn.click(map_view, [color_by, page.state], [plot, status, page.state], api_name="map", concurrency_limit=2)
    export_btn.click(export_map, [color_by, page.state], [files, note], api_name="export_map")


def _export_tab(page: Page) -> None:
    gr.Markdown("Download the current results (both rankings, CSV) or the chunks with their embeddings (Parquet).")
    with gr.Row():
        results_btn = gr.Button("Results (CSV)", elem_id="export-results-btn")
        chunks_btn = gr.Button("Chunks with embeddings (Parquet)", elem_id="export-chunks-btn")
    with gr.Row():
        results_file = gr.File(label="Results CSV", interactive=False)
        chunks_file = gr.File(label="Chunks Parquet", interactive=False)
    results_btn.click(export_results, [page.state], [results_file], api_name="export_results")
    chunks_btn.click(export_chunks, [page.state], [chunks_file], api_name="export_chunks")
