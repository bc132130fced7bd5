"""``python -m bge_explorer evaluate``: metrics of a configuration on labelled queries, and A/B comparisons."""
from __future__ import annotations

import argparse
import json
import sys

import pandas as pd

from bge_explorer.cli.options import add_config_options, config_from_args, default_model_for, resolve_default_model
from bge_explorer.data.qrels import Benchmark, load_beir, load_judgments
from bge_explorer.errors import ConfigError, ExplorerError
from bge_explorer.evaluation.evaluate import EvaluationResult, evaluate
from bge_explorer.evaluation.significance import run_ab
from bge_explorer.retrieval.config import RetrievalConfig, parse_modes
from bge_explorer.session import Session


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


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """The corpus and judgments of ``evaluate`` and ``experiment`` (read by :func:`load_data`)."""
    data = parser.add_argument_group("data")
    data.add_argument("--beir", metavar="DIR_OR_ZIP",
                      help="BEIR dataset folder or zip: corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    data.add_argument("--split", default="test", help="qrels split of the BEIR dataset (default test)")
    data.add_argument("--corpus", nargs="+", metavar="PATH", help="corpus files, with --qrels instead of --beir")
    data.add_argument("--qrels", metavar="FILE", help="BEIR qrels TSV (with --queries) or a CSV of "
                                                      "query,relevant_doc_id[,score]")
    data.add_argument("--queries", metavar="FILE", help="BEIR queries.jsonl for --qrels")
    data.add_argument("--drop-missing", action="store_true",
                      help="leave out judgments of documents that are not in the corpus instead of stopping")


def add_evaluate_command(commands) -> None:
    ev = commands.add_parser(
        "evaluate", help="nDCG, recall, MRR and MAP on labelled queries; --ab compares two configurations",
        description="Evaluate a retrieval configuration on labelled queries (BEIR folder or zip, or a corpus with "
                    "qrels). A document's score is the best score of its chunks.")
    add_data_options(ev)
    add_config_options(ev.add_argument_group("configuration"),
                       chunk_default=" (default 0 here: whole documents truncated at the model's max length, as "
                                     "MTEB does)")
    ev.add_argument("--json", metavar="FILE", help="write config, metrics and per-query results as JSON")
    ev.add_argument("--per-query", metavar="FILE.csv", help="write the per-query table as CSV")

    ab = ev.add_argument_group("A/B", "--ab evaluates a second configuration B: A with the --b-* changes (none "
                                      "given: the instruction switched on/off), e.g. --ab --b-mode hybrid asks whether "
                                      "hybrid beats dense")
    ab.add_argument("--ab", action="store_true", help="compare with configuration B")
    add_config_options(ab, "b-")
    ab.add_argument("--ab-config", metavar="FILE", help='YAML or JSON {"a": {...}, "b": {...}} of configuration '
                                                        "fields applied to A and to A for B; implies --ab")
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


def configs(args: argparse.Namespace) -> tuple[RetrievalConfig, RetrievalConfig | None]:
    """A (the options, whole documents unless --chunk-size) and B (--ab: A with the --b-* changes)."""
    a = config_from_args(args, base=RetrievalConfig(chunk_size=None))
    b = None
    if args.ab_config:
        spec = _parse_ab(args.ab_config)
        try:  # from_dict names unknown fields (a typo such as "modle") instead of a TypeError from with_
            a = RetrievalConfig.from_dict({**a.to_dict(), **spec.get("a", {})}, where="a")
            b_fields = dict(spec["b"])
            if "model" not in b_fields:  # B needs a model where A (BM25) has none: the default one
                b_fields.update(default_model_for(a, parse_modes(b_fields.get("modes", a.modes)), given_base=True))
            b = RetrievalConfig.from_dict({**a.to_dict(), **b_fields}, where="b")
        except ConfigError as exc:
            raise ExplorerError(f"--ab-config {args.ab_config}: {exc}") from None
    elif args.ab:
        b = config_from_args(args, "b-", base=a)
        if b == a:  # the common question: with and without the instruction
            b = a.with_(instruction=None if a.instruction == "" else "")
    return resolve_default_model(a), resolve_default_model(b) if b is not None else None


def _parse_ab(path: str) -> dict:
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            spec = yaml.safe_load(f.read(1 << 20))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ExplorerError(f"--ab-config {path}: {exc}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("b"), dict) or not isinstance(spec.get("a", {}), dict):
        raise ExplorerError('--ab-config: expected {"a": {...}, "b": {...}} ("a" optional) of configuration fields')
    return spec


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
