"""The Gradio app's handlers: a thin layer over the engine (:class:`~bge_explorer.session.Session` and the
one retrieval pipeline).

Every event handler is a module-level function of plain values plus the browser session's state (an
:class:`~bge_explorer.app.state.AppState`, created on first use), and returns plain values plus that
state, so the handlers are testable without a browser. Each search builds one
:class:`~bge_explorer.retrieval.config.RetrievalConfig` from the controls (:func:`search_config`) and runs
it on the index the user built. The layout is in :mod:`bge_explorer.app.layout`.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import gradio as gr
import numpy as np
import pandas as pd

from bge_explorer import settings
from bge_explorer.app import hybrid, state as app_state, workspace
from bge_explorer.app.render import box, cell, esc, fail, highlight, label, snippet
from bge_explorer.app.state import AppState
from bge_explorer.data.chunking import DEFAULT_OVERLAP, DEFAULT_SIZE
from bge_explorer.errors import Cancelled, ConfigError, ExplorerError, LimitError
from bge_explorer.exports import chunk_table, results_table, write_csv
from bge_explorer.models.backends import deployment_route
from bge_explorer.models.catalog import CATALOG, DEFAULT_MODEL
from bge_explorer.models.loading import load_embedder, load_embedder_with_fallback
from bge_explorer.retrieval import modes as registry
from bge_explorer.retrieval.compare import compare_lists
from bge_explorer.retrieval.config import AUTO, DEFAULT_K, DEFAULT_TOP_N, HYBRID, RetrievalConfig
from bge_explorer.retrieval.fusion import FUSIONS
from bge_explorer.retrieval.pipeline import rerank_steps
from bge_explorer.retrieval.planner import select_modes

GRADE_COLUMN = "grade"

log = logging.getLogger(__name__)

SAMPLE_CORPUS = str(Path(__file__).resolve().parents[2] / "assets" / "sample_corpus.jsonl")
NO_RERANKER = "none"
INSTRUCTION_MODES = ["model default", "custom", "none"]
PREVIEW_ROWS = 500
DETAIL_CHARS = 20_000  # characters of a chunk shown in the detail panel; the export has the rest


def _no_progress(*_args, **_kwargs) -> None:
    return None


def _tmpdir(app: AppState) -> str:
    """A fresh folder for output files inside the session's private directory (deleted with the session)."""
    return tempfile.mkdtemp(prefix="export-", dir=app.ensure_workdir())


def count_param(value: Any, name: str, limit: int) -> int:
    """A whole number between 1 and ``limit`` (BGE_EXPLORER_MAX_K), else LimitError naming the field."""
    try:
        number = float(value)
        whole = int(number)
    except (TypeError, ValueError, OverflowError):
        raise LimitError(f"{name} must be a whole number between 1 and {limit:,}; got {str(value)[:40]!r}") from None
    if whole != number or not 1 <= whole <= limit:
        raise LimitError(f"{name} must be a whole number between 1 and {limit:,} (the limit BGE_EXPLORER_MAX_K); "
                         f"got {number:,.10g}")
    return whole


# -------------------------------------------------------------------------------------------------------- corpus

def _documents_preview(app: AppState) -> pd.DataFrame:
    docs = app.session.corpus.documents.head(PREVIEW_ROWS)
    return pd.DataFrame({
        "document": [cell(d) for d in docs["doc_id"].astype(str)], "title": docs["title"].astype(str),
        "source": [cell(s) for s in docs["source"].astype(str)],
        "characters": docs["text"].str.len().astype(int), "text": [snippet(t) for t in docs["text"]]})


def _corpus_summary(app: AppState) -> str:
    corpus = app.session.corpus
    files = corpus.sources
    body = (f"<b>{len(corpus.documents)}</b> documents from <b>{len(files)}</b> file(s): "
            f"{label(', '.join(files[:10]))}{' …' if len(files) > 10 else ''}. "
            "Next: choose a model and build the index.")
    if len(corpus.documents) > PREVIEW_ROWS:
        body += f" (The preview shows the first {PREVIEW_ROWS}.)"
    for note in corpus.notes:
        body += f"<br>{label(note)}"
    return box("ok", body)


def _problems_text(app: AppState) -> str:
    corpus = app.session.corpus
    return "\n".join(corpus.problems) if corpus and corpus.problems else ""


def load_corpus(files: Sequence[str] | str | None, text_column: str = "", id_column: str = "",
                title_column: str = "", state: Any = None):
    """Read uploaded files (bad files are skipped and named). -> (summary, documents, problems, state).

    The limits on files and size are checked before anything is read; the files are then copied into the
    session's private directory and read from there.
    """
    app = app_state.get(state)
    session = app.session
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    paths = [str(f) for f in (files or []) if f]
    if not paths:
        raise gr.Error("Choose one or more files to upload, or load the sample corpus.")
    columns = {}
    try:
        for field, value in (("text_column", text_column), ("id_column", id_column), ("title_column", title_column)):
            columns[field] = session.limits.check_field((value or "").strip(), field.replace("_", " ")) or None
        session.limits.check_files(paths)
        if paths == [SAMPLE_CORPUS]:
            names = [os.path.basename(SAMPLE_CORPUS)]
        else:  # uploads: into this session's own directory, read from there
            paths, names = workspace.copy_in(paths, app.ensure_workdir())
        session.load_corpus(paths, names=names, on_error="skip", **columns)
    except ExplorerError as exc:
        raise fail(exc) from None
    except OSError as exc:
        raise gr.Error(label(f"Cannot read the upload: {exc.strerror or exc}"), print_exception=False) from None
    app.ranking = app.compare = None
    app.corpus_name = "sample" if paths == [SAMPLE_CORPUS] else None
    if session.corpus.problems:
        gr.Warning(label(f"{len(session.corpus.problems)} problem(s) while reading: " +
                         "; ".join(session.corpus.problems[:3])), title="Some input was skipped")
    return _corpus_summary(app), _documents_preview(app), _problems_text(app), app


def load_sample(state: Any = None):
    """Load the bundled sample corpus. -> (summary, documents, problems, state)."""
    return load_corpus([SAMPLE_CORPUS], state=state)


# ---------------------------------------------------------------------------------------------- model and index

def model_info(model: str) -> str:
    """What is known about a model before loading it: dimension, default instruction, note."""
    name = (model or "").strip()
    spec = CATALOG.get(name)
    if spec is None:
        return box("info", f"Custom model <b>{label(name[:200])}</b>: a Hub id or a local directory. Its dimension "
                           "is known once it is loaded; it has no default query instruction "
                           "(choose pooling and class below if it is not a BGE-style CLS encoder).")
    if spec.model_class == "reranker":
        return box("warn", f"<b>{esc(name)}</b> is a reranker; choose it on the Search tab.")
    instruction = f"“{esc(spec.instruction)}”" if spec.instruction else "none"
    return box("info", f"<b>{esc(spec.name)}</b> ({esc(spec.source)}): dimension {spec.dim}, pooling {spec.pooling}, "
                       f"max length {spec.max_length} tokens. Default query instruction: {instruction}. "
                       f"{esc(spec.note)}.")


def _load_model(model: str, pooling: str, model_class: str):
    name = (model or "").strip() or DEFAULT_MODEL
    settings.current().limits.check_field(name, "the model")
    options = deployment_route()
    if pooling and pooling != "auto":
        options["pooling"] = pooling
    if model_class and model_class != "auto":
        options["model_class"] = model_class
    if name in CATALOG:
        return load_embedder_with_fallback(name, **options)
    return load_embedder(name, **options), None


def loaded_model_html(app: AppState) -> str:
    embedder = app.session.embedder
    if embedder is None:
        return box("info", "No model loaded yet.")
    spec = embedder.spec
    instruction = f"“{esc(spec.instruction)}”" if spec.instruction else "none"
    body = (f"Loaded: <b>{label(spec.name)}</b> from {label(spec.source)} — dimension {embedder.dim}, pooling "
            f"{spec.pooling}, max length {spec.max_length}, {esc(embedder.device)} / {esc(embedder.precision)}. "
            f"Default query instruction: {instruction}.<br>Runs on: {label(embedder.path_note)}.")
    if app.notice:
        return box("warn", f"<b>Offline fallback.</b> {label(app.notice)}<br>{body}")
    return box("ok", body)


def _chunks_preview(app: AppState) -> pd.DataFrame:
    table = app.session.chunks.table.head(PREVIEW_ROWS)
    return pd.DataFrame({"document": [cell(d) for d in table["doc_id"].astype(str)],
                         "chunk": table["chunk"].astype(int), "page": table["page"].astype("Int64"),
                         "tokens": table["n_tokens"].astype(int), "text": [snippet(t) for t in table["text"]]})


def build_index(model: str = DEFAULT_MODEL, pooling: str = "auto", model_class: str = "auto",
                chunking: str = "tokens", chunk_size: float = DEFAULT_SIZE, overlap: float = DEFAULT_OVERLAP,
                state: Any = None, progress: Callable = gr.Progress(), request: gr.Request = None):
    """Load the model (shared process-wide), chunk with its tokenizer, embed what is not cached, index.
    The Stop button, or the tab going away, ends the build between batches.

    -> (loaded model, status, default instruction, chunk preview, chunk counts, state).
    """
    app = app_state.get(state)
    session = app.session
    if session.corpus is None:
        raise gr.Error("Load a corpus first (Corpus tab).")
    progress = progress or _no_progress
    started = time.monotonic()
    progress(0, desc="Loading model")
    try:
        size = None if chunking == "none" else count_param(chunk_size, "the chunk size", 1_000_000)
        overlap = int(float(overlap or 0)) if size else 0
        RetrievalConfig(model=None, modes=("bm25",), chunk_size=size, overlap=overlap)  # names a bad size or overlap
        embedder, notice = _load_model(model, pooling, model_class)
    except (ExplorerError, ValueError) as exc:
        raise fail(ConfigError("chunking", str(exc)) if isinstance(exc, ValueError) else exc) from None
    if notice:
        gr.Warning(label(notice), title="Offline fallback")

    def report(done: int, total: int) -> None:
        app.check_cancelled()
        progress((done, total), desc="Embedding chunks", unit="chunks")

    before = embedder.corpus_texts_encoded
    try:
        with app_state.running(app, request):
            chunks = session.build_index(embedder, chunk_size=size, overlap=overlap, progress=report)
    except Cancelled:
        return (gr.skip(),) * 5 + (app,) if not app.closed else (gr.skip(),) * 6
    except ExplorerError as exc:
        raise fail(exc) from None
    app.notice, app.ranking, app.compare = notice, None, None
    embedded = embedder.corpus_texts_encoded - before
    elapsed = time.monotonic() - started
    if settings.current().auto_umap:  # fit UMAP in the background after indexing
        app.maps.start_umap(app.map_key(), session.vectors)
    counts = (f"<b>{len(session.corpus.documents)}</b> documents → <b>{len(chunks)}</b> chunks "
              f"({'one per document' if size is None else f'up to {size} tokens, overlap {overlap}'}); "
              f"{chunks.dropped_empty} empty chunk(s) dropped.")
    status = box("ok", f"Index ready: {len(chunks)} chunks, {embedded} embedded now, {len(chunks) - embedded} "
                       f"from this session's cache, in {elapsed:.1f} s. This session keeps about "
                       f"{session.memory_bytes() / 2**20:,.0f} MB (limit {session.limits.max_session_mb:,.0f} MB). "
                       "Next: search.")
    return (loaded_model_html(app), status, embedder.spec.instruction, _chunks_preview(app), box("info", counts), app)


def client_left(request: gr.Request = None) -> None:
    """``demo.unload``: the page's connection closed. Its running job stops at the next batch; nothing is deleted
    (the state lives on for a reconnect until Gradio drops it). Gradio passes ``gr.Request`` only to a parameter
    annotated with it."""
    app_state.cancel_running(getattr(request, "session_hash", None))


def stop(state: Any = None):
    """The Stop button: the build (or evaluation) in flight ends at its next batch."""
    app = app_state.get(state)
    app.cancel()
    return box("warn", "Stopping at the next batch…")


# ------------------------------------------------------------------------------------------------------ search

def search_config(app: AppState, instruction_mode: str, instruction: str | None, k: Any, reranker: str | None,
                  top_n: Any, mode: str = "dense", fusion: str = AUTO, weights: dict[str, float] | None = None
                  ) -> tuple[RetrievalConfig, int, list[str]]:
    """The controls -> (the configuration to run on the current index, rows to show, notes on modes left out).

    ``mode``: a registered mode or ``hybrid``, whose modes are those with a weight above 0 that the index serves
    (:func:`~bge_explorer.retrieval.planner.select_modes`)."""
    session = app.session
    state = session.index_state()
    limits = session.limits
    k = count_param(k, "k", limits.max_k)
    name = (reranker or "").strip()
    limits.check_field(name, "the reranker")
    rerank = None if not name or name.lower() == NO_RERANKER else name
    top_n = count_param(top_n, "the reranker's candidates (top n)", limits.max_k) if rerank else DEFAULT_TOP_N
    text = {"none": "", "custom": instruction or ""}.get(instruction_mode)
    fusion = fusion if fusion in (AUTO, *FUSIONS) else AUTO
    notes: list[str] = []
    if (mode or "dense") == HYBRID:
        modes, notes, fusion = select_modes(weights or {}, state, fusion)
    elif mode in registry.REGISTRY:
        modes = (mode,)
    else:
        raise ConfigError("mode", f"choose one of {', '.join(registry.names())}, {HYBRID}; not {str(mode)[:40]!r}")
    config = session.config.with_(instruction=text, modes=modes, fusion=fusion,
                                  weights={m: w for m, w in (weights or {}).items() if m in modes},
                                  reranker=rerank, top_n=top_n, k=max(k, top_n) if rerank else k)
    return config, k, notes


def movement_label(movement: Any, retrieval_rank: int, k: int, rescored: bool) -> str:
    """'▲ 3', '▼ 2', '=' or 'new' (came from below the top k); '·' for rows the reranker did not score."""
    if not rescored:
        return "·"
    if retrieval_rank > k:
        return f"new (was {retrieval_rank})"
    movement = int(movement)
    return f"▲ {movement}" if movement > 0 else f"▼ {-movement}" if movement < 0 else "="


def final_table(ranking, k: int) -> pd.DataFrame:
    """The ranking a user gets (reranked top n first), as table rows, first ``k``."""
    order = {int(r): i for i, r in enumerate(ranking.rows)}
    positions = [order[int(r)] for r in ranking.final_rows()[:k]]
    return ranking.table.iloc[positions].reset_index(drop=True)


def _extra_columns(out: pd.DataFrame, table: pd.DataFrame, relevant: set[str] | None,
                   grades: Mapping[str, str] | None) -> pd.DataFrame:
    """After the text column: ``grade`` (this session's judgment of the document for the query, as
    ``{doc id: "2 relevant"}``), ``relevant`` (documents marked from the Evaluate tab) and a score and rank
    column per retrieval mode in play (more than one mode)."""
    if grades is not None:
        out[GRADE_COLUMN] = [grades.get(d, "") for d in table["doc_id"].astype(str)]
    if relevant:
        out["relevant"] = ["✓ relevant" if d in relevant else "" for d in table["doc_id"].astype(str)]
    extra = hybrid.mode_columns(table)
    for column in extra.columns:
        out[column] = extra[column].to_numpy()
    return out


def before_table(ranking, k: int, query: str, relevant: set[str] | None = None,
                 grades: Mapping[str, str] | None = None) -> pd.DataFrame:
    table = ranking.table.head(k)
    out = pd.DataFrame({"rank": table["rank"].astype(int), "document": [cell(d) for d in table["doc_id"].astype(str)],
                        "chunk": table["chunk"].astype(int), "score": table["score"].round(4)})
    out["reranked rank"] = [str(int(r)) if pd.notna(r) else "·" for r in table["rerank_rank"]]  # "·": not rescored
    out["text"] = [highlight(snippet(t), query) for t in table["text"]]
    out = _extra_columns(out, table, relevant, grades)
    if ranking.plan.fusion:
        out = out.rename(columns={"rank": "fused rank", "score": "fused score"})
    return out


def after_table(ranking, k: int, query: str, relevant: set[str] | None = None,
                grades: Mapping[str, str] | None = None) -> pd.DataFrame:
    if ranking.rerank_logits is None:
        return pd.DataFrame(columns=["rank", "movement", "retrieval rank", "logit", "sigmoid", "score", "document",
                                     "chunk", "text"])
    table = final_table(ranking, k)
    rescored = table["rerank_rank"].notna()
    out = pd.DataFrame({
        "rank": np.arange(1, len(table) + 1),
        "movement": [movement_label(m, int(r), k, bool(s))
                     for m, r, s in zip(table["movement"], table["rank"], rescored)],
        "retrieval rank": table["rank"].astype(int),
        "logit": table["rerank_logit"].round(4), "sigmoid": table["rerank_score"].round(4),
        "score": table["score"].round(4), "document": [cell(d) for d in table["doc_id"].astype(str)],
        "chunk": table["chunk"].astype(int), "text": [highlight(snippet(t), query) for t in table["text"]]})
    out = _extra_columns(out, table, relevant, grades)
    if ranking.plan.fusion:
        out = out.rename(columns={"retrieval rank": "fused rank", "score": "fused score"})
    return out


def chunk_detail(row: pd.Series | dict, query: str, header: str = "") -> str:
    """The chunk as safe HTML: document, title, PDF page, character offsets, query words highlighted; text past
    :data:`DETAIL_CHARS` is cut (the results export holds all of it)."""
    title = f" — {label(row['title'])}" if row.get("title") else ""
    page = row.get("page")
    where = (f" · page {int(page)}" if page is not None and pd.notna(page) else "")
    offsets = f" · characters {int(row['start']):,}–{int(row['end']):,}" if "start" in row and pd.notna(row["start"]) \
        else ""
    text = str(row["text"])
    more = ""
    if len(text) > DETAIL_CHARS:
        more = (f'<div class="bx-more">Showing the first {DETAIL_CHARS:,} of {len(text):,} characters; '
                "export the results (Export tab) for the whole chunk.</div>")
        text = text[:DETAIL_CHARS]
    return (f'<div class="bx-chunk"><div class="bx-chunk-head">{header}<b>{label(row["doc_id"])}</b>{title} · '
            f'chunk {int(row["chunk"])}{where}{offsets}</div><div class="bx-chunk-text">{highlight(text, query)}'
            f"</div>{more}</div>")


def weights_of(*values: float | None) -> dict[str, float]:
    """The weight sliders, one per registered mode in registry order -> ``{mode: weight}``."""
    return {m: float(v) for m, v in zip(registry.names(), values) if v is not None}


def search_once(query: str, instruction_mode: str = "model default", instruction: str = "", k: float = DEFAULT_K,
                reranker: str = NO_RERANKER, top_n: float = DEFAULT_TOP_N, state: Any = None,
                mode: str = "dense", fusion: str = AUTO, *weights: float):
    """Retrieve the top k; rerank the top n candidates when a reranker is chosen. Never re-embeds the corpus.

    ``mode``: a registered mode (dense, sparse, colbert, bm25) or hybrid; ``fusion`` and ``weights`` (one per
    registered mode, in registry order; 0 leaves a mode out) apply to hybrid. The reranker applies after fusion.
    -> (before, after, summary, detail, state): the last of :func:`search`.
    """
    for outputs in search(query, instruction_mode, instruction, k, reranker, top_n, state, mode, fusion,
                                *weights):
        pass
    return outputs


def search(query: str, instruction_mode: str = "model default", instruction: str = "", k: float = DEFAULT_K,
           reranker: str = NO_RERANKER, top_n: float = DEFAULT_TOP_N, state: Any = None,
           mode: str = "dense", fusion: str = AUTO, *weights: float) -> Iterator[tuple]:
    """Search the index built in this session: the top k chunks, and their order after a cross-encoder reranker.

    A generator: the retrieval table comes first, before the reranker scores a pair; then the reranked table
    after each batch of the cross-encoder (the first batch small, so reranked rows show within about half a
    second). Pairs scored before (another top n, instruction, k or mode) come from the session's cache. The
    corpus is never re-embedded. Yields (retrieved table, reranked table, summary, top chunk, state).

    Args:
        query: the text to search for (the instruction is prefixed to it).
        instruction_mode: "model default" (the model's own query instruction), "none" or "custom".
        instruction: the custom instruction, used as typed when instruction_mode is "custom".
        k: how many chunks to retrieve (1 to BGE_EXPLORER_MAX_K).
        reranker: a catalog reranker, Hub id or local directory; "none" for no reranking.
        top_n: how many of the retrieved chunks the reranker rescores.
        mode: dense, sparse, colbert, bm25 or hybrid.
        fusion: how hybrid combines the modes: auto, rrf, weighted or m3.
    """
    app = app_state.get(state)
    session = app.session
    query = (query or "").strip()
    try:
        config, k, notes = search_config(app, instruction_mode, instruction, k, reranker, top_n, mode, fusion,
                                         weights_of(*weights) if weights else hybrid.default_weights())
        ranking = session.search(query, config.with_(reranker=None))
        cross_encoder = session.reranker(config) if config.reranker else None
        embedder = session.embedder
        app.query_vector = ranking.query_vector  # encoded once by the pipeline; modes without it encode for the map
        if app.query_vector is None and embedder is not None and "dense" in embedder.produces:
            app.query_vector = embedder.encode_queries([query], ranking.instruction)[0]
    except ExplorerError as exc:
        raise fail(exc) from None
    app.ranking, app.ranking_state, app.ranking_config, app.shown_k = ranking, session.current, config, k
    app.graded_row = None
    if cross_encoder is None:
        yield _search_outputs(app, ranking, config, k, notes, query)
        return
    n = min(config.top_n, len(ranking))
    if session.rerank_cache.unscored(cross_encoder, query, ranking.chunks.passages(ranking.rows[:n])):
        yield _search_outputs(app, ranking, config, k, notes, query, pending=(0, n))
    try:
        for step in rerank_steps(ranking, cross_encoder, n, session.rerank_cache):
            done = len(step.rerank_logits)
            yield _search_outputs(app, step, config, k, notes, query, pending=(done, n) if done < n else None)
    except ExplorerError as exc:
        raise fail(exc) from None


def _search_outputs(app: AppState, ranking, config: RetrievalConfig, k: int, notes: list[str], query: str,
                    pending: tuple[int, int] | None = None) -> tuple:
    """(before, after, summary, detail, state) of a ranking; ``pending`` (scored, of n): the reranker is at work."""
    shown = final_table(ranking, k)
    used = f"“{esc(ranking.instruction)}”" if ranking.instruction else "no instruction"
    summary = (f"Query embedded with {used}; top {min(k, len(ranking))} of {len(app.session.chunks)} chunks; "
               f"{esc(hybrid.describe_plan(ranking.plan))}")
    for note in [*ranking.plan.notes, *notes]:
        summary += f"; {esc(note)}"
    relevant = _relevant(app, query)
    if relevant:
        found = [d for d in relevant if d in set(ranking.table.head(k)["doc_id"].astype(str))]
        summary += (f"; relevant documents from the Evaluate tab: {len(found)} of {len(relevant)} in the top {k} "
                    "(column “relevant”)")
    if pending is not None:
        done, n = pending
        summary += (f"; {label(config.reranker)} reranking: {done} of {n} candidates scored "
                    f'<progress value="{done}" max="{n}"></progress>')
    elif ranking.rerank_logits is not None:
        n = len(ranking.rerank_logits)
        moved = int((ranking.table["movement"].fillna(0) != 0).sum())
        summary += f"; {label(ranking.reranker)} rescored the top {n} candidates ({moved} changed place)"
    summary += f". Configuration <code>{config.id}</code>"
    detail = chunk_detail(shown.iloc[0], query, "Top result: ") if len(shown) else ""
    return (*result_tables(app, ranking), box("info", summary + "."), detail, app)


def _relevant(app: AppState, query: str) -> set[str] | None:
    """The documents marked relevant from the Evaluate tab, when the ranking is that query's."""
    return app.marked if app.marked and app.marked_query == query else None


def result_tables(app: AppState, ranking=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(before, after) tables of ``ranking`` (default: the last search's) as shown: the first ``shown_k`` rows,
    with this session's grades for its query."""
    ranking = ranking if ranking is not None else app.ranking
    store = app.session.judgments
    grades = {d: store.label(g) for d, g in store.grades(ranking.query).items()}
    relevant = _relevant(app, ranking.query)
    return (before_table(ranking, app.shown_k, ranking.query, relevant, grades),
            after_table(ranking, app.shown_k, ranking.query, relevant, grades))


def _selected_row(which: str, app: AppState, evt: gr.SelectData) -> pd.Series | None:
    ranking = app.current_ranking()
    if ranking is None or evt is None or evt.index is None:
        return None
    row = int(evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index)
    table = final_table(ranking, app.shown_k) if which == "after" else ranking.table.head(app.shown_k)
    return table.iloc[row] if 0 <= row < len(table) else None


def show_chunk(which: str, state: Any, evt: gr.SelectData):
    """The full text of the row selected in the 'before' or 'after' table."""
    app = app_state.get(state)
    row = _selected_row(which, app, evt)
    if row is None:
        return gr.skip()
    header = f"{'Reranked' if which == 'after' else 'Retrieved'} #{int(evt.index[0]) + 1}: "
    return chunk_detail(row, app.ranking.query, header)


def show_before_chunk(state: Any, evt: gr.SelectData):
    return show_chunk("before", state, evt)


def show_after_chunk(state: Any, evt: gr.SelectData):
    return show_chunk("after", state, evt)


def rerun_search(query, instruction_mode, instruction, k, reranker, top_n, state, *retrieval):
    """Re-run the current query when the instruction, k, reranker or retrieval mode changes (no query or index:
    nothing). ``retrieval``: mode, fusion and the weights, as :func:`search` takes them."""
    app = app_state.get(state)
    if not (query or "").strip() or app.session.current is None:
        yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), app
        return
    yield from search(query, instruction_mode, instruction, k, reranker, top_n, app, *retrieval)


# ------------------------------------------------------------------------------------- hybrid: ColBERT, why

def retrieval_info(state: Any = None) -> str:
    """The retrieval panel: modes the index serves, memory per part, opt-in modes' memory (estimate first)."""
    app = app_state.get(state)
    try:
        return box("info", hybrid.retrieval_info(app.session))
    except ExplorerError as exc:
        return box("warn", label(exc))


def toggle_colbert(on: bool, state: Any = None, progress: Callable = gr.Progress(), request: gr.Request = None):
    """The ColBERT switch: build (on) or free (off) the token vectors. -> (switch, retrieval panel, state)."""
    app = app_state.get(state)
    progress = progress or _no_progress

    def report(done: int, total: int) -> None:
        app.check_cancelled()
        progress((done, total), desc="ColBERT vectors", unit="chunks")

    try:
        with app_state.running(app, request):
            value, body = hybrid.toggle(app.session, "colbert", bool(on), report)
    except Cancelled:
        return False, box("warn", "Stopped."), app
    except ExplorerError as exc:
        raise fail(exc) from None
    return value, box("ok" if value or not on else "warn", body), app


def explain(rank: float = 1, state: Any = None):
    """"Why this match" for the current results' result at ``rank`` (retrieval / fused order, 1 = first).

    -> (summary HTML, lexical weights table, ColBERT heat map, ColBERT alignment table, BM25 terms table)."""
    app = app_state.get(state)
    ranking = app.current_ranking()
    if ranking is None:
        raise gr.Error("Search first, then pick a result to explain.")
    try:
        summary, lexical, figure, alignment, bm25 = hybrid.explain_view(app.session, ranking, int(rank or 1))
    except ExplorerError as exc:
        raise fail(exc) from None
    app.explained_ranking = ranking
    return box("info", summary), lexical, figure, alignment, bm25


def explain_selected(which: str, state: Any, evt: gr.SelectData):
    """A row picked in the 'before' or 'after' table -> its rank in retrieval order, and its explanation."""
    app = app_state.get(state)
    row = _selected_row(which, app, evt)
    if row is None:
        return (gr.skip(),) * 6
    rank = int(row["rank"])
    return (rank, *explain(rank, app))


def explain_before(state: Any, evt: gr.SelectData):
    return explain_selected("before", state, evt)


def explain_after(state: Any, evt: gr.SelectData):
    return explain_selected("after", state, evt)


def open_evaluated_query(query: str, relevant: str, instruction_mode: str, instruction: str, k: float, reranker: str,
                         top_n: float, state: Any = None, *retrieval):
    """A per-query row picked in the Evaluate tab: open the Search tab on that query, with its relevant documents
    marked (column "relevant"). -> (tabs, query box, before, after, summary, detail, state)."""
    app = app_state.get(state)
    query = (query or "").strip()
    if not query:
        return (gr.skip(),) * 6 + (app,)
    app.marked_query = query
    app.marked = {d.strip() for d in (relevant or "").split(",") if d.strip()}
    if app.session.current is None:
        note = box("warn", f"Build the index (Model &amp; index tab) to run “{esc(query)}”; its relevant documents "
                           f"({label(', '.join(sorted(app.marked)) or 'none')}) will be marked.")
        return gr.Tabs(selected="search"), query, gr.skip(), gr.skip(), note, gr.skip(), app
    before, after, summary, detail, app = search_once(query, instruction_mode, instruction, k, reranker, top_n,
                                                 app, *retrieval)
    return gr.Tabs(selected="search"), query, before, after, summary, detail, app


# ---------------------------------------------------------------------------------------------- compare prefix

def compare_prefix(query: str, instruction: str = "", k: float = DEFAULT_K, state: Any = None):
    """The same query with and without the instruction (empty -> the model's default), side by side, with
    overlap, Jaccard and rank-biased overlap of the two top-k lists. -> (with instruction, without, summary, state).
    """
    app = app_state.get(state)
    session = app.session
    query = (query or "").strip()
    try:
        k = count_param(k, "k", session.limits.max_k)
        embedder = session.index_state().embedder
        if embedder is None:
            raise ExplorerError("Comparing instructions needs an embedding model: build the index with one.")
        instr = instruction or embedder.spec.instruction
        if not instr:
            gr.Warning("This model has no default query instruction: type one in the instruction box "
                       "(Model & index tab) to compare.")
        base = session.config.with_(modes=("dense",), k=k, reranker=None)
        with_ = session.search(query, base.with_(instruction=instr)).table
        without = session.search(query, base.with_(instruction="")).table
    except ExplorerError as exc:
        raise fail(exc) from None
    result = compare_lists(list(with_["chunk_id"]), list(without["chunk_id"]), k)

    def change(chunk_id: str, rank: int, other: dict) -> str:
        if chunk_id not in other:
            return "only here"
        delta = int(other[chunk_id]) - int(rank)
        return f"▲ {delta}" if delta > 0 else f"▼ {-delta}" if delta < 0 else "="

    def table(t: pd.DataFrame, other: dict, other_label: str) -> pd.DataFrame:
        return pd.DataFrame({"rank": t["rank"].astype(int),
                             other_label: [str(int(other[c])) if c in other else "—" for c in t["chunk_id"]],
                             "change": [change(c, r, other) for c, r in zip(t["chunk_id"], t["rank"])],
                             "score": t["score"].round(4), "document": [cell(d) for d in t["doc_id"].astype(str)],
                             "chunk": t["chunk"].astype(int), "text": [highlight(snippet(x), query) for x in t["text"]]})

    n = len(with_)
    app.compare = result
    summary = (f"Instruction: {'“' + esc(instr) + '”' if instr else 'none'}. Overlap: <b>{result.overlap} of {n}</b> "
               f"top-{n} chunks shared (Jaccard {result.jaccard:.3f}, rank-biased overlap {result.rbo:.3f}); "
               f"{result.same_rank} at the same rank, {n - result.overlap} found only with the instruction.")
    return (table(with_, result.rank_in_b, "rank without"), table(without, result.rank_in_a, "rank with"),
            box("info", summary), app)


# --------------------------------------------------------------------------------------------------------- export

def export_results(state: Any = None):
    """The last results table (both rankings) as CSV, formula-looking cells neutralised."""
    app = app_state.get(state)
    ranking = app.current_ranking()
    if ranking is None:
        raise gr.Error("Search first: there are no results to export.")
    return write_csv(results_table(ranking, app.ranking_config), os.path.join(_tmpdir(app), "bge-explorer-results.csv"))


def export_chunks(state: Any = None):
    """The chunk table with one embedding per chunk (list of float32) and the model identity, as Parquet."""
    app = app_state.get(state)
    try:
        table = chunk_table(app.session)
    except ExplorerError as exc:
        raise fail(exc) from None
    path = os.path.join(_tmpdir(app), "bge-explorer-chunks.parquet")
    table.to_parquet(path, index=False)
    return path


def preload_default_model() -> str | None:
    """Load the default model once at start (offline: the packaged fallback); returns the fallback notice."""
    try:
        return load_embedder_with_fallback(DEFAULT_MODEL, **deployment_route())[1]
    except ExplorerError as exc:
        log.warning("default model not preloaded: %s", exc)
        return None
