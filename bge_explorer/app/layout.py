"""The page: components, tabs and the wiring of events to the handlers in :mod:`bge_explorer.app.explorer`.

Every action has an ``api_name`` (see the README's API section). Events that run a model share one
concurrency slot pool (``models``); index builds have their own (``builds``), and a Stop button.
"""
from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Callable

import gradio as gr
from gradio.utils import get_upload_folder

from bge_explorer import settings
from bge_explorer.app import choices, demo as tour, hybrid, state as app_state, views, workspace
from bge_explorer.app.components import number_input, slider_input
from bge_explorer.app.connect import build_connect_tab
from bge_explorer.app.evaluate import build_evaluate_tab
from bge_explorer.app import map as map_tab
from bge_explorer.app.explorer import (INSTRUCTION_MODES, NO_RERANKER, build_index, client_left, compare_prefix,
                                       explain,
                                       explain_after, explain_before, export_chunks, export_results,
                                       load_corpus, load_sample, model_info, open_evaluated_query,
                                       rerun_search, retrieval_info, search, show_after_chunk, show_before_chunk,
                                       stop, toggle_colbert)
from bge_explorer.app.render import box, esc
from bge_explorer.app.grading import (GRADE_KEYS_JS, grade_result, grading_status, next_result, select_after,
                                      select_before)
from bge_explorer.app.tuning import build_tuning_panel
from bge_explorer.app.workbench import build_workbench_tab
from bge_explorer.data.judging import SCALES
from bge_explorer.data.chunking import DEFAULT_OVERLAP, DEFAULT_SIZE
from bge_explorer.data.corpus import FORMATS
from bge_explorer.models.catalog import CATALOG, DEFAULT_MODEL
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


def _reveal(event, component: gr.components.Component):
    """After ``event``, show ``component`` (a file list) only when it holds something."""
    return event.then(lambda value: gr.update(visible=bool(value)), [component], [component], queue=False,
                      api_visibility="private")


INTRO = """# BGE Explorer
Load a corpus, pick a BGE embedding model and its query instruction, search, rerank, and see where your
documents and queries sit on a map. Each browser tab has its own corpus and index. New here? Press **Try the demo**."""
LARGE_TYPE_JS = "(on) => { document.documentElement.classList.toggle('bx-large', !!on); return on; }"
SHARE_LINK_JS = "(qs) => qs ? window.location.origin + window.location.pathname + qs : ''"


def build_app(demo_reranker: str | None = None) -> gr.Blocks:
    """The Blocks app: one function per tab lays it out and wires its events. Launch it with ``css`` from
    assets/style.css (see app.py). ``demo_reranker``: the reranker "Try the demo" uses when it can load here
    (default: the first catalog reranker that can)."""
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
                    builds=dict(concurrency_id="builds", concurrency_limit=config.models_concurrency()),
                    gates=[], panels=[], changes=[], controls=SimpleNamespace())
        with gr.Row(equal_height=True):
            with gr.Column(scale=5):
                gr.Markdown(INTRO)
            with gr.Column(scale=1, min_width=220):
                demo_btn = gr.Button("Try the demo", variant="primary", elem_id="demo-btn")
                large = gr.Checkbox(False, label="Large type (presenting)", elem_id="large-type")
        page.notes = gr.HTML(elem_id="page-notes")
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
                evaluate_parts = build_evaluate_tab(page.state, page.gate)
            with gr.Tab("Workbench", id="workbench"):
                build_workbench_tab(page)
                build_tuning_panel(page)
            with gr.Tab("Connect to an index", id="connect"):
                build_connect_tab()
        page.changes.append(evaluate_parts["selected_query"].change(  # a per-query row opens in Search, marked
            gpu(open_evaluated_query),
            [evaluate_parts["selected_query"], evaluate_parts["selected_relevant"], page.instruction_mode,
             page.instruction, page.k, page.reranker, page.top_n, page.state, *page.retrieval_inputs],
            [page.tabs, page.query, *page.search_outputs], api_visibility="private", **page.models))
        page.changes.append(evaluate_parts["event"])
        large.input(None, [large], [large], js=LARGE_TYPE_JS, api_visibility="private")
        _demo_and_links(page, demo, demo_btn, demo_reranker)
        _refresh_after(page, page.changes)
        demo.load(None, js=GRADE_KEYS_JS)  # keys 0-3 and n grade in Search's results and the Workbench's table
        demo.unload(client_left)
    return demo


def _gate(page: Page, name: str) -> gr.Column:
    """An empty state at this place: the line (and "Go to" button) that stands in for the content until it is
    there. Returns the (hidden) column to lay the content out in; :func:`_refresh_after` keeps both current."""
    message = views.empty_message(name, views.Facts())
    go = views.go_label(message)
    with gr.Column(visible=message is not None, elem_classes=["bx-empty"], elem_id=f"empty-{name}") as empty:
        with gr.Row(equal_height=True):
            html = gr.HTML(views.empty_html(message), elem_id=f"empty-{name}-text")
            button = gr.Button(go or "Go", visible=bool(go), size="sm", scale=0, min_width=200,
                               elem_id=f"go-{name}")
    button.click(_go_to, [button], [page.tabs], queue=False, api_visibility="private")
    content = gr.Column(visible=message is None, elem_id=f"content-{name}")
    page.gates.append((name, empty, html, button, content))
    return content


def _go_to(button_label: str):
    tab = views.go_to(button_label)
    return gr.Tabs(selected=tab) if tab else gr.skip()


def _panel(page: Page, name: str, component):
    """A panel shown only with content (no line in its place)."""
    component.visible = views.shown(name, views.Facts())
    page.panels.append((name, component))
    return component


def _refresh_after(page: Page, events: list) -> None:
    """After each event that changes a session, every empty state and gated panel is brought up to date."""
    outputs = [c for _, empty, html, button, content in page.gates for c in (empty, html, button, content)]
    outputs += [component for _, component in page.panels]
    outputs += [page.controls.grading, page.controls.color_by]

    def refresh(state, color_by):
        f = views.facts(state)
        out = []
        for name, *_ in page.gates:
            message = views.empty_message(name, f)
            go = views.go_label(message)
            out += [gr.update(visible=message is not None), views.empty_html(message),
                    gr.update(value=go or "Go", visible=bool(go)), gr.update(visible=message is None)]
        out += [gr.update(visible=views.shown(name, f)) for name, _ in page.panels]
        out.append(grading_status(state))
        colours = map_tab.colour_choices(state)  # the corpus's metadata columns join the map's colour-by list
        out.append(gr.update(choices=colours, value=color_by if color_by in colours else "document"))
        return out

    for event in events:
        event.then(refresh, [page.state, page.controls.color_by], outputs, queue=False, api_visibility="private")


def _demo_and_links(page: Page, demo: gr.Blocks, demo_btn: gr.Button, demo_reranker: str | None) -> None:
    """"Try the demo" and shared links: set the controls, then chain the page's own handlers."""
    c = page.controls
    build_inputs = [c.model, c.pooling, c.model_class, page.chunking, page.chunk_size, page.overlap, page.state]
    search_inputs = page.search_inputs
    def start_demo(state):
        return tour.start_demo(demo_reranker, state)

    start = demo_btn.click(
        start_demo, [page.state],
        [page.tabs, *page.corpus_outputs[:3], c.model, c.pooling, c.model_class, page.chunking, page.chunk_size,
         page.overlap, page.instruction_mode, page.query, page.k, page.reranker, page.top_n, page.retrieval_inputs[0],
         c.compare_query, page.notes, page.state], api_visibility="private")
    steps = [start]
    steps.append(start.success(gpu(build_index, 300), build_inputs, page.build_outputs, api_visibility="private",
                               **page.builds))
    steps.append(steps[-1].success(gpu(search), search_inputs, page.search_outputs, api_visibility="private",
                                   **page.models))
    steps.append(steps[-1].success(gpu(compare_prefix), [c.compare_query, page.instruction, page.k, page.state],
                                   c.compare_outputs, api_visibility="private", **page.models))
    opened_map = c.open_map(steps[-1])
    steps.append(opened_map)
    steps.append(opened_map.success(map_tab.map_view, c.map_inputs, c.map_outputs,
                                    api_visibility="private", concurrency_limit=2))
    page.changes.extend(steps)
    page.changes.extend(_share_link(page, steps[2]))

    view = gr.State(None, time_to_live=workspace.session_ttl_s(), delete_callback=app_state.drop)  # the link's view
    opened = demo.load(tour.open_link, [page.state],
                       [view, c.model, page.instruction_mode, page.instruction, page.reranker,
                        page.retrieval_inputs[0], page.k, page.query, c.compare_query, page.notes],
                       api_visibility="private", queue=False)
    corpus = opened.then(tour.restore_corpus, [view, page.state], page.corpus_outputs, api_visibility="private")
    built = corpus.then(gpu(tour.restore_build, 300), [view, *build_inputs], page.build_outputs,
                        api_visibility="private", **page.builds)
    searched = built.then(gpu(tour.restore_search), [view, *search_inputs], [page.tabs, *page.search_outputs],
                          api_visibility="private", **page.models)
    page.changes.extend([corpus, built, searched])
    page.changes.extend(_share_link(page, searched))


def _share_link(page: Page, event) -> list:
    """After a search: the link to this view (query string from the server, the page's address added in JS)."""
    c = page.controls
    qs = event.then(tour.view_query, [page.query, page.instruction_mode, page.instruction, page.reranker,
                                      page.retrieval_inputs[0], page.k, page.state], [c.share_qs],
                    api_visibility="private", queue=False)
    return [qs.then(None, [c.share_qs], [c.share_link], js=SHARE_LINK_JS, api_visibility="private")]


class Page(SimpleNamespace):
    """The components tabs share (state, instruction, search controls ...), filled in as the tabs are laid out;
    ``gates`` and ``panels`` (empty states), ``changes`` (events after which they are refreshed), ``controls``
    (what the demo and shared links set)."""

    def gate(self, name: str) -> gr.Column:
        return _gate(self, name)


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
    with page.gate("documents"):
        corpus_summary = gr.HTML(elem_id="corpus-summary")
        problems = gr.Textbox(label="Problems (skipped files and lines)", lines=2, interactive=False,
                              elem_id="corpus-problems")
        documents = _df("Documents", elem_id="documents", column_widths=["14%", "16%", "14%", "110px", "44%"])
    gr.Markdown("### Chunking\nApplied when the index is built, with the model's own tokenizer.")
    with gr.Row():
        page.chunking = gr.Radio(["tokens", "none"], value="tokens", label="Chunking",
                                 info="none: one chunk per document")
        page.chunk_size = number_input(DEFAULT_SIZE, label="Chunk size (tokens)", precision=0, minimum=1)
        page.overlap = number_input(DEFAULT_OVERLAP, label="Overlap (tokens)", precision=0, minimum=0)
    with page.gate("chunks"):
        page.chunk_counts = gr.HTML(elem_id="chunk-counts")
        page.chunks_df = _df("Chunks", elem_id="chunks", column_widths=["16%", "64px", "56px", "80px", "60%"])
    outputs = page.corpus_outputs = [corpus_summary, documents, problems, page.state]
    page.changes += [
        load_btn.click(load_corpus, [files, text_column, id_column, title_column, page.state], outputs,
                       api_name="load_corpus"),
        sample_btn.click(load_sample, [page.state], outputs, api_name="load_sample")]


def _model_tab(page: Page) -> None:
    page.gate("model")
    with gr.Row():
        model = gr.Dropdown(choices.choices("model"), value=DEFAULT_MODEL, allow_custom_value=True,
                            label="Embedding model (catalog, Hub id or local path)", elem_id="model",
                            info="each catalog model says where it loads from here")
        pooling = gr.Radio(["auto", "cls", "mean"], value="auto", label="Pooling",
                           info="auto: the catalog's, or CLS for a custom model")
        model_class = gr.Radio(["auto", "encoder", "m3"], value="auto", label="Model class")
    page.controls.model, page.controls.pooling, page.controls.model_class = model, pooling, model_class
    info = gr.HTML(model_info(DEFAULT_MODEL), elem_id="model-info")
    where = gr.HTML(choices.availability_html(DEFAULT_MODEL, "model"), elem_id="model-availability")
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
    model.change(lambda name: choices.availability_html(name, "model"), [model], [where], api_visibility="private")
    page.instruction.input(lambda: "custom", None, [page.instruction_mode], api_visibility="private", queue=False)
    page.build_outputs = [page.loaded_model, index_status, page.instruction, page.chunks_df, page.chunk_counts,
                          page.state]
    build_event = build_btn.click(
        gpu(build_index, 300), [model, pooling, model_class, page.chunking, page.chunk_size, page.overlap, page.state],
        page.build_outputs, api_name="build_index", **page.builds)
    stop_btn.click(stop, [page.state], [index_status], cancels=[build_event], queue=False, api_visibility="private")
    page.changes.append(build_event)


def _search_tab(page: Page) -> None:
    limits, state = page.limits, page.state
    with gr.Row():
        page.query = gr.Textbox(label="Query", placeholder="Ask something about your documents", scale=4,
                                elem_id="query")
        search_btn = gr.Button("Search", variant="primary", scale=1, elem_id="search-btn")
    with _panel(page, "prepared", gr.Row(elem_id="prepared-queries", elem_classes=["bx-prepared"])):
        gr.HTML("<span class='bx-prepared-label'>Prepared queries for the sample corpus:</span>")
        prepared = [gr.Button(q, size="sm", elem_classes=["bx-prepared-query"]) for q in tour.PREPARED_QUERIES]
    with gr.Row():
        page.k = slider_input(1, limits.max_k, value=SHOWN_K, step=1, label="Top k")
        with gr.Column():
            page.reranker = gr.Dropdown(choices.choices("reranker"), value=NO_RERANKER, allow_custom_value=True,
                                        label="Reranker (catalog, Hub id or local path)", elem_id="reranker")
            reranker_where = gr.HTML(elem_id="reranker-availability")
        page.top_n = slider_input(1, limits.max_k, value=DEFAULT_TOP_N, step=1, label="Candidates the reranker rescores")
    with gr.Accordion("Retrieval mode: dense, sparse, ColBERT, BM25, hybrid", open=False, elem_id="retrieval-mode"):
        with gr.Row():
            retrieval = gr.Radio(hybrid.mode_choices(), value="dense", label="Mode", elem_id="mode",
                                 info="sparse and ColBERT need a BGE-M3 model; BM25 works with any")
            fusion = gr.Dropdown([(AUTO, AUTO), *((f"{n}: {f.label}", n) for n, f in FUSIONS.items())], value=AUTO,
                                 label="Hybrid fusion", elem_id="fusion",
                                 info="auto: m3 for a BGE-M3 model's own modes, else rrf (docs/hybrid.md)")
        with gr.Row():  # one weight per registered mode: a new mode gets its slider here
            weights = [slider_input(0, 1, value=w, step=0.05, label=f"{hybrid.short_label(m)} weight",
                                 elem_id=f"weight-{m}") for m, w in hybrid.default_weights().items()]
        with gr.Row():
            colbert_on = gr.Checkbox(False, label="ColBERT on (keeps a vector per chunk token)", elem_id="colbert-on")
            retrieval_panel = gr.HTML(elem_id="retrieval-info")
    c = page.controls
    with page.gate("results"):
        summary = gr.HTML(elem_id="search-summary")
        with gr.Row(equal_height=True):
            c.share_link = gr.Textbox(label="Link to this view (corpus choice, model, instruction, reranker, mode, "
                                            "query)", interactive=False, buttons=["copy"], elem_id="share-link",
                                      scale=4)
            c.share_qs = gr.Textbox(visible=False)
        # stacked below the width where two tables fit (assets/style.css); per-mode and "relevant" columns come
        # after the text (plain text)
        with gr.Row(equal_height=False, elem_classes=["bx-results"]):
            with gr.Column(min_width=320):
                before = _df("Retrieval (before reranking)",
                             ["number", "str", "number", "number", "str", "html"] + ["str"] * 10, elem_id="before",
                             column_widths=["64px", "16%", "64px", "76px", "88px", "50%"])
            with gr.Column(min_width=320):
                with page.gate("after"):
                    after = _df("After reranking", ["number", "str", "number", "number", "number", "number", "str",
                                                    "number", "html"] + ["str"] * 10, elem_id="after",
                                column_widths=["56px", "110px", "100px", "72px", "76px", "84px", "14%", "64px", "37%"])
        with gr.Row(equal_height=True, elem_id="search-grading"):
            grading = gr.HTML(grading_status(None), elem_id="search-grading-status")
            grade_buttons = [gr.Button(f"{i} {name}", elem_id=f"search-grade-{i}", size="sm", min_width=80)
                             for i, name in enumerate(SCALES["graded"])]
            next_btn = gr.Button("Next unjudged (n)", elem_id="search-next-unjudged", size="sm", min_width=120)
        detail = gr.HTML(elem_id="chunk-detail")
    explain_outputs = _explain_panel(page, before, after)
    page.retrieval_inputs = [retrieval, fusion, *weights]
    page.search_outputs = [before, after, summary, detail, state]
    inputs = page.search_inputs = [page.query, page.instruction_mode, page.instruction, page.k, page.reranker,
                                   page.top_n, state, *page.retrieval_inputs]
    # A generator: the retrieval table first, the reranked one filling in batch by batch (its panel opens first).
    triggers = [search_btn.click, page.query.submit]
    searched = gr.on(triggers, gpu(search), inputs, page.search_outputs, api_name="search",
                     show_progress="minimal", **page.models)
    gr.on(triggers, _open_results, [page.reranker, state], _gate_parts(page, "results", "after"), queue=False,
          api_visibility="private")
    rerun = gr.on([page.instruction_mode.input, page.k.release, page.top_n.release, page.reranker.input,
                   retrieval.input, fusion.input, *(w.release for w in weights)], gpu(rerun_search), inputs,
                  page.search_outputs, api_visibility="private", trigger_mode="always_last", show_progress="minimal",
                  **page.models)
    page.changes += [searched, rerun, *_share_link(page, searched), *_share_link(page, rerun)]
    for button in prepared:  # a prepared query: into the query box, then searched
        run = button.click(lambda q: q, [button], [page.query], queue=False, api_visibility="private").then(
            gpu(search), inputs, page.search_outputs, api_visibility="private", show_progress="minimal",
            **page.models)
        page.changes += [run, *_share_link(page, run)]
    page.reranker.change(lambda name: choices.availability_html(name, "reranker"), [page.reranker],
                         [reranker_where], api_visibility="private")
    before.select(show_before_chunk, [state], [detail], api_visibility="private")
    after.select(show_after_chunk, [state], [detail], api_visibility="private")
    # judging in place: a selected row is graded by the buttons (keys 0-3), n goes to the next unjudged result
    before.select(select_before, [state], [grading, state], api_visibility="private")
    after.select(select_after, [state], [grading, state], api_visibility="private")
    for i, button in enumerate(grade_buttons):
        button.click(functools.partial(grade_result, i), [state], [before, after, grading, detail, state],
                     api_visibility="private")
    next_btn.click(next_result, [state], [grading, detail, state], api_visibility="private")
    page.controls.grading = grading  # kept current after every change of the session (_refresh_after)
    why = page.controls.why
    for table, handler in ((before, explain_before), (after, explain_after)):
        explained = table.select(gpu(handler), [state], explain_outputs, api_visibility="private", **page.models)
        page.changes.append(explained.then(lambda: gr.Accordion(open=True), None, [why], queue=False,
                                           api_visibility="private"))
    gr.on([page.search_tab.select, retrieval.input], retrieval_info, [state], [retrieval_panel],
          api_visibility="private", queue=False)
    colbert_on.input(gpu(toggle_colbert, 300), [colbert_on, state], [colbert_on, retrieval_panel, state],
                     api_name="colbert", **page.builds)


def _explain_panel(page: Page, before: gr.Dataframe, after: gr.Dataframe) -> list:
    """"Why this match": shown with results, closed until a result is picked; only the explanations the index's
    model can give (M3 lexical weights and ColBERT need a BGE-M3 model; BM25 terms any). -> the outputs a picked
    row fills (its rank, then the explanation's parts)."""
    with _panel(page, "why", gr.Accordion("Why this match (select a result)", open=False, elem_id="why")) as why:
        with gr.Row():
            rank = number_input(1, label="Result (rank in retrieval order)", precision=0, minimum=1, elem_id="explain-rank")
            explain_btn = gr.Button("Explain", elem_id="explain-btn")
        summary = gr.HTML(box("info", "Select a result in the tables above (or type its rank and press Explain): "
                                      "its explanation appears here."), elem_id="explain-summary")
        with _panel(page, "why_lexical", gr.Column()):
            lexical = _df("M3 lexical weights: shared tokens and their contributions",
                          ["str", "str", "number", "number", "number"], elem_id="explain-lexical")
            heat = gr.Plot(label="ColBERT: query token → chunk token similarity", elem_id="explain-colbert")
            alignment = _df("ColBERT: best chunk token per query token", ["str", "str", "number", "number"],
                            elem_id="explain-colbert-table")
        with _panel(page, "why_bm25", gr.Column()):
            bm25 = _df("BM25 term contributions", ["str", "number"], elem_id="explain-bm25")
    page.controls.why = why
    parts = [summary, lexical, heat, alignment, bm25]
    page.changes.append(explain_btn.click(gpu(explain), [rank, page.state], parts, api_name="explain", **page.models))
    return [rank, *parts]


def _compare_tab(page: Page) -> None:
    gr.Markdown("The same query with and without the query instruction (the instruction box on the "
                "Model & index tab; empty means the model's default).")
    with gr.Row():
        query = gr.Textbox(label="Query", scale=4, elem_id="compare-query")
        k = slider_input(1, page.limits.max_k, value=SHOWN_K, step=1, label="Top k")
        compare_btn = gr.Button("Compare", variant="primary", elem_id="compare-btn")
    with page.gate("compare"):
        summary = gr.HTML(elem_id="compare-summary")
        with gr.Row(equal_height=False, elem_classes=["bx-results"]):
            widths = ["56px", "92px", "72px", "72px", "16%", "64px", "46%"]
            with gr.Column(min_width=320):
                with_df = _df("With the instruction", ["number", "str", "str", "number", "str", "number", "html"],
                              elem_id="with-instruction", column_widths=widths)
            with gr.Column(min_width=320):
                without_df = _df("Without", ["number", "str", "str", "number", "str", "number", "html"],
                                 elem_id="without-instruction", column_widths=widths)
    page.controls.compare_query = query
    page.controls.compare_outputs = [with_df, without_df, summary, page.state]
    page.changes.append(compare_btn.click(gpu(compare_prefix), [query, page.instruction, k, page.state],
                                          page.controls.compare_outputs, api_name="compare_prefix", **page.models))


def _map_tab(page: Page) -> None:
    gr.set_static_paths(map_tab.static_files())  # plotly.min.js and the map's renderer, these two files only
    with gr.Row():
        color_by = gr.Dropdown(list(map_tab.COLOR_BY), value="document", label="Colour by", elem_id="map-colour",
                               info="score, movement, grade: for the last search")
        find = gr.Textbox(label="Find in the map", placeholder="words to highlight", elem_id="map-find")
        map_btn = gr.Button("Show map", variant="primary", elem_id="map-btn")
        export_btn = gr.Button("Export map (HTML, coordinates)", elem_id="export-map-btn")
        png_btn = gr.Button("PNG", elem_id="map-png-btn")
    with page.gate("map"):
        status = gr.HTML(elem_id="map-status")
        with gr.Row(equal_height=False):
            with gr.Column(min_width=420):
                plot = gr.HTML("", html_template=map_tab.TEMPLATE, js_on_load=map_tab.JS_ON_LOAD,
                               head=map_tab.head(), elem_id="map-plot", min_height=640)
            with gr.Column(min_width=420, visible=False) as b_column:  # a second space, selection linked
                plot_b = gr.HTML("", html_template=map_tab.TEMPLATE, js_on_load=map_tab.JS_ON_LOAD,
                                 head=map_tab.head(), elem_id="map-plot-b", min_height=640)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                detail = gr.HTML(box("info", "Click a point to read its chunk here."), elem_id="map-detail")
                similar_btn = gr.Button("Find similar", elem_id="map-similar-btn")
            with gr.Column(scale=3, min_width=420):
                selection_note = gr.HTML(elem_id="map-selection-status")
                selection = _df("Selected chunks", elem_id="map-selection", headers=map_tab.SELECTION_HEADERS,
                                column_widths=["22%", "64px", "110px", "60%"])
                with gr.Row():
                    grade = gr.Radio([f"{g} {name}" for g, name in enumerate(SCALES["graded"])], value="2 relevant",
                                     label="Grade for the current query", elem_id="map-grade")
                    grade_btn = gr.Button("Grade the selection", elem_id="map-grade-btn")
                with gr.Row():
                    within = gr.Textbox(label="Search within the selection", elem_id="map-within")
                    within_btn = gr.Button("Search within", elem_id="map-within-btn")
                within_df = _df("Selection ranked", elem_id="map-within-results",
                                headers=map_tab.SEARCH_HEADERS, visible=False)
                selection_btn = gr.Button("Export the selection (CSV)", elem_id="map-export-selection-btn")
                selection_file = gr.File(label="Selection CSV", interactive=False, visible=False)
        with gr.Accordion("Two embedding spaces side by side", open=False):
            with gr.Row():
                space_b = gr.Dropdown([], label="Compare with another index of this corpus", elem_id="map-space-b",
                                      info="the indexes this session built with other models or chunkings")
                compare_btn = gr.Button("Map side by side", elem_id="map-compare-btn")
            numbers = gr.HTML(elem_id="map-spaces-numbers")
    files = gr.File(label="Map files", file_count="multiple", interactive=False, visible=False,
                    elem_id="map-files")
    note = gr.HTML()
    page.controls.color_by = color_by
    page.controls.map_inputs = [color_by, page.state, find]
    page.controls.map_outputs = [plot, status, page.state]
    opening = dict(fn=_open_map, inputs=[page.state], outputs=[page.state], queue=False, api_visibility="private")
    page.controls.open_map = lambda event: event.success(**opening)  # the PCA preview shows while UMAP computes
    page.changes.append(map_btn.click(**opening))
    draw = dict(fn=map_tab.map_view, inputs=page.controls.map_inputs, outputs=page.controls.map_outputs,
                concurrency_limit=2)
    page.changes.append(map_btn.click(api_name="map", **draw))
    page.changes.append(color_by.input(api_visibility="private", **draw))
    page.changes.append(find.submit(api_visibility="private", **draw))
    for shown in (plot, plot_b):
        shown.point_click(map_tab.point_click, [page.state], [detail, page.state], api_visibility="private")
        shown.points_selected(map_tab.points_selected, [page.state], [selection, selection_note, page.state],
                              api_visibility="private")
    map_btn.click(map_tab.space_choices, [page.state], [space_b, page.state], api_visibility="private")
    compare_btn.click(map_tab.compare_spaces, [space_b, page.state], [plot_b, numbers, page.state],
                      api_name="map_compare", concurrency_limit=2).success(
        lambda: gr.update(visible=True), None, [b_column], queue=False, api_visibility="private")
    similar = similar_btn.click(map_tab.similar_query, [page.state], [page.query, selection_note, page.state],
                                api_visibility="private")
    searched = similar.success(gpu(search), page.search_inputs, page.search_outputs, api_visibility="private",
                               **page.models)
    page.changes.append(searched.success(api_visibility="private", **draw))
    grade_btn.click(map_tab.grade_selection, [grade, page.state], [selection, selection_note, page.state],
                    api_name="map_grade_selection")
    within_btn.click(map_tab.search_selection, [within, page.state], [within_df, selection_note, page.state],
                     api_name="map_search_selection", **page.models).then(
        lambda: gr.update(visible=True), None, [within_df], queue=False, api_visibility="private")
    _reveal(selection_btn.click(map_tab.export_selection, [page.state], [selection_file],
                                api_name="map_export_selection"), selection_file)
    _reveal(export_btn.click(map_tab.export_map, page.controls.map_inputs, [files, note], api_name="export_map"),
            files)
    png_btn.click(None, None, None, js=map_tab.PNG_JS, api_visibility="private")


def _gate_parts(page: Page, *names: str) -> list:
    """The empty line and the content column of each named gate, in that order."""
    gates = {g[0]: g for g in page.gates}
    return [part for name in names for part in (gates[name][1], gates[name][4])]


def _open_results(reranker: str, state):
    """The results panel (and the reranked one, with a reranker) opens as a search starts, so the streamed tables
    show as they fill; the refresh after the search settles every panel."""
    if app_state.get(state).session.current is None:
        return (gr.skip(),) * 4
    rerank = bool((reranker or "").strip()) and (reranker or "").strip().lower() != NO_RERANKER
    return (gr.update(visible=False), gr.update(visible=True), gr.update(visible=not rerank),
            gr.update(visible=rerank))


def _open_map(state):
    """The map panel opens as the map starts (its first figure is the PCA preview) when there is an index."""
    app = app_state.get(state)
    app.mapped_state = app.session.current
    return app


def _export_tab(page: Page) -> None:
    gr.Markdown("Download the current results (both rankings, CSV) or the chunks with their embeddings (Parquet).")
    page.gate("export")
    with gr.Row():
        results_btn = gr.Button("Results (CSV)", elem_id="export-results-btn")
        chunks_btn = gr.Button("Chunks with embeddings (Parquet)", elem_id="export-chunks-btn")
    with gr.Row():
        results_file = gr.File(label="Results CSV", interactive=False, visible=False)
        chunks_file = gr.File(label="Chunks Parquet", interactive=False, visible=False)
    _reveal(results_btn.click(export_results, [page.state], [results_file], api_name="export_results"), results_file)
    _reveal(chunks_btn.click(export_chunks, [page.state], [chunks_file], api_name="export_chunks"), chunks_file)
