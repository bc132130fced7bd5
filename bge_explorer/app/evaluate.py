"""The Evaluate tab: labelled queries in, metrics of configuration A (and optionally B) out.

Handlers are plain module-level functions (testable without a browser); ``build_evaluate_tab`` wires
them to components. User text (queries, ids, file names) is shown as text, never as HTML.
"""
from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Any, Callable

import gradio as gr
import pandas as pd

from bge_explorer import settings
from bge_explorer.app.components import number_input
from bge_explorer.app import choices, state as app_state, workspace
from bge_explorer.app.hybrid import mode_choices
from bge_explorer.app.render import fail, label
from bge_explorer.app.state import AppState
from bge_explorer.data.chunking import DEFAULT_OVERLAP
from bge_explorer.data.qrels import Benchmark, Judgments
from bge_explorer.data.uploads import load_uploaded
from bge_explorer.errors import Cancelled, ExplorerError
from bge_explorer.evaluation.evaluate import EvaluationResult, evaluate as evaluate_config
from bge_explorer.evaluation.significance import KEY_METRICS, ABResult, run_ab
from bge_explorer.exports import write_csv
from bge_explorer.models.backends import deployment_route
from bge_explorer.models.catalog import DEFAULT_MODEL
from bge_explorer.models.loading import load_embedder_with_fallback
from bge_explorer.retrieval import modes as registry
from bge_explorer.retrieval.config import AUTO, DEFAULT_TOP_N, HYBRID, RetrievalConfig, parse_modes, parse_weights
from bge_explorer.retrieval.fusion import FUSIONS

INSTRUCTION_MODES = ["model's own", "none", "custom"]
NO_RERANKER = "none"  # as on the Search tab
MAX_TOP_N = 100
EXPLAINER = (
    "Upload labelled queries: a BEIR zip (corpus.jsonl, queries.jsonl, qrels/<split>.tsv), or queries.jsonl with a "
    "qrels .tsv, or a CSV of `query,relevant_doc_id[,score]` for the corpus loaded in the Search tab. Judgments "
    "refer to documents: when the corpus is chunked, **a document's score is the best score of its chunks**. "
    "Metrics: nDCG (graded), Recall, MRR and MAP at 1, 3, 5, 10 and 100, as trec_eval computes them. A and B can "
    "each use any retrieval mode (dense, sparse, ColBERT, BM25, hybrid), so \"does hybrid beat dense on my data?\" "
    "gets numbers. A/B: a paired "
    "randomisation test per metric (p-value) and a 95% bootstrap interval of B - A. Configurations that share a "
    "model and chunking embed the corpus once.")


# ---------------------------------------------------------------------------------------------------------
# Handlers


def make_config(model: str, instruction_mode: str, instruction: str, reranker: str | None, top_n: float | int,
                chunk_size: float | int | None, mode: str = "dense", fusion: str = AUTO,
                weights: str = "") -> RetrievalConfig:
    """UI fields -> a :class:`RetrievalConfig`. ``chunk_size`` 0 or empty: whole documents; chunks overlap by
    a quarter of their size, at most 32 tokens. ``weights`` text like ``dense=0.4, bm25=0.2``; for ``hybrid``
    the modes named with a weight above 0 are the ones fused."""
    limits = settings.current().limits
    model = limits.check_field((model or "").strip(), "the model") or DEFAULT_MODEL
    text = {"none": "", "custom": instruction or ""}.get(instruction_mode)
    reranker = limits.check_field((reranker or "").strip(), "the reranker")
    reranker = None if reranker.lower() in ("", NO_RERANKER) else reranker
    top_n = int(top_n or DEFAULT_TOP_N)
    if reranker and not 1 <= top_n <= MAX_TOP_N:
        raise ExplorerError(f"The reranker's top n must be between 1 and {MAX_TOP_N}.")
    size = int(chunk_size) if chunk_size else None
    if size is not None and size < 8:
        raise ExplorerError("The chunk size must be at least 8 tokens (or 0 for whole documents).")
    modes = parse_modes(mode if mode in mode_choices() else "dense")
    weight_map = parse_weights(weights, ("dense", "sparse", "colbert")) or {}
    if modes == (HYBRID,) and weight_map and "=" in (weights or ""):
        modes = tuple(m for m in registry.names() if weight_map.get(m, 0) > 0)
    return RetrievalConfig(model=model, instruction=text, reranker=reranker, top_n=top_n, chunk_size=size,
                           overlap=min(DEFAULT_OVERLAP, size // 4) if size else DEFAULT_OVERLAP, modes=modes,
                           fusion=fusion if fusion in (AUTO, *FUSIONS) else AUTO,
                           weights={m: w for m, w in weight_map.items() if modes == (HYBRID,) or m in modes},
                           **deployment_route())


def summary_table(result: EvaluationResult) -> pd.DataFrame:
    """Mean metrics, one row per metric: retrieval and (with a reranker) reranked, 4 decimals."""
    return result.summary().round(4).reset_index()


def comparison_table(ab: ABResult) -> pd.DataFrame:
    t = ab.comparison.table
    return pd.DataFrame({
        "metric": t.index, "A": t["A"].round(4), "B": t["B"].round(4), "B - A": t["diff"].round(4),
        "95% CI low": t["ci_low"].round(4), "95% CI high": t["ci_high"].round(4), "p": t["p_value"].round(4),
        "B wins": t["wins"], "ties": t["ties"], "B losses": t["losses"]})


def per_query_table(a: EvaluationResult, b: EvaluationResult | None = None,
                    judgments: Judgments | None = None) -> pd.DataFrame:
    """Per query: id, text, its relevant documents, rank of the first relevant document (before/after
    reranking) and nDCG@10; with B also B's and the difference."""
    pa = a.per_query()
    out = pd.DataFrame({"query_id": pa["query_id"], "query": pa["query"]})
    if judgments is not None:
        out["relevant documents"] = [", ".join(d for d, s in judgments.qrels[q].items() if s >= 1)
                                     for q in pa["query_id"]]
    out["A first relevant"] = pa["first_relevant"]
    if "first_relevant_reranked" in pa:
        out["A first relevant, reranked"] = pa["first_relevant_reranked"]
    out["A ndcg@10"] = a.final["ndcg@10"].to_numpy().round(4)
    if b is not None:
        pb = b.per_query()
        out["B first relevant"] = pb["first_relevant"]
        if "first_relevant_reranked" in pb:
            out["B first relevant, reranked"] = pb["first_relevant_reranked"]
        out["B ndcg@10"] = b.final["ndcg@10"].to_numpy().round(4)
        out["B - A ndcg@10"] = (out["B ndcg@10"] - out["A ndcg@10"]).round(4)
    return out


def write_downloads(a: EvaluationResult, ab: ABResult | None, app: AppState) -> list[str]:
    """Per-query CSV and full JSON in a fresh folder inside the session's private directory; their paths."""
    folder = Path(tempfile.mkdtemp(prefix="eval-", dir=app.ensure_workdir()))
    csv_path, json_path = folder / "evaluation_per_query.csv", folder / "evaluation.json"
    if ab is None:
        write_csv(a.per_query(), str(csv_path))
        payload = a.to_dict()
    else:
        per_query = ab.a.per_query().add_prefix("A ").rename(columns={"A query_id": "query_id", "A query": "query"})
        per_query = pd.concat([per_query, ab.b.per_query().drop(columns=["query_id", "query"]).add_prefix("B ")],
                              axis=1)
        write_csv(per_query, str(csv_path))
        payload = ab.to_dict()
    json_path.write_text(json.dumps(payload, indent=1, ensure_ascii=False), encoding="utf-8")
    return [str(csv_path), str(json_path)]


def status_text(a: EvaluationResult, b: EvaluationResult | None, notes: list[str]) -> str:
    c = a.config
    lines = [f"{c['queries']} queries, {c['documents']} documents. Document score: {c['document_score']}."]
    for tag, r in (("A", a), ("B", b)):
        if r is None:
            continue
        timing = ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in r.timings.items())
        lines.append(f"{tag}: {r.label} (instruction {r.config['instruction']!r}; "
                     f"{r.config['passages_embedded']} passages embedded; {timing})")
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)


def evaluate(state, files, split: str,
                   a_model: str, a_instruction_mode: str, a_instruction: str, a_reranker: str, a_top_n, a_chunk,
                   compare: bool, b_model: str, b_instruction_mode: str, b_instruction: str, b_reranker: str,
                   b_top_n, b_chunk, metric: str = "ndcg@10", a_mode: str = "dense", a_fusion: str = AUTO,
                   a_weights: str = "", b_mode: str = "dense", b_fusion: str = AUTO, b_weights: str = "",
                   progress=gr.Progress(), request: gr.Request = None):
    """Evaluate a retrieval configuration (A), optionally against a second one (B), on labelled queries:
    nDCG, recall, MRR and MAP at 1-100, and for A/B a paired randomisation test and a 95% interval per metric.
    Returns (state, status, A table, B table, A/B table, per-query table, chart, downloads).

    Args:
        files: a BEIR zip (corpus.jsonl, queries.jsonl, qrels/<split>.tsv), or queries.jsonl with a qrels .tsv,
            or a CSV of query,relevant_doc_id[,score] for the session's corpus.
        split: the qrels split of a BEIR zip, e.g. "test".
        a_model: A's embedding model: a catalog name, Hub id or local directory.
        a_instruction_mode: "model's own", "none" or "custom".
        a_instruction: A's custom query instruction.
        a_reranker: A's reranker, or "none".
        a_top_n: how many documents A's reranker rescores.
        a_chunk: A's chunk size in tokens; 0 for whole documents.
        compare: whether to evaluate B too and compare.
        b_model: B's embedding model.
        b_instruction_mode: B's instruction mode.
        b_instruction: B's custom instruction.
        b_reranker: B's reranker, or "none".
        b_top_n: B's rerank depth.
        b_chunk: B's chunk size (0: whole documents).
        metric: the metric of the per-query difference chart.
        a_mode: A's retrieval mode (dense, sparse, colbert, bm25, hybrid).
        a_fusion: A's hybrid fusion (auto, rrf, weighted, m3).
        a_weights: A's hybrid weights, e.g. "dense=0.4, bm25=0.6".
        b_mode: B's retrieval mode.
        b_fusion: B's hybrid fusion.
        b_weights: B's hybrid weights.
    """
    app = app_state.get(state)
    session = app.session
    try:
        bench = load_uploaded(workspace.upload_paths(files), split, session.limits)
        own_corpus = bench.corpus is not None
        if not own_corpus:
            if session.corpus is None:
                raise ExplorerError("These judgments have no corpus: load the corpus in the Search tab first, or "
                                    "upload a BEIR zip (or corpus.jsonl) with them.")
            bench = Benchmark(session.corpus, bench.judgments, "", "")
        config_a = make_config(a_model, a_instruction_mode, a_instruction, a_reranker, a_top_n, a_chunk,
                               a_mode, a_fusion, a_weights)
        config_b = make_config(b_model, b_instruction_mode, b_instruction, b_reranker, b_top_n, b_chunk,
                               b_mode, b_fusion, b_weights) if compare else None
        config_a, config_b = _with_fallback(config_a), _with_fallback(config_b) if config_b else None
        if not any((config_a.chunk_size, config_b and config_b.chunk_size)):
            session.limits.check_chunks(len(bench.corpus.documents))
        work = session.child(bench.corpus) if own_corpus else session  # shares the caches: nothing encoded twice

        def report(stage: str, done: int, total: int) -> None:
            app.check_cancelled()
            progress(done / max(total, 1), desc=f"{stage} {done}/{total}")

        with app_state.running(app, request):
            if config_b is None:
                a, ab, b = evaluate_config(work, bench.judgments, config_a, progress=report), None, None
            else:
                ab = run_ab(work, bench.judgments, config_a, config_b, progress=report)
                a, b = ab.a, ab.b
        if own_corpus:
            session.set_corpus(bench.corpus)  # the Search tab now shows the evaluated corpus
    except Cancelled:
        return (app, "Stopped.") + (gr.skip(),) * 6
    except ExplorerError as exc:
        raise fail(exc) from None
    app.evaluated = "ab" if ab else "a"
    figure = ab.comparison.figure(metric if metric in ab.comparison.table.index else "ndcg@10") if ab else None
    return (app, status_text(a, b, a.notes),
            summary_table(a), summary_table(b) if b is not None else None,
            comparison_table(ab) if ab else None, per_query_table(a, b, bench.judgments), figure,
            write_downloads(a, ab, app))


def _with_fallback(config: RetrievalConfig) -> RetrievalConfig:
    """The default model, or the packaged offline one when it cannot be had (said in a toast)."""
    if config.model != DEFAULT_MODEL or not config.needs_model:
        return config
    embedder, notice = load_embedder_with_fallback(DEFAULT_MODEL, backend=config.backend,
                                                  precision=config.precision)
    if notice:
        gr.Warning(label(notice), title="Offline fallback")
    return config.with_(model=embedder.spec.name)


def same_model_with_and_without_instruction(a_model: str, a_reranker: str, a_top_n, a_chunk):
    """The one-click question: B = A's model, reranker and chunking; A with the model's instruction, B without."""
    return ("model's own", "", True, a_model, "none", "", a_reranker, a_top_n, a_chunk)


def pick_query(table: pd.DataFrame | None, evt: gr.SelectData) -> tuple[str, str]:
    """A click on the per-query table -> (the query text, its relevant document ids, comma-separated)."""
    if table is None or evt is None or evt.index is None or len(table) == 0:
        return "", ""
    row = table.iloc[int(evt.index[0])]
    return str(row.get("query", "")), str(row.get("relevant documents", ""))


def stop_work(state=None) -> str:
    """The Stop button: the evaluation in flight ends at its next batch."""
    app_state.get(state).cancel()
    return "Stopping at the next batch…"


def on_instruction_mode(mode: str):
    return gr.update(visible=mode == "custom")


# ---------------------------------------------------------------------------------------------------------
# Layout


def _config_column(tag: str):
    model = gr.Dropdown(choices.choices("model"), value=DEFAULT_MODEL, label=f"{tag}: embedding model", allow_custom_value=True,
                        info="catalog name, Hub id or local directory (offline: the packaged all-MiniLM-L6-v2)")
    mode = gr.Radio(INSTRUCTION_MODES, value="model's own", label=f"{tag}: query instruction")
    text = gr.Textbox("", label=f"{tag}: custom instruction", visible=False,
                      placeholder="prepended to every query, exactly as typed (end it with a space)")
    reranker = gr.Dropdown(choices.choices("reranker"), value=NO_RERANKER, label=f"{tag}: reranker",
                           allow_custom_value=True)
    top_n = number_input(DEFAULT_TOP_N, label=f"{tag}: rerank top n documents", precision=0, minimum=1,
                      maximum=MAX_TOP_N)
    chunk = number_input(0, label=f"{tag}: chunk size in tokens (0 = whole documents, truncated at the model's max)",
                      precision=0, minimum=0)
    mode.change(on_instruction_mode, mode, text, api_visibility="private")
    return model, mode, text, reranker, top_n, chunk


def _retrieval_column(tag: str):
    """Mode, fusion and weights of one configuration (kept apart from the fields the one-click setup fills)."""
    mode = gr.Radio(mode_choices(), value="dense", label=f"{tag}: retrieval mode",
                    info="sparse / colbert: BGE-M3 models; bm25: no model needed (whole documents)")
    fusion = gr.Dropdown([(AUTO, AUTO), *((f"{n}: {f.label}", n) for n, f in FUSIONS.items())], value=AUTO,
                         label=f"{tag}: hybrid fusion",
                      info="auto: BGE-M3's weighted sum for an M3 model's own modes, else rrf")
    weights = gr.Textbox("", label=f"{tag}: hybrid weights", placeholder="e.g. dense=0.4, sparse=0.2, colbert=0.4 "
                         "(empty: the model's modes with default weights; named modes are the ones fused)")
    return mode, fusion, weights


def build_evaluate_tab(session_state: gr.State, gate: Callable[[str], Any] | None = None):
    """Lay out the Evaluate tab inside the caller's ``with gr.Tab(...)``; wire it to ``session_state``.
    ``gate(name)``: the page's empty state for the results (``evaluate``) and B's (``evaluate_b``), a context to
    lay them out in (default: always shown).

    Returns a dict of the main components for cross-tab wiring: a click on a row of ``per_query`` fills
    ``selected_query`` (query text) and ``selected_relevant`` (its relevant document ids, comma-separated);
    chain ``selected_query.change(...)`` to run it in the Search tab with those documents marked.
    """
    gr.Markdown(EXPLAINER)
    with gr.Row():
        files = gr.File(label="Labelled queries (BEIR zip, queries.jsonl + qrels .tsv [+ corpus.jsonl], or CSV)",
                        file_count="multiple", file_types=[".zip", ".jsonl", ".tsv", ".csv"], type="filepath")
        with gr.Column():
            split = gr.Textbox("test", label="qrels split (BEIR zip)")
            same = gr.Button("Same model, with and without the instruction")
    with gr.Row():
        with gr.Column():
            a_fields = _config_column("A")
            a_retrieval = _retrieval_column("A")
        with gr.Column():
            compare = gr.Checkbox(False, label="Compare with configuration B")
            b_fields = _config_column("B")
            b_retrieval = _retrieval_column("B")
    with gr.Row():
        metric = gr.Dropdown(list(KEY_METRICS) + ["ndcg@1", "ndcg@5", "ndcg@100", "recall@10", "mrr@100"],
                             value="ndcg@10", label="Metric for the A/B chart")
        run = gr.Button("Evaluate", variant="primary")
    status = gr.Textbox(label="Status", interactive=False, lines=3)
    gate = gate or (lambda _name: contextlib.nullcontext())
    with gate("evaluate"):
        with gr.Row():
            a_table = gr.Dataframe(label="A: mean metrics", interactive=False)
            with gr.Column():
                with gate("evaluate_b"):
                    b_table = gr.Dataframe(label="B: mean metrics", interactive=False)
                    ab_table = gr.Dataframe(label="A/B: B - A with paired randomisation test", interactive=False)
                    chart = gr.Plot(label="Per-query difference")
        per_query = gr.Dataframe(label="Per query (click a row to pick its query)", interactive=False,
                                 max_height=500)
        with gr.Row():
            selected_query = gr.Textbox("", label="Picked query", interactive=False)
            selected_relevant = gr.Textbox("", label="Its relevant documents", interactive=False)
        downloads = gr.File(label="Download (CSV per query, JSON everything)", file_count="multiple",
                            interactive=False)

    same.click(same_model_with_and_without_instruction, [a_fields[0], a_fields[3], a_fields[4], a_fields[5]],
               [a_fields[1], a_fields[2], compare, *b_fields], api_visibility="private")
    event = run.click(evaluate, [session_state, files, split, *a_fields, compare, *b_fields, metric, *a_retrieval,
                               *b_retrieval],
              [session_state, status, a_table, b_table, ab_table, per_query, chart, downloads],
              api_name="evaluate", concurrency_id="models", concurrency_limit=settings.current().models_concurrency())
    per_query.select(pick_query, per_query, [selected_query, selected_relevant], api_visibility="private")
    stop = gr.Button("Stop", elem_id="stop-evaluate", size="sm")
    stop.click(stop_work, [session_state], [status], cancels=[event], queue=False, api_visibility="private")
    return {"files": files, "status": status, "per_query": per_query, "chart": chart, "run": run, "event": event,
            "selected_query": selected_query, "selected_relevant": selected_relevant}
