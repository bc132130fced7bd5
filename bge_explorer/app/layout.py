"""The page: components, tabs and the wiring of events to the handlers in :mod:`bge_explorer.app.explorer`.

Every action has an ``api_name`` (see the README's API section). Events that run a model share one
concurrency slot pool (``models``); index builds have their own (``builds``), and a Stop button.
"""
from __future__ import annotations

from typing import Callable

import gradio as gr

from bge_explorer import settings
from bge_explorer.app import hybrid, state as app_state, workspace
from bge_explorer.app.evaluate import build_evaluate_tab
from bge_explorer.app.explorer import (INSTRUCTION_MODES, NO_RERANKER, build_index, compare_prefix, explain,
                                       explain_after, explain_before, export_chunks, export_map, export_results,
                                       load_corpus, load_sample, map_view, model_info, open_evaluated_query,
                                       rerun_search, retrieval_info, search, show_after_chunk, show_before_chunk,
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
    """The Blocks app. Launch it with ``css`` from assets/style.css (see app.py)."""
    embedder_choices = list(EMBEDDERS)
    config = settings.current()
    limits = config.limits
    ttl = workspace.session_ttl_s()
    # Events that run a model share the model slots; builds queue apart (the model is held per batch, so
    # searches are served between a build's batches).
    models = dict(concurrency_id="models", concurrency_limit=config.models_concurrency())
    builds = dict(concurrency_id="builds", concurrency_limit=config.models_concurrency())
    # Gradio's own copies of uploads and outputs (in GRADIO_TEMP_DIR) are deleted once older than the session TTL.
    with gr.Blocks(title="BGE Explorer", analytics_enabled=False, fill_width=True,
                   delete_cache=(int(max(60, min(600, ttl))), int(max(60, ttl)))) as demo:
        # One AppState per browser session; dropped (memory freed, files deleted) after `ttl` idle seconds, or an
        # hour after its tab closed (Gradio keeps a closed tab's state for a reconnect).
        state = gr.State(None, time_to_live=ttl, delete_callback=app_state.drop)
        gr.Markdown(INTRO)
        gr.Markdown(esc(config.describe()), elem_id="limits")
        loaded_model = gr.HTML(box("info", "No model loaded yet."), elem_id="loaded-model")
        with gr.Tabs() as tabs:
            with gr.Tab("Corpus", id="corpus"):
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
                    chunking = gr.Radio(["tokens", "none"], value="tokens", label="Chunking",
                                        info="none: one chunk per document")
                    chunk_size = gr.Number(DEFAULT_SIZE, label="Chunk size (tokens)", precision=0, minimum=1)
                    overlap = gr.Number(DEFAULT_OVERLAP, label="Overlap (tokens)", precision=0, minimum=0)
                chunk_counts = gr.HTML(elem_id="chunk-counts")
                chunks_df = _df("Chunks", elem_id="chunks")

            with gr.Tab("Model & index", id="model"):
                with gr.Row():
                    model = gr.Dropdown(embedder_choices, value=DEFAULT_MODEL, allow_custom_value=True,
                                        label="Embedding model (catalog, Hub id or local path)", elem_id="model")
                    pooling = gr.Radio(["auto", "cls", "mean"], value="auto", label="Pooling",
                                       info="auto: the catalog's, or CLS for a custom model")
                    model_class = gr.Radio(["auto", "encoder", "m3"], value="auto", label="Model class")
                info = gr.HTML(model_info(DEFAULT_MODEL), elem_id="model-info")
                with gr.Row():
                    instruction_mode = gr.Radio(INSTRUCTION_MODES, value="model default", label="Query instruction",
                                                info="custom: the text below; none: the query alone")
                    instruction = gr.Textbox(label="Instruction text (prefix of every query)",
                                             value=CATALOG[DEFAULT_MODEL].instruction, elem_id="instruction")
                with gr.Row():
                    build_btn = gr.Button("Build index", variant="primary", elem_id="build-index", scale=4)
                    stop_btn = gr.Button("Stop", elem_id="stop-build", scale=1)
                index_status = gr.HTML(elem_id="index-status")

            with gr.Tab("Search", id="search") as search_tab:
                with gr.Row():
                    query = gr.Textbox(label="Query", placeholder="Ask something about your documents",
                                       scale=4, elem_id="query")
                    search_btn = gr.Button("Search", variant="primary", scale=1, elem_id="search-btn")
                with gr.Row():
                    k = gr.Slider(1, limits.max_k, value=SHOWN_K, step=1, label="Top k")
                    reranker = gr.Dropdown([NO_RERANKER] + RERANKERS, value=NO_RERANKER, allow_custom_value=True,
                                           label="Reranker (catalog, Hub id or local path)", elem_id="reranker")
                    top_n = gr.Slider(1, limits.max_k, value=DEFAULT_TOP_N, step=1,
                                      label="Candidates the reranker rescores")
                with gr.Accordion("Retrieval mode: dense, sparse, ColBERT, BM25, hybrid", open=False,
                                  elem_id="retrieval-mode"):
                    with gr.Row():
                        retrieval = gr.Radio(hybrid.mode_choices(), value="dense", label="Mode", elem_id="mode",
                                             info="sparse and ColBERT need a BGE-M3 model; BM25 works with any")
                        fusion = gr.Radio([AUTO, *FUSIONS], value=AUTO, label="Hybrid fusion", elem_id="fusion",
                                          info="auto: m3 for a BGE-M3 model's own modes, else rrf; "
                                               + "; ".join(f"{n}: {f.label}" for n, f in FUSIONS.items()))
                    with gr.Row():  # one weight per registered mode: a new mode gets its slider here
                        weights = [gr.Slider(0, 1, value=w, step=0.05, label=f"{hybrid.short_label(m)} weight",
                                             elem_id=f"weight-{m}")
                                   for m, w in hybrid.default_weights().items()]
                    with gr.Row():
                        colbert_on = gr.Checkbox(False, label="ColBERT on (keeps a vector per chunk token)",
                                                 elem_id="colbert-on")
                        retrieval_panel = gr.HTML(elem_id="retrieval-info")
                search_summary = gr.HTML(elem_id="search-summary")
                with gr.Row(equal_height=False):
                    # text stays at the same position; per-mode and "relevant" columns come after it (plain text)
                    before = _df("Retrieval (before reranking)", ["number", "str", "number", "number", "str", "html"]
                                 + ["str"] * 10, elem_id="before",
                                 column_widths=["48px", "120px", "52px", "70px", "64px", "360px"])
                    after = _df("After reranking", ["number", "str", "number", "number", "number", "number", "str",
                                                    "number", "html"] + ["str"] * 10, elem_id="after",
                                column_widths=["48px", "96px", "64px", "64px", "64px", "64px", "120px", "52px",
                                               "360px"])
                detail = gr.HTML(elem_id="chunk-detail")
                with gr.Accordion("Why this match (select a result)", open=True, elem_id="why"):
                    with gr.Row():
                        explain_rank = gr.Number(1, label="Result (rank in retrieval order)", precision=0, minimum=1,
                                                 elem_id="explain-rank")
                        explain_btn = gr.Button("Explain", elem_id="explain-btn")
                    explain_summary = gr.HTML(elem_id="explain-summary")
                    with gr.Row(equal_height=False):
                        lexical_df = _df("M3 lexical weights: shared tokens and their contributions",
                                         ["str", "str", "number", "number", "number"], elem_id="explain-lexical")
                        bm25_df = _df("BM25 term contributions", ["str", "number"], elem_id="explain-bm25")
                    colbert_plot = gr.Plot(label="ColBERT: query token → chunk token similarity",
                                           elem_id="explain-colbert")
                    colbert_df = _df("ColBERT: best chunk token per query token", ["str", "str", "number", "number"],
                                     elem_id="explain-colbert-table")

            with gr.Tab("Compare prefixes", id="compare"):
                gr.Markdown("The same query with and without the query instruction (the instruction box on the "
                            "Model & index tab; empty means the model's default).")
                with gr.Row():
                    compare_query = gr.Textbox(label="Query", scale=4, elem_id="compare-query")
                    compare_k = gr.Slider(1, limits.max_k, value=SHOWN_K, step=1, label="Top k")
                    compare_btn = gr.Button("Compare", variant="primary", elem_id="compare-btn")
                compare_summary = gr.HTML(elem_id="compare-summary")
                with gr.Row(equal_height=False):
                    with_df = _df("With the instruction", ["number", "str", "str", "number", "str", "number", "html"],
                                  elem_id="with-instruction")
                    without_df = _df("Without", ["number", "str", "str", "number", "str", "number", "html"],
                                     elem_id="without-instruction")

            with gr.Tab("Map", id="map"):
                with gr.Row():
                    color_by = gr.Radio(["document", "cluster"], value="document", label="Colour by")
                    map_btn = gr.Button("Show map", variant="primary", elem_id="map-btn")
                    export_map_btn = gr.Button("Export map (HTML / PNG)", elem_id="export-map-btn")
                map_status = gr.HTML(elem_id="map-status")
                plot = gr.Plot(label="Chunk embeddings", elem_id="map-plot")
                map_files = gr.File(label="Map files", file_count="multiple", interactive=False)
                map_note = gr.HTML()

            with gr.Tab("Export", id="export"):
                gr.Markdown("Download the current results (both rankings, CSV) or the chunks with their "
                            "embeddings (Parquet).")
                with gr.Row():
                    results_btn = gr.Button("Results (CSV)", elem_id="export-results-btn")
                    chunks_btn = gr.Button("Chunks with embeddings (Parquet)", elem_id="export-chunks-btn")
                with gr.Row():
                    results_file = gr.File(label="Results CSV", interactive=False)
                    chunks_file = gr.File(label="Chunks Parquet", interactive=False)

            with gr.Tab("Evaluate", id="evaluate"):
                evaluate_parts = build_evaluate_tab(state)

        corpus_outputs = [corpus_summary, documents, problems, state]
        load_btn.click(load_corpus, [files, text_column, id_column, title_column, state], corpus_outputs,
                       api_name="load_corpus")
        sample_btn.click(load_sample, [state], corpus_outputs, api_name="load_sample")
        model.change(model_info, [model], [info], api_name="model_info", queue=False)
        instruction.input(lambda: "custom", None, [instruction_mode], api_visibility="private", queue=False)
        build_event = build_btn.click(gpu(build_index, 300),
                                      [model, pooling, model_class, chunking, chunk_size, overlap, state],
                                      [loaded_model, index_status, instruction, chunks_df, chunk_counts, state],
                                      api_name="build_index", **builds)
        stop_btn.click(stop, [state], [index_status], cancels=[build_event], queue=False, api_visibility="private")
        retrieval_inputs = [retrieval, fusion, *weights]
        search_inputs = [query, instruction_mode, instruction, k, reranker, top_n, state, *retrieval_inputs]
        search_outputs = [before, after, search_summary, detail, state]
        gr.on([search_btn.click, query.submit], gpu(search), search_inputs, search_outputs, api_name="search",
              **models)
        gr.on([instruction_mode.input, k.release, top_n.release, reranker.input, retrieval.input, fusion.input,
               *(w.release for w in weights)], gpu(rerun_search), search_inputs, search_outputs,
              api_visibility="private", trigger_mode="always_last", **models)
        before.select(show_before_chunk, [state], [detail], api_visibility="private")
        after.select(show_after_chunk, [state], [detail], api_visibility="private")
        explain_outputs = [explain_summary, lexical_df, colbert_plot, colbert_df, bm25_df]
        before.select(gpu(explain_before), [state], [explain_rank, *explain_outputs], api_visibility="private",
                      **models)
        after.select(gpu(explain_after), [state], [explain_rank, *explain_outputs], api_visibility="private",
                     **models)
        explain_btn.click(gpu(explain), [explain_rank, state], explain_outputs, api_name="explain", **models)
        gr.on([search_tab.select, retrieval.input], retrieval_info, [state], [retrieval_panel],
              api_visibility="private", queue=False)
        colbert_on.input(gpu(toggle_colbert, 300), [colbert_on, state], [colbert_on, retrieval_panel, state],
                         api_name="colbert", **builds)
        evaluate_parts["selected_query"].change(
            gpu(open_evaluated_query),
            [evaluate_parts["selected_query"], evaluate_parts["selected_relevant"], instruction_mode, instruction, k,
             reranker, top_n, state, *retrieval_inputs],
            [tabs, query, before, after, search_summary, detail, state], api_visibility="private", **models)
        compare_btn.click(gpu(compare_prefix), [compare_query, instruction, compare_k, state],
                          [with_df, without_df, compare_summary, state], api_name="compare_prefix", **models)
        map_btn.click(map_view, [color_by, state], [plot, map_status, state], api_name="map", concurrency_limit=2)
        export_map_btn.click(export_map, [color_by, state], [map_files, map_note], api_name="export_map")
        results_btn.click(export_results, [state], [results_file], api_name="export_results")
        chunks_btn.click(export_chunks, [state], [chunks_file], api_name="export_chunks")
        demo.unload(app_state.client_left)
    return demo
