"""The Evaluate tab: labelled queries in, metrics of configuration A (and optionally B) out.

Handlers are plain module-level functions (testable without a browser); ``build_evaluate_tab`` wires
them to components. User text (queries, ids, file names) is shown as text, never as HTML.
"""
from __future__ import annotations

import html
import json
import os
import tempfile
from pathlib import Path
from typing import Sequence

import gradio as gr
import pandas as pd

from bge_explorer.evaluation.significance import KEY_METRICS, ABResult, run_ab
from bge_explorer.models.catalog import EMBEDDERS, OFFLINE_MODEL, RERANKERS
from bge_explorer.data.chunking import DEFAULT_OVERLAP
from bge_explorer.data.corpus import load_corpus
from bge_explorer.errors import ExplorerError
from bge_explorer.evaluation.evaluate import DEFAULT_EVAL_TOP_N, EvalConfig, EvaluationResult, evaluate
from bge_explorer import settings
from bge_explorer.settings import Limits
from bge_explorer.data.qrels import Benchmark, Judgments, combine, load_beir, read_qrels_csv, read_qrels_tsv, read_queries
from bge_explorer.session import Session
from bge_explorer.app.hybrid import FUSIONS, RETRIEVAL_MODES

INSTRUCTION_MODES = ["model's own", "none", "custom"]
NO_RERANKER = "(none)"
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


def _name(path: str) -> str:
    return os.path.basename(str(path))


def load_uploads(session: Session, files: Sequence[str] | None, split: str = "test",
                 limits: Limits | None = None) -> tuple[Benchmark, bool]:
    """Uploaded files -> the benchmark to evaluate on, and whether it brought its own corpus.

    Accepted: one BEIR ``.zip``; ``corpus.jsonl`` (optional) + ``queries.jsonl`` + a qrels ``.tsv``; or a
    ``.csv`` of query,relevant_doc_id[,score]. Without a corpus file the session's corpus is used.
    """
    limits = limits or settings.current().limits
    paths = [str(f) for f in (files or [])]
    if not paths:
        raise ExplorerError("Upload labelled queries: a BEIR zip, queries.jsonl with a qrels .tsv, or a CSV of "
                            "query,relevant_doc_id[,score].")
    limits.check_files(paths)
    zips = [p for p in paths if p.lower().endswith(".zip")]
    if zips:
        if len(paths) > 1:
            raise ExplorerError("Upload the BEIR zip on its own.")
        bench = load_beir(zips[0], split or "test", need_corpus=False, name=_name(zips[0]),
                          max_bytes=int(limits.max_upload_mb * 10 * 2**20))
        if bench.corpus is not None:
            return bench, True
        return _against_session(session, bench.judgments), False
    corpus_files = [p for p in paths if "corpus" in _name(p).lower() and p.lower().endswith(".jsonl")]
    csvs = [p for p in paths if p.lower().endswith(".csv")]
    tsvs = [p for p in paths if p.lower().endswith(".tsv")]
    queries = [p for p in paths if p.lower().endswith(".jsonl") and p not in corpus_files]
    other = set(paths) - set(corpus_files) - set(csvs) - set(tsvs) - set(queries)
    if other:
        raise ExplorerError(f"Unexpected file(s): {', '.join(sorted(_name(p) for p in other))}. Upload a BEIR zip, "
                            "queries.jsonl + a qrels .tsv (+ corpus.jsonl), or a CSV.")
    if csvs and (tsvs or queries) or len(csvs) > 1 or len(tsvs) > 1 or len(queries) > 1:
        raise ExplorerError("Upload one set of judgments: a CSV, or queries.jsonl with one qrels .tsv.")
    if csvs:
        q, qrels = read_qrels_csv(csvs[0], _name(csvs[0]))
        judgments = combine(q, qrels, _name(csvs[0]))
    elif tsvs and queries:
        judgments = combine(read_queries(queries[0], _name(queries[0])), read_qrels_tsv(tsvs[0], _name(tsvs[0])),
                            _name(tsvs[0]))
    else:
        raise ExplorerError("A qrels .tsv needs its queries.jsonl (and queries.jsonl its qrels .tsv).")
    if corpus_files:
        corpus = load_corpus(corpus_files[:1], names=[_name(corpus_files[0])])
        return Benchmark(corpus, judgments, _name(corpus_files[0]), split), True
    return _against_session(session, judgments), False


def _against_session(session: Session, judgments: Judgments) -> Benchmark:
    if session.corpus is None:
        raise ExplorerError("These judgments have no corpus: load the corpus in the Search tab first, or upload a "
                            "BEIR zip (or corpus.jsonl) with them.")
    return Benchmark(session.corpus, judgments, "", "")


def make_config(model: str, instruction_mode: str, instruction: str, reranker: str | None, top_n: float | int,
                chunk_size: float | int | None, mode: str = "dense", fusion: str = "m3",
                weights: str = "") -> EvalConfig:
    """UI fields -> :class:`EvalConfig`. ``chunk_size`` 0 or empty: whole documents; chunks overlap by
    a quarter of their size, at most 32 tokens."""
    model = (model or "").strip() or OFFLINE_MODEL
    if instruction_mode == "none":
        text: str | None = ""
    elif instruction_mode == "custom":
        text = instruction or ""
    else:
        text = None
    reranker = (reranker or "").strip()
    reranker = None if reranker in ("", NO_RERANKER) else reranker
    top_n = int(top_n or DEFAULT_EVAL_TOP_N)
    if reranker and not 1 <= top_n <= MAX_TOP_N:
        raise ExplorerError(f"The reranker's top n must be between 1 and {MAX_TOP_N}.")
    size = int(chunk_size) if chunk_size else None
    if size is not None and size < 8:
        raise ExplorerError("The chunk size must be at least 8 tokens (or 0 for whole documents).")
    from bge_explorer.cli.commands import parse_weights

    mode = mode if mode in RETRIEVAL_MODES else "dense"
    weight_map = parse_weights((weights or "").strip() or None)
    components = None
    if mode == "hybrid" and weight_map and "=" in weights:
        components = tuple(m for m in ("dense", "sparse", "colbert", "bm25") if weight_map.get(m, 0) > 0)
    return EvalConfig(model=model, instruction=text, reranker=reranker, top_n=top_n, chunk_size=size,
                      overlap=min(DEFAULT_OVERLAP, size // 4) if size else DEFAULT_OVERLAP, mode=mode,
                      fusion=fusion if fusion in FUSIONS else "m3", weights=weight_map, components=components)


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


def write_downloads(a: EvaluationResult, ab: ABResult | None, session: Session | None = None) -> list[str]:
    """Per-query CSV and full JSON in a fresh folder (inside the session's private directory when it has one);
    their paths."""
    ensure_workdir = getattr(session, "ensure_workdir", None)
    folder = Path(tempfile.mkdtemp(prefix="eval-", dir=ensure_workdir()) if ensure_workdir else
                  tempfile.mkdtemp(prefix="bge-explorer-eval-"))
    csv_path, json_path = folder / "evaluation_per_query.csv", folder / "evaluation.json"
    if ab is None:
        a.per_query().to_csv(csv_path, index=False)
        payload = a.to_dict()
    else:
        per_query = ab.a.per_query().add_prefix("A ").rename(columns={"A query_id": "query_id", "A query": "query"})
        per_query = pd.concat([per_query, ab.b.per_query().drop(columns=["query_id", "query"]).add_prefix("B ")],
                              axis=1)
        per_query.to_csv(csv_path, index=False)
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


def run_evaluation(session: Session | None, files, split: str,
                   a_model: str, a_instruction_mode: str, a_instruction: str, a_reranker: str, a_top_n, a_chunk,
                   compare: bool, b_model: str, b_instruction_mode: str, b_instruction: str, b_reranker: str,
                   b_top_n, b_chunk, metric: str = "ndcg@10", a_mode: str = "dense", a_fusion: str = "m3",
                   a_weights: str = "", b_mode: str = "dense", b_fusion: str = "m3", b_weights: str = "",
                   progress=gr.Progress()):
    """The Evaluate button (and ``/evaluate``): returns (session, status, A table, B table, A/B table,
    per-query table, chart, downloads). Errors become a gr.Error with the message escaped."""
    session = session if isinstance(session, Session) else Session()
    try:
        files = files if isinstance(files, (list, tuple)) else ([files] if files else [])
        files = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in files]
        bench, own_corpus = load_uploads(session, files, split)
        limits = settings.current().limits
        config_a = make_config(a_model, a_instruction_mode, a_instruction, a_reranker, a_top_n, a_chunk,
                               a_mode, a_fusion, a_weights)
        config_b = make_config(b_model, b_instruction_mode, b_instruction, b_reranker, b_top_n, b_chunk,
                               b_mode, b_fusion, b_weights) if compare else None
        if not any((config_a.chunk_size, config_b and config_b.chunk_size)):
            limits.check_chunks(len(bench.corpus.documents))
        work = session
        if own_corpus:  # evaluate on the uploaded corpus, keeping the session's embeddings cache
            work = Session()
            work.cache = session.cache
            work.lexical_cache = session.lexical_cache  # M3 lexical weights are reused too
            work.set_corpus(bench.corpus)

        def report(stage: str, done: int, total: int) -> None:
            progress(done / max(total, 1), desc=f"{stage} {done}/{total}")

        if config_b is None:
            a, ab = evaluate(work, bench.judgments, config_a, progress=report), None
            b = None
        else:
            ab = run_ab(work, bench.judgments, config_a, config_b, progress=report)
            a, b = ab.a, ab.b
        if own_corpus:
            session.set_corpus(bench.corpus)  # the Search tab now shows the evaluated corpus
    except (ExplorerError, ValueError) as exc:
        raise gr.Error(html.escape(str(exc)), print_exception=False) from None
    figure = ab.comparison.figure(metric if metric in ab.comparison.table.index else "ndcg@10") if ab else None
    return (session, status_text(a, b, a.notes),
            summary_table(a), summary_table(b) if b is not None else None,
            comparison_table(ab) if ab else None, per_query_table(a, b, bench.judgments), figure,
            write_downloads(a, ab, session))


def same_model_with_and_without_instruction(a_model: str, a_reranker: str, a_top_n, a_chunk):
    """The one-click question: B = A's model, reranker and chunking; A with the model's instruction, B without."""
    return ("model's own", "", True, a_model, "none", "", a_reranker, a_top_n, a_chunk)


def pick_query(table: pd.DataFrame | None, evt: gr.SelectData) -> tuple[str, str]:
    """A click on the per-query table -> (the query text, its relevant document ids, comma-separated)."""
    if table is None or evt is None or evt.index is None or len(table) == 0:
        return "", ""
    row = table.iloc[int(evt.index[0])]
    return str(row.get("query", "")), str(row.get("relevant documents", ""))


def on_instruction_mode(mode: str):
    return gr.update(visible=mode == "custom")


# ---------------------------------------------------------------------------------------------------------
# Layout


def _config_column(tag: str):
    model = gr.Dropdown(EMBEDDERS, value=OFFLINE_MODEL, label=f"{tag}: embedding model", allow_custom_value=True,
                        info="catalog name, Hub id or local directory")
    mode = gr.Radio(INSTRUCTION_MODES, value="model's own", label=f"{tag}: query instruction")
    text = gr.Textbox("", label=f"{tag}: custom instruction", visible=False,
                      placeholder="prepended to every query, exactly as typed (end it with a space)")
    reranker = gr.Dropdown([NO_RERANKER] + RERANKERS, value=NO_RERANKER, label=f"{tag}: reranker",
                           allow_custom_value=True)
    top_n = gr.Number(DEFAULT_EVAL_TOP_N, label=f"{tag}: rerank top n documents", precision=0, minimum=1,
                      maximum=MAX_TOP_N)
    chunk = gr.Number(0, label=f"{tag}: chunk size in tokens (0 = whole documents, truncated at the model's max)",
                      precision=0, minimum=0)
    mode.change(on_instruction_mode, mode, text, api_visibility="private")
    return model, mode, text, reranker, top_n, chunk


def _retrieval_column(tag: str):
    """Mode, fusion and weights of one configuration (kept apart from the fields the one-click setup fills)."""
    mode = gr.Radio(RETRIEVAL_MODES, value="dense", label=f"{tag}: retrieval mode",
                    info="sparse / colbert: BGE-M3 models; bm25: no model needed (whole documents)")
    fusion = gr.Radio(FUSIONS, value="m3", label=f"{tag}: hybrid fusion")
    weights = gr.Textbox("", label=f"{tag}: hybrid weights", placeholder="e.g. dense=0.4, sparse=0.2, colbert=0.4 "
                         "(empty: the model's modes with default weights; named modes are the ones fused)")
    return mode, fusion, weights


def build_evaluate_tab(session_state: gr.State):
    """Lay out the Evaluate tab inside the caller's ``with gr.Tab(...)``; wire it to ``session_state``.

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
    with gr.Row():
        a_table = gr.Dataframe(label="A: mean metrics", interactive=False)
        b_table = gr.Dataframe(label="B: mean metrics", interactive=False)
    ab_table = gr.Dataframe(label="A/B: B - A with paired randomisation test", interactive=False)
    chart = gr.Plot(label="Per-query difference")
    per_query = gr.Dataframe(label="Per query (click a row to pick its query)", interactive=False, max_height=500)
    with gr.Row():
        selected_query = gr.Textbox("", label="Picked query", interactive=False)
        selected_relevant = gr.Textbox("", label="Its relevant documents", interactive=False)
    downloads = gr.File(label="Download (CSV per query, JSON everything)", file_count="multiple", interactive=False)

    same.click(same_model_with_and_without_instruction, [a_fields[0], a_fields[3], a_fields[4], a_fields[5]],
               [a_fields[1], a_fields[2], compare, *b_fields], api_visibility="private")
    run.click(run_evaluation, [session_state, files, split, *a_fields, compare, *b_fields, metric, *a_retrieval,
                               *b_retrieval],
              [session_state, status, a_table, b_table, ab_table, per_query, chart, downloads],
              api_name="evaluate", concurrency_id="models", concurrency_limit=settings.current().models_concurrency())
    per_query.select(pick_query, per_query, [selected_query, selected_relevant], api_visibility="private")
    return {"files": files, "status": status, "per_query": per_query, "chart": chart, "run": run,
            "selected_query": selected_query, "selected_relevant": selected_relevant}
