"""``python -m bge_explorer evaluate``: metrics of a configuration on labelled queries, and A/B comparisons."""
from __future__ import annotations

import argparse
import json
import sys

import pandas as pd

from bge_explorer.models.catalog import DEFAULT_MODEL
from bge_explorer.data.chunking import DEFAULT_OVERLAP
from bge_explorer.errors import ExplorerError
from bge_explorer.evaluation.evaluate import DEFAULT_EVAL_TOP_N, EvalConfig, EvaluationResult, evaluate
from bge_explorer.data.qrels import Benchmark, load_beir, load_judgments
from bge_explorer.session import Session

CONFIG_FIELDS = {"model", "instruction", "reranker", "top_n", "chunk_size", "overlap", "pooling", "model_class",
                 "precision", "label", "mode", "fusion", "weights", "components"}


def stage_progress():
    """A ``progress(stage, done, total)`` callback drawing one tqdm bar per stage on stderr."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, file=sys.stderr, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return progress


def add_evaluate_command(commands) -> None:
    from bge_explorer.cli.commands import add_instruction_options, add_model_options, add_retrieval_options

    ev = commands.add_parser(
        "evaluate", help="nDCG, recall, MRR and MAP on labelled queries; --ab compares two configurations",
        description="Evaluate a retrieval configuration on labelled queries (BEIR folder or zip, or a corpus with "
                    "qrels). A document's score is the best score of its chunks.")
    data = ev.add_argument_group("data")
    data.add_argument("--beir", metavar="DIR_OR_ZIP",
                      help="BEIR dataset folder or zip: corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    data.add_argument("--split", default="test", help="qrels split of the BEIR dataset (default test)")
    data.add_argument("--corpus", nargs="+", metavar="PATH", help="corpus files, with --qrels instead of --beir")
    data.add_argument("--qrels", metavar="FILE", help="BEIR qrels TSV (with --queries) or a CSV of "
                                                      "query,relevant_doc_id[,score]")
    data.add_argument("--queries", metavar="FILE", help="BEIR queries.jsonl for --qrels")
    data.add_argument("--drop-missing", action="store_true",
                      help="leave out judgments of documents that are not in the corpus instead of stopping")
    add_model_options(ev)
    add_instruction_options(ev)
    add_retrieval_options(ev)
    ev.add_argument("--reranker", metavar="NAME_OR_PATH", help="cross-encoder to rerank the top n documents with")
    ev.add_argument("--top-n", type=int, default=DEFAULT_EVAL_TOP_N,
                    help=f"documents the reranker rescores per query (default {DEFAULT_EVAL_TOP_N})")
    ev.add_argument("--chunk-size", type=int, default=0, help="tokens per chunk; 0 (default) embeds whole documents "
                                                              "truncated at the model's max length, as MTEB does")
    ev.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP, help=f"chunk overlap (default {DEFAULT_OVERLAP})")
    ev.add_argument("--json", metavar="FILE", help="write config, metrics and per-query results as JSON")
    ev.add_argument("--per-query", metavar="FILE.csv", help="write the per-query table as CSV")

    ab = ev.add_argument_group("A/B", "--ab evaluates a second configuration B: the options above with the --b-* "
                                      "changes (none given: the instruction switched on/off), e.g. --ab --b-mode "
                                      "hybrid asks whether hybrid beats dense")
    ab.add_argument("--ab", action="store_true", help="compare with configuration B")
    ab.add_argument("--b-model", metavar="NAME_OR_PATH")
    group = ab.add_mutually_exclusive_group()
    group.add_argument("--b-instruction", metavar="TEXT")
    group.add_argument("--b-no-instruction", action="store_true")
    group.add_argument("--b-model-instruction", action="store_true", help="B uses its model's own instruction")
    group = ab.add_mutually_exclusive_group()
    group.add_argument("--b-reranker", metavar="NAME_OR_PATH")
    group.add_argument("--b-no-reranker", action="store_true")
    ab.add_argument("--b-top-n", type=int)
    ab.add_argument("--b-chunk-size", type=int)
    add_retrieval_options(ab, "b-")
    ab.add_argument("--ab-config", metavar="FILE.json", help='JSON {"a": {...}, "b": {...}} with fields '
                                                              f'{", ".join(sorted(CONFIG_FIELDS))}; implies --ab')
    ab.add_argument("--resamples", type=int, default=10_000, help="random sign flips and bootstrap samples")
    ab.add_argument("--plot", metavar="FILE.html", help="write the per-query nDCG@10 difference chart (plotly)")
    ev.set_defaults(run=cmd_evaluate)


def load_data(args: argparse.Namespace) -> Benchmark:
    """The corpus and judgments the options name."""
    if args.beir:
        if args.corpus or args.qrels or args.queries:
            raise ExplorerError("give either --beir, or --corpus with --qrels (and --queries), not both")
        return load_beir(args.beir, args.split, missing="drop" if args.drop_missing else "raise")
    if not (args.corpus and args.qrels):
        raise ExplorerError("give --beir DIR_OR_ZIP, or --corpus FILES with --qrels FILE (and --queries for a "
                            "BEIR qrels TSV)")
    from bge_explorer.data.corpus import load_corpus

    corpus = load_corpus(args.corpus)
    return Benchmark(corpus, load_judgments(args.qrels, args.queries), "", args.split)


def default_model(precision: str) -> str:
    """The default model's name, or the offline fallback's when it cannot be had (said on stderr)."""
    from bge_explorer.models.loading import load_embedder_with_fallback

    embedder, notice = load_embedder_with_fallback(DEFAULT_MODEL, precision=precision)
    if notice:
        print(f"note: {notice}", file=sys.stderr)
    return embedder.spec.name


def retrieval_fields(args: argparse.Namespace, prefix: str = "") -> dict:
    """The EvalConfig fields the --mode/--fusion/--weights/--components options (or B's) set."""
    from bge_explorer.cli.commands import hybrid_components, parse_weights

    fields: dict = {}
    if getattr(args, f"{prefix}mode"):
        fields["mode"] = getattr(args, f"{prefix}mode")
    if getattr(args, f"{prefix}fusion"):
        fields["fusion"] = getattr(args, f"{prefix}fusion")
    if getattr(args, f"{prefix}components") or getattr(args, f"{prefix}weights"):
        if prefix and not getattr(args, f"{prefix}mode"):
            args = argparse.Namespace(**{**vars(args), f"{prefix}mode": args.mode})
        components = hybrid_components(args, prefix)
        if components is not None:
            fields["components"] = components
        weights = parse_weights(getattr(args, f"{prefix}weights"), components)
        if weights is not None:
            fields["weights"] = weights
    return fields


def config_a(args: argparse.Namespace) -> EvalConfig:
    fields = retrieval_fields(args)
    model = args.model
    probe = EvalConfig(model=None, **fields)
    if not model and probe.needs_model:
        model = default_model(args.precision)
    instruction = "" if args.no_instruction else args.instruction
    return EvalConfig(model=model, instruction=instruction, reranker=args.reranker, top_n=args.top_n,
                      chunk_size=args.chunk_size or None, overlap=args.overlap, pooling=args.pooling,
                      model_class=args.model_class,
                      precision=args.precision, **fields)


def config_b(args: argparse.Namespace, a: EvalConfig) -> EvalConfig:
    changes: dict = retrieval_fields(args, "b_")
    if args.b_model:
        changes.update(model=args.b_model, pooling=None, model_class=None)
    if args.b_instruction is not None:
        changes["instruction"] = args.b_instruction
    elif args.b_no_instruction:
        changes["instruction"] = ""
    elif args.b_model_instruction:
        changes["instruction"] = None
    if args.b_reranker:
        changes["reranker"] = args.b_reranker
    elif args.b_no_reranker:
        changes["reranker"] = None
    if args.b_top_n is not None:
        changes["top_n"] = args.b_top_n
    if args.b_chunk_size is not None:
        changes["chunk_size"] = args.b_chunk_size or None
    if not changes:  # the common question: with and without the instruction
        changes["instruction"] = None if a.instruction == "" else ""
    if changes.get("mode") not in (None, "hybrid") and "components" not in changes:
        changes["components"] = None  # A's hybrid components mean nothing to a single mode
    b = a.with_(**changes)
    if b.needs_model and not b.model:
        b = b.with_(model=default_model(args.precision))
    return b


def _from_json(base: EvalConfig, fields: dict, name: str) -> EvalConfig:
    if not isinstance(fields, dict):
        raise ExplorerError(f"--ab-config: '{name}' must be an object of configuration fields")
    unknown = set(fields) - CONFIG_FIELDS
    if unknown:
        raise ExplorerError(f"--ab-config: unknown field(s) {', '.join(sorted(unknown))} in '{name}'; "
                            f"use {', '.join(sorted(CONFIG_FIELDS))}")
    return base.with_(**fields)


def configs(args: argparse.Namespace) -> tuple[EvalConfig, EvalConfig | None]:
    a = config_a(args)
    if args.ab_config:
        try:
            with open(args.ab_config, encoding="utf-8") as f:
                spec = json.load(f)
        except (OSError, json.JSONDecodeError) as exc:
            raise ExplorerError(f"--ab-config {args.ab_config}: {exc}") from None
        if not isinstance(spec, dict) or "b" not in spec:
            raise ExplorerError('--ab-config: expected {"a": {...}, "b": {...}} ("a" optional)')
        a = _from_json(a, spec.get("a", {}), "a")
        b = _from_json(a, spec["b"], "b")
        if b.needs_model and not b.model:
            b = b.with_(model=default_model(args.precision))
        return a, b
    return a, (config_b(args, a) if args.ab else None)


def format_result(result: EvaluationResult) -> str:
    c = result.config
    mode = c.get("mode", "dense")
    how = f"mode {mode}" + (f" ({c['bm25']})" if c.get("bm25") else "")
    lines = [f"{result.label}",
             f"  {c['queries']} queries, {c['documents']} documents, {c['chunks']} chunks; {how}; "
             + (f"instruction {c['instruction']!r}; " if c.get("pooling") else "no embedding model; ")
             + f"document score: {c['document_score']}"]
    stages = ["retrieval"] + (["reranked"] if result.reranked is not None else [])
    for stage in stages:
        lines.append(result.table(stage).to_string(float_format=lambda x: f"{x:.4f}"))
    return "\n".join(lines)


def format_comparison(table: pd.DataFrame) -> str:
    shown = pd.DataFrame({
        "A": table["A"].map("{:.4f}".format), "B": table["B"].map("{:.4f}".format),
        "B-A": table["diff"].map("{:+.4f}".format),
        "95% CI": [f"[{lo:+.4f}, {hi:+.4f}]" for lo, hi in zip(table["ci_low"], table["ci_high"])],
        "p": table["p_value"].map("{:.4f}".format),
        "B wins/ties/losses": [f"{w}/{t}/{l}" for w, t, l in zip(table["wins"], table["ties"], table["losses"])],
    }, index=table.index)
    return shown.to_string()


def cmd_evaluate(args: argparse.Namespace) -> None:
    data = load_data(args)
    if data.corpus is None:
        raise ExplorerError("the dataset has no corpus.jsonl")
    for note in data.corpus.notes + data.judgments.notes:
        print(f"note: {note}", file=sys.stderr)
    a, b = configs(args)
    session = Session()
    session.set_corpus(data.corpus)
    missing = "drop" if args.drop_missing else "raise"
    progress = stage_progress()
    if b is None:
        result = evaluate(session, data.judgments, a, progress=progress, missing=missing)
        print(format_result(result))
        payload = result.to_dict()
        per_query = result.per_query()
        if args.plot:
            print("note: --plot draws the A/B chart; it needs --ab", file=sys.stderr)
    else:
        from bge_explorer.evaluation.significance import run_ab

        ab = run_ab(session, data.judgments, a, b, progress=progress, missing=missing, n_resamples=args.resamples)
        print("A: " + format_result(ab.a).removeprefix("A: "))
        print()
        print("B: " + format_result(ab.b).removeprefix("B: "))
        print()
        print(f"B - A ({'after reranking where a configuration reranks'}; paired randomisation test, "
              f"{ab.a.config['queries']} queries)")
        print(format_comparison(ab.comparison.table))
        payload = ab.to_dict()
        per_query = ab.comparison.per_query
        if args.plot:
            ab.comparison.figure("ndcg@10").write_html(args.plot, include_plotlyjs=True)
            print(f"wrote the chart to {args.plot}", file=sys.stderr)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=1, ensure_ascii=False)
        print(f"wrote {args.json}", file=sys.stderr)
    if args.per_query:
        per_query.to_csv(args.per_query, index=False)
        print(f"wrote {args.per_query}", file=sys.stderr)
