"""The Gradio app: a thin layer over :class:`bge_explorer.session.Session`.

Every event handler is a module-level function of plain values plus the browser session's state
(a :class:`UISession`, created on first use), and returns plain values plus that state, so the
handlers are testable without a browser. User text (corpus, queries, file names, model paths,
error messages) reaches the page only as Dataframe text cells, Textbox values, or HTML that went
through :func:`esc` first.
"""
from __future__ import annotations

import html
import logging
import os
import re
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Sequence

import gradio as gr
import numpy as np
import pandas as pd

from bge_explorer.maps import projection

from bge_explorer.app import workspace
from bge_explorer.models.catalog import CATALOG, DEFAULT_MODEL, EMBEDDERS, RERANKERS
from bge_explorer.data.chunking import DEFAULT_OVERLAP, DEFAULT_SIZE
from bge_explorer.data.corpus import FORMATS
from bge_explorer.errors import ExplorerError, LimitError
from bge_explorer import settings
from bge_explorer.models.loading import load_embedder, load_embedder_with_fallback, load_reranker
from bge_explorer.retrieval.search import SearchResults
from bge_explorer.app.hybrid import FUSIONS, RETRIEVAL_MODES
from bge_explorer.session import Session

log = logging.getLogger(__name__)

SAMPLE_CORPUS = str(Path(__file__).resolve().parents[2] / "assets" / "sample_corpus.jsonl")
NO_RERANKER = "none"
INSTRUCTION_MODES = ["model default", "custom", "none"]
PREVIEW_ROWS = 500
TEXT_PREVIEW = 300
DEFAULT_K = 10
DEFAULT_TOP_N = 20
MAX_K = 1000
STOPWORDS = set("a an the of and or to in on at for by with is are was were be been it its this that what which who "
                "how when where why do does did from as".split())


# ----------------------------------------------------------------------------------------------------------- state

class UISession(Session):
    """One browser session: the engine's Session plus what the UI shows (last results, maps)."""

    def __init__(self) -> None:
        super().__init__()
        self.maps = projection.MapStore()
        self.results: SearchResults | None = None
        self.results_k = DEFAULT_K
        self.results_index: int | None = None  # id of the index the results came from
        self.query_vector: np.ndarray | None = None
        self.notice: str | None = None  # offline-fallback notice of the loaded model
        self.compare: dict[str, pd.DataFrame] = {}
        self.marked_query: str | None = None  # a query opened from the Evaluate tab ...
        self.marked: set[str] = set()  # ... and its relevant document ids, marked in the results
        self.workdir: str | None = None  # this session's private temporary directory (uploads, exports)

    def ensure_workdir(self) -> str:
        """This session's private directory, created on first use (and again if it was swept)."""
        if self.workdir is None or not os.path.isdir(self.workdir):
            workspace.sweep()  # directories of sessions idle past BGE_EXPLORER_SESSION_TTL_S go now
            self.workdir = workspace.new_dir()
        workspace.touch(self.workdir)
        return self.workdir

    def close(self) -> None:
        """The session ended: delete its files and drop what it holds."""
        workspace.remove(self.workdir)
        self.workdir = None
        self.set_corpus(None)  # type: ignore[arg-type]
        self.results, self.compare, self.query_vector = None, {}, None
        self.cache = type(self.cache)()

    def map_key(self) -> str:
        embedder, chunks, _ = self.require_index()
        return projection.vectors_key(self.vectors, embedder.cache_key)

    def current_results(self) -> SearchResults | None:
        """The last results, if they came from the index that is loaded now."""
        if self.results is not None and self.results_index == id(self.index):
            return self.results
        return None

    # ZeroGPU runs GPU functions in a forked process and pickles what they return: models are
    # process-wide, so a session travels without its embedder and finds it again in MODEL_CACHE.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        embedder = state.pop("embedder", None)
        if "_hybrid" in state:  # a cache that holds the embedder too; rebuilt on demand
            state["_hybrid"] = None
        state["_embedder_ref"] = (embedder.spec, embedder.device) if embedder is not None else None
        return state

    def __setstate__(self, state: dict) -> None:
        ref = state.pop("_embedder_ref", None)
        self.__dict__.update(state)
        self.embedder = load_embedder(ref[0], device=ref[1]) if ref else None


def get_session(state: Any) -> UISession:
    """The session held in a ``gr.State``: None until the first event of a browser session, and possibly a
    plain :class:`Session` put there by another tab (Evaluate), which is taken over with all it holds."""
    if isinstance(state, UISession):
        return state
    session = UISession()
    if isinstance(state, Session):
        session.__dict__.update(state.__dict__)
    return session


_LIVE: "weakref.WeakValueDictionary[str, UISession]" = weakref.WeakValueDictionary()  # session hash -> session


def remember(session: UISession, request: gr.Request | None) -> None:
    """Note which browser session owns ``session``, so that closing the tab deletes its files at once."""
    session_hash = getattr(request, "session_hash", None)
    if session_hash:
        _LIVE[session_hash] = session


def end_session(request: gr.Request = None) -> None:
    """``demo.unload``: the tab was closed; its session's files go now (Gradio drops the state itself later)."""
    session = _LIVE.pop(getattr(request, "session_hash", None) or "", None)
    if session is not None:
        session.close()


def drop_state(value: Any) -> None:
    """``gr.State(delete_callback=...)``: the state expired (idle past BGE_EXPLORER_SESSION_TTL_S) or was dropped."""
    if isinstance(value, UISession):
        value.close()
    elif isinstance(value, Session):
        value.set_corpus(None)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------------- helpers

def esc(text: object) -> str:
    """Escape user text for gr.HTML: HTML special characters and ``$`` (HTML templates use ``${}``)."""
    return html.escape(str(text), quote=True).replace("$", "&#36;").replace("`", "&#96;")


def query_terms(query: str) -> list[str]:
    """Words of the query worth highlighting: alphanumeric, 2+ characters, not stopwords; longest first."""
    words = {w.lower() for w in re.findall(r"\w+", query or "") if len(w) >= 2 and w.lower() not in STOPWORDS}
    return sorted(words, key=lambda w: (-len(w), w))


def highlight(text: str, query: str) -> str:
    """HTML of ``text`` with the query's words in <mark>: matches are found in the raw text and every
    piece is escaped on its own, so nothing in the text can become markup."""
    terms = query_terms(query)
    if not terms:
        return esc(text)
    pattern = re.compile(r"\b(" + "|".join(re.escape(t) for t in terms) + r")\w*", re.IGNORECASE)
    out, last = [], 0
    for match in pattern.finditer(text):
        out.append(esc(text[last:match.start()]))
        out.append(f"<mark>{esc(match.group(0))}</mark>")
        last = match.end()
    out.append(esc(text[last:]))
    return "".join(out)


def snippet(text: str, limit: int = TEXT_PREVIEW) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _fail(exc: Exception) -> gr.Error:
    """An engine error -> a gr.Error the page shows as a toast (the app keeps serving)."""
    return gr.Error(esc(exc), print_exception=False)


def _box(kind: str, body: str) -> str:
    """A status panel; ``body`` must already be safe HTML."""
    return f'<div class="bx-box bx-{kind}">{body}</div>'


def _tmpdir(session: "UISession | None" = None) -> str:
    """A fresh folder for output files: inside the session's private directory (deleted with the session)."""
    if session is None:
        return tempfile.mkdtemp(prefix="bge-explorer-")
    return tempfile.mkdtemp(prefix="export-", dir=session.ensure_workdir())


def _no_progress(*_args, **_kwargs) -> None:
    return None


def count_param(value: Any, label: str, limit: int) -> int:
    """A whole number between 1 and ``limit`` (BGE_EXPLORER_MAX_K), else LimitError naming the limit."""
    try:
        number = float(value)
        whole = int(number)
    except (TypeError, ValueError, OverflowError):
        raise LimitError(f"{label} must be a whole number between 1 and {limit:,}; got {str(value)[:40]!r}") from None
    if whole != number or not 1 <= whole <= limit:
        raise LimitError(f"{label} must be a whole number between 1 and {limit:,} (the limit BGE_EXPLORER_MAX_K); "
                         f"got {number:,.10g}")
    return whole


# -------------------------------------------------------------------------------------------------------- corpus

def _documents_preview(session: UISession) -> pd.DataFrame:
    docs = session.corpus.documents.head(PREVIEW_ROWS)
    return pd.DataFrame({
        "document": docs["doc_id"].astype(str), "title": docs["title"].astype(str), "source": docs["source"].astype(str),
        "characters": docs["text"].str.len().astype(int), "text": [snippet(t) for t in docs["text"]]})


def _corpus_summary(session: UISession) -> str:
    corpus = session.corpus
    files = corpus.sources
    body = (f"<b>{len(corpus.documents)}</b> documents from <b>{len(files)}</b> file(s): "
            f"{esc(', '.join(files[:10]))}{' …' if len(files) > 10 else ''}. "
            "Next: choose a model and build the index.")
    if len(corpus.documents) > PREVIEW_ROWS:
        body += f" (The preview shows the first {PREVIEW_ROWS}.)"
    for note in corpus.notes:
        body += f"<br>{esc(note)}"
    return _box("ok", body)


def _problems_text(session: UISession) -> str:
    return "\n".join(session.corpus.problems) if session.corpus and session.corpus.problems else ""


def load_corpus(files: Sequence[str] | str | None, text_column: str = "", id_column: str = "",
                title_column: str = "", state: Any = None, request: gr.Request = None):
    """Read uploaded files (bad files are skipped and named). -> (summary, documents, problems, state).

    The limits on files and size are checked before anything is read; the files are then copied into the
    session's private directory and read from there.
    """
    session = get_session(state)
    remember(session, request)
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    paths = [str(f) for f in (files or []) if f]
    if not paths:
        raise gr.Error("Choose one or more files to upload, or load the sample corpus.")
    try:
        session.limits.check_files(paths)
        if paths == [SAMPLE_CORPUS]:
            names = [os.path.basename(SAMPLE_CORPUS)]
        else:  # uploads: into this session's own directory, read from there
            paths, names = workspace.copy_in(paths, session.ensure_workdir())
        session.load_corpus(paths, names=names, on_error="skip", text_column=(text_column or "").strip() or None,
                            id_column=(id_column or "").strip() or None,
                            title_column=(title_column or "").strip() or None)
    except ExplorerError as exc:
        raise _fail(exc) from None
    except OSError as exc:
        raise gr.Error(esc(f"Cannot read the upload: {exc.strerror or exc}"), print_exception=False) from None
    session.results = None
    if session.corpus.problems:
        gr.Warning(esc(f"{len(session.corpus.problems)} problem(s) while reading: " +
                       "; ".join(session.corpus.problems[:3])), title="Some input was skipped")
    return _corpus_summary(session), _documents_preview(session), _problems_text(session), session


def load_sample(state: Any = None):
    """Load the bundled sample corpus. -> (summary, documents, problems, state)."""
    return load_corpus([SAMPLE_CORPUS], state=state)


# ---------------------------------------------------------------------------------------------- model and index

def model_info(model: str) -> str:
    """What is known about a model before loading it: dimension, default instruction, note."""
    name = (model or "").strip()
    spec = CATALOG.get(name)
    if spec is None:
        return _box("info", f"Custom model <b>{esc(name)}</b>: a Hub id or a local directory. Its dimension is "
                            "known once it is loaded; it has no default query instruction "
                            "(choose pooling and class below if it is not a BGE-style CLS encoder).")
    if spec.model_class == "reranker":
        return _box("warn", f"<b>{esc(name)}</b> is a reranker; choose it on the Search tab.")
    instruction = f"“{esc(spec.instruction)}”" if spec.instruction else "none"
    return _box("info", f"<b>{esc(spec.name)}</b> ({esc(spec.source)}): dimension {spec.dim}, pooling {spec.pooling}, "
                        f"max length {spec.max_length} tokens. Default query instruction: {instruction}. "
                        f"{esc(spec.note)}.")


def _load_model(model: str, pooling: str, model_class: str):
    name = (model or "").strip() or DEFAULT_MODEL
    options = {}
    if pooling and pooling != "auto":
        options["pooling"] = pooling
    if model_class and model_class != "auto":
        options["model_class"] = model_class
    if name in CATALOG:
        return load_embedder_with_fallback(name, **options)
    return load_embedder(name, **options), None


def loaded_model_html(session: UISession) -> str:
    embedder = session.embedder
    if embedder is None:
        return _box("info", "No model loaded yet.")
    spec = embedder.spec
    instruction = f"“{esc(spec.instruction)}”" if spec.instruction else "none"
    body = (f"Loaded: <b>{esc(spec.name)}</b> from {esc(spec.source)} — dimension {embedder.dim}, pooling "
            f"{spec.pooling}, max length {spec.max_length}, {esc(embedder.device)} / {esc(embedder.precision)}. "
            f"Default query instruction: {instruction}.")
    if session.notice:
        return _box("warn", f"<b>Offline fallback.</b> {esc(session.notice)}<br>{body}")
    return _box("ok", body)


def _chunks_preview(session: UISession) -> pd.DataFrame:
    table = session.chunks.table.head(PREVIEW_ROWS)
    return pd.DataFrame({"document": table["doc_id"].astype(str), "chunk": table["chunk"].astype(int),
                         "tokens": table["n_tokens"].astype(int), "text": [snippet(t) for t in table["text"]]})


def build_index(model: str = DEFAULT_MODEL, pooling: str = "auto", model_class: str = "auto",
                chunking: str = "tokens", chunk_size: float = DEFAULT_SIZE, overlap: float = DEFAULT_OVERLAP,
                state: Any = None, progress: Callable = gr.Progress()):
    """Load the model (shared process-wide), chunk with its tokenizer, embed what is not cached, index.

    -> (loaded model, status, default instruction, chunk preview, chunk counts, state).
    """
    session = get_session(state)
    if session.corpus is None:
        raise gr.Error("Load a corpus first (Corpus tab).")
    progress = progress or _no_progress
    started = time.monotonic()
    progress(0, desc="Loading model")
    try:
        embedder, notice = _load_model(model, pooling, model_class)
    except ExplorerError as exc:
        raise _fail(exc) from None
    if notice:
        gr.Warning(esc(notice), title="Offline fallback")
    size = None if chunking == "none" else int(chunk_size)

    def report(done: int, total: int) -> None:
        progress((done, total), desc="Embedding chunks", unit="chunks")

    before = embedder.corpus_texts_encoded
    try:
        chunks = session.build_index(embedder, chunk_size=size, overlap=int(overlap), progress=report)
    except ExplorerError as exc:
        raise _fail(exc) from None
    except ValueError as exc:  # chunk size / overlap out of range
        raise gr.Error(esc(exc)) from None
    session.notice, session.results, session.compare = notice, None, {}
    embedded = embedder.corpus_texts_encoded - before
    elapsed = time.monotonic() - started
    if settings.current().auto_umap:  # fit UMAP in the background after indexing
        session.maps.start_umap(session.map_key(), session.vectors)
    counts = (f"<b>{len(session.corpus.documents)}</b> documents → <b>{len(chunks)}</b> chunks "
              f"({'one per document' if size is None else f'up to {size} tokens, overlap {int(overlap)}'}); "
              f"{chunks.dropped_empty} empty chunk(s) dropped.")
    status = _box("ok", f"Index ready: {len(chunks)} chunks, {embedded} embedded now, {len(chunks) - embedded} "
                        f"from this session's cache, in {elapsed:.1f} s. Next: search.")
    return (loaded_model_html(session), status, embedder.spec.instruction, _chunks_preview(session), _box("info", counts),
            session)


# ------------------------------------------------------------------------------------------------------ search

def resolve_instruction(session: UISession, mode: str, text: str | None) -> str:
    """The instruction string a query is embedded with: the model's default, the custom text, or none."""
    embedder = session.require_index()[0]
    if mode == "none":
        return ""
    if mode == "custom":
        return text or ""
    return embedder.spec.instruction


def _reranker(name: str | None):
    name = (name or "").strip()
    if not name or name.lower() == NO_RERANKER:
        return None
    return load_reranker(name)


def movement_label(movement: Any, retrieval_rank: int, k: int, rescored: bool) -> str:
    """'▲ 3', '▼ 2', '=' or 'new' (came from below the top k); '·' for rows the reranker did not score."""
    if not rescored:
        return "·"
    if retrieval_rank > k:
        return f"new (was {retrieval_rank})"
    movement = int(movement)
    return f"▲ {movement}" if movement > 0 else f"▼ {-movement}" if movement < 0 else "="


def final_ranking(results: SearchResults, k: int) -> pd.DataFrame:
    """The ranking after reranking: the reranked top-n in reranker order, then the rest in retrieval order."""
    table = results.table
    reranked = table[table["rerank_rank"].notna()].sort_values("rerank_rank")
    rest = table[table["rerank_rank"].isna()]
    return pd.concat([reranked, rest]).head(k).reset_index(drop=True)


def _extra_columns(out: pd.DataFrame, table: pd.DataFrame, relevant: set[str] | None) -> pd.DataFrame:
    """After the text column: ``relevant`` (documents marked from the Evaluate tab) and a score and rank column
    per retrieval mode in play (hybrid modes)."""
    from bge_explorer.app.hybrid import mode_columns

    if relevant:
        out["relevant"] = ["✓ relevant" if d in relevant else "" for d in table["doc_id"].astype(str)]
    extra = mode_columns(table)
    for column in extra.columns:
        out[column] = extra[column].to_numpy()
    return out


def before_table(results: SearchResults, k: int, query: str, relevant: set[str] | None = None) -> pd.DataFrame:
    table = results.table.head(k)
    out = pd.DataFrame({"rank": table["rank"].astype(int), "document": table["doc_id"].astype(str),
                        "chunk": table["chunk"].astype(int), "score": table["score"].round(4)})
    out["reranked rank"] = [str(int(r)) if pd.notna(r) else "·" for r in table["rerank_rank"]]  # "·": not rescored
    out["text"] = [highlight(snippet(t), query) for t in table["text"]]
    out = _extra_columns(out, table, relevant)
    if getattr(results, "mode", "dense") == "hybrid":
        out = out.rename(columns={"rank": "fused rank", "score": "fused score"})
    return out


def after_table(results: SearchResults, k: int, query: str, relevant: set[str] | None = None) -> pd.DataFrame:
    if not results.reranker:
        return pd.DataFrame(columns=["rank", "movement", "retrieval rank", "logit", "sigmoid", "score", "document",
                                     "chunk", "text"])
    table = final_ranking(results, k)
    rescored = table["rerank_rank"].notna()
    out = pd.DataFrame({
        "rank": np.arange(1, len(table) + 1),
        "movement": [movement_label(m, int(r), k, bool(s))
                     for m, r, s in zip(table["movement"], table["rank"], rescored)],
        "retrieval rank": table["rank"].astype(int),
        "logit": table["rerank_logit"].round(4), "sigmoid": table["rerank_score"].round(4),
        "score": table["score"].round(4), "document": table["doc_id"].astype(str),
        "chunk": table["chunk"].astype(int), "text": [highlight(snippet(t), query) for t in table["text"]]})
    out = _extra_columns(out, table, relevant)
    if getattr(results, "mode", "dense") == "hybrid":
        out = out.rename(columns={"retrieval rank": "fused rank", "score": "fused score"})
    return out


def chunk_detail(row: pd.Series | dict, query: str, header: str = "") -> str:
    """The full chunk as safe HTML, query words highlighted."""
    title = f" — {esc(row['title'])}" if row.get("title") else ""
    return (f'<div class="bx-chunk"><div class="bx-chunk-head">{header}<b>{esc(row["doc_id"])}</b>{title} · '
            f'chunk {int(row["chunk"])}</div><div class="bx-chunk-text">{highlight(str(row["text"]), query)}</div></div>')


def search(query: str, instruction_mode: str = "model default", instruction: str = "", k: float = DEFAULT_K,
           reranker: str = NO_RERANKER, top_n: float = DEFAULT_TOP_N, state: Any = None,
           mode: str = "dense", fusion: str = "m3", w_dense: float = 0.4, w_sparse: float = 0.2,
           w_colbert: float = 0.4, w_bm25: float = 0.2):
    """Retrieve the top k; rerank the top n candidates when a reranker is chosen. Never re-embeds the corpus.

    ``mode``: dense (default), sparse, colbert, bm25 or hybrid; ``fusion`` and the weights (a weight of 0 leaves
    a mode out) apply to hybrid. The reranker applies after fusion. -> (before, after, summary, detail, state).
    """
    session = get_session(state)
    query = (query or "").strip()
    try:
        k = count_param(k, "k", session.limits.max_k)
        embedder = session.require_index()[0]
        instr = resolve_instruction(session, instruction_mode, instruction)
        rr = _reranker(reranker)
        top_n = count_param(top_n, "the reranker's candidates (top n)", session.limits.max_k) if rr else 1
        mode_note = ""
        if (mode or "dense") == "dense":
            results = session.search(query, instruction=instr, k=max(k, top_n) if rr else k, reranker=rr,
                                     top_n=top_n)
        else:
            from bge_explorer.app.hybrid import run_search, weights_of

            results, mode_note = run_search(session, query, mode, fusion,
                                            weights_of(w_dense, w_sparse, w_colbert, w_bm25), instr,
                                            max(k, top_n) if rr else k, rr, top_n)
        session.query_vector = embedder.encode_queries([query], instr)[0]
    except ExplorerError as exc:
        raise _fail(exc) from None
    session.results, session.results_k, session.results_index = results, k, id(session.index)
    shown = final_ranking(results, k) if rr else results.table.head(k)
    used = f"“{esc(instr)}”" if instr else "no instruction"
    summary = f"Query embedded with {used}; top {min(k, len(results.table))} of {len(session.chunks)} chunks"
    if mode_note:
        summary += f"; {mode_note}"
    relevant = session.marked if session.marked and session.marked_query == query else None
    if relevant:
        found = [d for d in relevant if d in set(results.table.head(k)["doc_id"].astype(str))]
        summary += (f"; relevant documents from the Evaluate tab: {len(found)} of {len(relevant)} in the top {k} "
                    "(column “relevant”)")
    if rr:
        n = int(results.table["rerank_rank"].notna().sum())
        moved = int((results.table["movement"].fillna(0) != 0).sum())
        summary += f"; {esc(rr.spec.name)} rescored the top {n} candidates ({moved} changed place)"
    detail = chunk_detail(shown.iloc[0], query, "Top result: ") if len(shown) else ""
    return (before_table(results, k, query, relevant), after_table(results, k, query, relevant),
            _box("info", summary + "."), detail, session)


def show_chunk(which: str, state: Any, evt: gr.SelectData):
    """The full text of the row selected in the 'before' or 'after' table."""
    session = get_session(state)
    results = session.current_results()
    if results is None or evt is None or evt.index is None:
        return gr.skip()
    row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    table = final_ranking(results, session.results_k) if which == "after" else results.table.head(session.results_k)
    if not 0 <= int(row) < len(table):
        return gr.skip()
    return chunk_detail(table.iloc[int(row)], results.query, f"{'Reranked' if which == 'after' else 'Retrieved'} "
                                                              f"#{int(row) + 1}: ")


def show_before_chunk(state: Any, evt: gr.SelectData):
    return show_chunk("before", state, evt)


def show_after_chunk(state: Any, evt: gr.SelectData):
    return show_chunk("after", state, evt)


def rerun_search(query, instruction_mode, instruction, k, reranker, top_n, state, *retrieval):
    """Re-run the current query when the instruction, k, reranker or retrieval mode changes (no query or index:
    nothing). ``retrieval``: mode, fusion and the four weights, as :func:`search` takes them."""
    session = get_session(state)
    if not (query or "").strip() or session.index is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), session
    return search(query, instruction_mode, instruction, k, reranker, top_n, session, *retrieval)


# ------------------------------------------------------------------------------------- hybrid: ColBERT, why

def retrieval_info(state: Any = None) -> str:
    """The retrieval panel: modes the index serves, memory per part, ColBERT's memory (estimate before on)."""
    from bge_explorer.app.hybrid import retrieval_info as info

    session = get_session(state)
    try:
        return _box("info", info(session))
    except ExplorerError as exc:
        return _box("warn", esc(exc))


def toggle_colbert(on: bool, state: Any = None, progress: Callable = gr.Progress()):
    """The ColBERT switch: build (on) or free (off) the token vectors. -> (switch, retrieval panel, state)."""
    from bge_explorer.app.hybrid import toggle_colbert as toggle

    session = get_session(state)
    progress = progress or _no_progress

    def report(done: int, total: int) -> None:
        progress((done, total), desc="ColBERT vectors", unit="chunks")

    try:
        value, body = toggle(session, bool(on), report)
    except ExplorerError as exc:
        raise _fail(exc) from None
    return value, _box("ok" if value or not on else "warn", body), session


def explain(rank: float = 1, state: Any = None):
    """"Why this match" for the current results' result at ``rank`` (retrieval / fused order, 1 = first).

    -> (summary HTML, lexical weights table, ColBERT heat map, ColBERT alignment table, BM25 terms table)."""
    from bge_explorer.app.hybrid import explain_view

    session = get_session(state)
    results = session.current_results()
    if results is None:
        raise gr.Error("Search first, then pick a result to explain.")
    try:
        summary, lexical, figure, alignment, bm25 = explain_view(session, results, int(rank or 1))
    except ExplorerError as exc:
        raise _fail(exc) from None
    return _box("info", summary), lexical, figure, alignment, bm25


def explain_selected(which: str, state: Any, evt: gr.SelectData):
    """A row picked in the 'before' or 'after' table -> its rank in retrieval order, and its explanation."""
    session = get_session(state)
    results = session.current_results()
    if results is None or evt is None or evt.index is None:
        return (gr.skip(),) * 6
    row = int(evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index)
    table = final_ranking(results, session.results_k) if which == "after" else results.table.head(session.results_k)
    if not 0 <= row < len(table):
        return (gr.skip(),) * 6
    rank = int(table.iloc[row]["rank"])
    return (rank, *explain(rank, session))


def explain_before(state: Any, evt: gr.SelectData):
    return explain_selected("before", state, evt)


def explain_after(state: Any, evt: gr.SelectData):
    return explain_selected("after", state, evt)


def open_evaluated_query(query: str, relevant: str, instruction_mode: str, instruction: str, k: float, reranker: str,
                         top_n: float, state: Any = None, *retrieval):
    """A per-query row picked in the Evaluate tab: open the Search tab on that query, with its relevant documents
    marked (column "relevant"). -> (tabs, query box, before, after, summary, detail, state)."""
    session = get_session(state)
    query = (query or "").strip()
    if not query:
        return (gr.skip(),) * 6 + (session,)
    session.marked_query = query
    session.marked = {d.strip() for d in (relevant or "").split(",") if d.strip()}
    if session.index is None:
        note = _box("warn", f"Build the index (Model &amp; index tab) to run “{esc(query)}”; its relevant documents "
                            f"({esc(', '.join(sorted(session.marked)) or 'none')}) will be marked.")
        return gr.Tabs(selected="search"), query, gr.skip(), gr.skip(), note, gr.skip(), session
    before, after, summary, detail, session = search(query, instruction_mode, instruction, k, reranker, top_n,
                                                     session, *retrieval)
    return gr.Tabs(selected="search"), query, before, after, summary, detail, session


# ---------------------------------------------------------------------------------------------- compare prefix

def compare_prefix(query: str, instruction: str = "", k: float = DEFAULT_K, state: Any = None):
    """The same query with and without the instruction (empty -> the model's default), side by side.

    -> (with instruction, without, summary, state).
    """
    session = get_session(state)
    query = (query or "").strip()
    try:
        k = count_param(k, "k", session.limits.max_k)
        embedder = session.require_index()[0]
        instr = instruction or embedder.spec.instruction
        if not instr:
            gr.Warning("This model has no default query instruction: type one in the instruction box "
                       "(Model & index tab) to compare.")
        with_ = session.search(query, instruction=instr, k=k).table
        without = session.search(query, instruction="", k=k).table
    except ExplorerError as exc:
        raise _fail(exc) from None
    rank_without = dict(zip(without["chunk_id"], without["rank"]))
    rank_with = dict(zip(with_["chunk_id"], with_["rank"]))

    def change(chunk_id: str, rank: int, other: dict) -> str:
        if chunk_id not in other:
            return "only here"
        delta = int(other[chunk_id]) - int(rank)
        return f"▲ {delta}" if delta > 0 else f"▼ {-delta}" if delta < 0 else "="

    def table(t: pd.DataFrame, other: dict, other_label: str) -> pd.DataFrame:
        return pd.DataFrame({"rank": t["rank"].astype(int),
                             other_label: [str(int(other[c])) if c in other else "—" for c in t["chunk_id"]],
                             "change": [change(c, r, other) for c, r in zip(t["chunk_id"], t["rank"])],
                             "score": t["score"].round(4), "document": t["doc_id"].astype(str),
                             "chunk": t["chunk"].astype(int), "text": [highlight(snippet(x), query) for x in t["text"]]})

    shared = len(set(with_["chunk_id"]) & set(without["chunk_id"]))
    same_order = sum(1 for c, r in rank_with.items() if rank_without.get(c) == r)
    n = len(with_)
    session.compare = {"with": with_, "without": without}
    summary = (f"Instruction: {'“' + esc(instr) + '”' if instr else 'none'}. Overlap: <b>{shared} of {n}</b> "
               f"top-{n} chunks shared; {same_order} at the same rank, {n - shared} found only with the instruction.")
    return (table(with_, rank_without, "rank without"), table(without, rank_with, "rank with"), _box("info", summary),
            session)


# ------------------------------------------------------------------------------------------------------------ map

def _marks(session: UISession) -> tuple[list[int], list[int], str | None, np.ndarray | None]:
    results = session.current_results()
    if results is None:
        return [], [], None, None
    k = session.results_k
    retrieved = [int(r) for r in results.row_ids[:k]]
    reranked: list[int] = []
    if results.reranker:
        table = results.table
        order = table.index[table["rerank_rank"].notna()][np.argsort(table["rerank_rank"].dropna().to_numpy())]
        reranked = [int(results.row_ids[i]) for i in order[:k]]
    return retrieved, reranked, results.query, session.query_vector


def _figure(session: UISession, proj: projection.Projection, color_by: str):
    retrieved, reranked, query, qvec = _marks(session)
    labels = projection.clusters(session.vectors) if color_by == "cluster" else None
    query_xy = proj.transform(qvec[None, :]) if qvec is not None else None
    return projection.map_figure(proj, session.chunks.table, color_by=color_by, cluster_labels=labels, query=query,
                                 query_xy=query_xy, retrieved=retrieved, reranked=reranked)


def map_view(color_by: str = "document", state: Any = None):
    """The map (generator): a PCA preview at once, then UMAP (fitted once per corpus and model) with the
    last query drawn and its top-k / reranked top-n marked. Yields (figure, status, state)."""
    session = get_session(state)
    try:
        key = session.map_key()
    except ExplorerError as exc:
        raise _fail(exc) from None
    color_by = color_by if color_by in ("document", "cluster") else "document"
    ready = session.maps.ready(key)
    if ready is None:
        pca = session.maps.pca(key, session.vectors)
        yield (_figure(session, pca, color_by),
               _box("info", "PCA preview. UMAP is computing (the first map in a fresh process also compiles "
                            "numba code)…"), session)
        try:
            ready = session.maps.umap(key, session.vectors)
        except RuntimeError as exc:
            yield gr.skip(), _box("warn", f"UMAP failed, the PCA map stays: {esc(exc)}"), session
            return
    note = f" ({esc(ready.note)})" if ready.note else ""
    label = "UMAP" if ready.kind == "umap" else "PCA"
    marks = " Query: star; retrieved top-k: open circles; reranked top-n: red diamonds." \
        if session.current_results() is not None else " Search to see the query on the map."
    yield (_figure(session, ready, color_by), _box("ok", f"{label} map of {len(ready.coords)} chunks{note}; "
                                                          f"computed once, reused for every query.{marks}"), session)


def export_map(color_by: str = "document", state: Any = None):
    """The current map as a self-contained HTML file, and as PNG when kaleido is installed. -> (files, note)."""
    session = get_session(state)
    try:
        key = session.map_key()
    except ExplorerError as exc:
        raise _fail(exc) from None
    proj = session.maps.ready(key) or session.maps.pca(key, session.vectors)
    fig = _figure(session, proj, color_by if color_by in ("document", "cluster") else "document")
    folder = _tmpdir(session)
    files = [projection.export_html(fig, os.path.join(folder, "bge-explorer-map.html"))]
    png = projection.export_png(fig, os.path.join(folder, "bge-explorer-map.png"))
    if png:
        files.append(png)
        note = "HTML and PNG ready."
    else:
        note = ("HTML ready. PNG export needs the kaleido package on the server; the camera icon in the map's "
                "toolbar saves a PNG from the browser.")
    return files, _box("info", note)


# --------------------------------------------------------------------------------------------------------- export

def export_results(state: Any = None):
    """The last results table (both rankings) as CSV."""
    session = get_session(state)
    results = session.current_results()
    if results is None:
        raise gr.Error("Search first: there are no results to export.")
    path = os.path.join(_tmpdir(session), "bge-explorer-results.csv")
    table = results.table.copy()
    table.insert(0, "query", results.query)
    table.insert(1, "instruction", results.instruction)
    table.insert(2, "reranker", results.reranker or "")
    table.to_csv(path, index=False)
    return path


def export_chunks(state: Any = None):
    """The chunk table with one embedding per chunk (list of float32) as Parquet."""
    session = get_session(state)
    try:
        embedder, chunks, _ = session.require_index()
    except ExplorerError as exc:
        raise _fail(exc) from None
    table = chunks.table.copy()
    table["embedding"] = list(session.vectors.astype(np.float32))
    table["model"] = embedder.spec.name
    path = os.path.join(_tmpdir(session), "bge-explorer-chunks.parquet")
    table.to_parquet(path, index=False)
    return path


# ------------------------------------------------------------------------------------------------------------ app

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
    from bge_explorer.app.evaluate import build_evaluate_tab

    embedder_choices = [name for name in EMBEDDERS]
    config = settings.current()
    limits = config.limits
    ttl = workspace.session_ttl_s()
    models = dict(concurrency_id="models", concurrency_limit=config.models_concurrency())  # every event that runs a model
    # Gradio's own copies of uploads and outputs (in GRADIO_TEMP_DIR) are deleted once older than the session TTL.
    with gr.Blocks(title="BGE Explorer", analytics_enabled=False, fill_width=True,
                   delete_cache=(int(max(60, min(600, ttl))), int(max(60, ttl)))) as demo:
        # One UISession per browser session; dropped (files deleted) after `ttl` idle seconds or when the tab closes.
        state = gr.State(None, time_to_live=ttl, delete_callback=drop_state)
        gr.Markdown(INTRO)
        gr.Markdown(esc(config.describe()), elem_id="limits")
        loaded_model = gr.HTML(_box("info", "No model loaded yet."), elem_id="loaded-model")
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
                build_btn = gr.Button("Build index", variant="primary", elem_id="build-index")
                index_status = gr.HTML(elem_id="index-status")

            with gr.Tab("Search", id="search") as search_tab:
                with gr.Row():
                    query = gr.Textbox(label="Query", placeholder="Ask something about your documents",
                                       scale=4, elem_id="query")
                    search_btn = gr.Button("Search", variant="primary", scale=1, elem_id="search-btn")
                with gr.Row():
                    k = gr.Slider(1, limits.max_k, value=DEFAULT_K, step=1, label="Top k")
                    reranker = gr.Dropdown([NO_RERANKER] + RERANKERS, value=NO_RERANKER, allow_custom_value=True,
                                           label="Reranker (catalog, Hub id or local path)", elem_id="reranker")
                    top_n = gr.Slider(1, limits.max_k, value=DEFAULT_TOP_N, step=1,
                                      label="Candidates the reranker rescores")
                with gr.Accordion("Retrieval mode: dense, sparse, ColBERT, BM25, hybrid", open=False,
                                  elem_id="retrieval-mode"):
                    with gr.Row():
                        retrieval = gr.Radio(RETRIEVAL_MODES, value="dense", label="Mode", elem_id="mode",
                                             info="sparse and ColBERT need a BGE-M3 model; BM25 works with any")
                        fusion = gr.Radio(FUSIONS, value="m3", label="Hybrid fusion", elem_id="fusion",
                                          info="m3: BGE-M3's weighted sum of raw scores; weighted: min-max "
                                               "normalised; rrf: reciprocal rank fusion")
                    with gr.Row():
                        w_dense = gr.Slider(0, 1, value=0.4, step=0.05, label="dense weight")
                        w_sparse = gr.Slider(0, 1, value=0.2, step=0.05, label="sparse weight")
                        w_colbert = gr.Slider(0, 1, value=0.4, step=0.05, label="ColBERT weight")
                        w_bm25 = gr.Slider(0, 1, value=0.2, step=0.05, label="BM25 weight",
                                           info="weighted / rrf only; 0 leaves a mode out")
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
                    compare_k = gr.Slider(1, limits.max_k, value=DEFAULT_K, step=1, label="Top k")
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
        build_btn.click(gpu(build_index, 300), [model, pooling, model_class, chunking, chunk_size, overlap, state],
                        [loaded_model, index_status, instruction, chunks_df, chunk_counts, state],
                        api_name="build_index", **models)
        retrieval_inputs = [retrieval, fusion, w_dense, w_sparse, w_colbert, w_bm25]
        search_inputs = [query, instruction_mode, instruction, k, reranker, top_n, state, *retrieval_inputs]
        search_outputs = [before, after, search_summary, detail, state]
        gr.on([search_btn.click, query.submit], gpu(search), search_inputs, search_outputs, api_name="search",
              **models)
        gr.on([instruction_mode.input, k.release, top_n.release, reranker.input, retrieval.input, fusion.input,
               w_dense.release, w_sparse.release, w_colbert.release, w_bm25.release], gpu(rerun_search), search_inputs,
              search_outputs, api_visibility="private", trigger_mode="always_last", **models)
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
                         api_name="colbert", **models)
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
        demo.unload(end_session)
    return demo


def preload_default_model() -> str | None:
    """Load the default model once at start (offline: the packaged fallback); returns the fallback notice."""
    try:
        return load_embedder_with_fallback(DEFAULT_MODEL)[1]
    except ExplorerError as exc:
        log.warning("default model not preloaded: %s", exc)
        return None
