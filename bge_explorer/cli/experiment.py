"""``python -m bge_explorer experiment`` (many configurations over judged queries) and ``compare`` (two configurations
over a query set, no judgments)."""
from __future__ import annotations

import argparse
import json
import os
import sys

import pandas as pd

from bge_explorer.cli.evaluate import add_data_options, load_data, stage_progress
from bge_explorer.cli.options import add_corpus_options, resolve_default_model
from bge_explorer.data.qrels import read_query_set
from bge_explorer.errors import ExplorerError
from bge_explorer.evaluation.decision import TARGETS, decision, render_code
from bge_explorer.evaluation.experiment import METRICS, ExperimentPlan, ExperimentResult, run_experiment
from bge_explorer.evaluation.pairwise import compare_configurations
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.session import Session


def add_experiment_command(commands) -> None:
    ex = commands.add_parser(
        "experiment", help="many configurations on labelled queries, with intervals and Holm-adjusted tests",
        description="Evaluate the named configurations of a YAML/JSON file (a list value on a field expands into "
                    "a sweep) on labelled queries, against a baseline. Configurations sharing a model, chunking "
                    "and precision embed the corpus once.")
    add_data_options(ex)
    ex.add_argument("--configs", required=True, metavar="FILE",
                    help="YAML or JSON: {configurations: [{name: ..., <fields>}, ...], baseline: NAME}")
    ex.add_argument("--baseline", metavar="NAME", help="the configuration the others are tested against "
                                                       "(default: the file's baseline, else the first)")
    ex.add_argument("--resamples", type=int, default=10_000, help="random sign flips and bootstrap samples")
    ex.add_argument("--json", metavar="FILE", help="write the experiment (per configuration: config, metrics with "
                                                   "intervals, judged@10, condensed nDCG, p and Holm p) as JSON")
    ex.add_argument("--csv", metavar="FILE", help="write the per-query metrics of every configuration as CSV")
    ex.add_argument("--decision", metavar="FILE.yaml", help="write the winner (best nDCG@10) with its metrics, model "
                                                            "identity and judgments digest; --config reads it back")
    ex.add_argument("--code-dir", metavar="DIR", help="write ready-to-run scripts for the winner (FlagEmbedding, "
                                                      "LangChain, LlamaIndex) into DIR")
    ex.set_defaults(run=cmd_experiment)


def format_experiment(result: ExperimentResult) -> str:
    """One row per configuration: each metric's mean and interval, p (Holm) against the baseline, judged@10."""
    columns: dict[str, list[str]] = {}
    names = list(result.results)
    for metric in result.metrics:
        table = result.table(metric)
        columns[metric] = [f"{table.at[n, 'mean']:.4f} [{table.at[n, 'ci_low']:.4f}, {table.at[n, 'ci_high']:.4f}]"
                           for n in names]
        columns[f"p {metric} (Holm)"] = ["baseline" if n == result.plan.baseline else
                                         f"{table.at[n, 'p_value']:.4f} ({table.at[n, 'p_holm']:.4f})" for n in names]
    first = result.table(result.metrics[0])
    columns[f"W/T/L {result.metrics[0]}"] = ["" if n == result.plan.baseline else
                                             f"{first.at[n, 'wins']}/{first.at[n, 'ties']}/{first.at[n, 'losses']}"
                                             for n in names]
    columns["judged@10"] = [f"{first.at[n, 'judged@10']:.3f}" for n in names]
    columns["ndcg_condensed@10"] = [f"{first.at[n, 'ndcg_condensed@10']:.4f}" for n in names]
    text = pd.DataFrame(columns, index=pd.Index(names, name="configuration")).to_string()
    best, margin, p = result.best(result.metrics[0])
    verdict = (f"best on {result.metrics[0]}: {best}, the baseline itself" if best == result.plan.baseline else
               f"best on {result.metrics[0]}: {best}, {margin:+.4f} over {result.plan.baseline} (Holm p = {p:.4f})")
    return f"{text}\n{verdict}"


def cmd_experiment(args: argparse.Namespace) -> None:
    data = load_data(args)
    plan = ExperimentPlan.load(args.configs, base=RetrievalConfig(chunk_size=None))
    plan.configurations = [resolve_default_model(c) for c in plan.configurations]
    if args.baseline:
        plan.baseline = args.baseline
    plan.checked()
    work = plan.workload(len(data.judgments))
    print(f"{work['configurations']} configurations on {len(data.judgments)} queries, baseline {plan.baseline}: "
          f"{work['corpus_encodes']} corpus encode(s) (each about as long as building that index), "
          f"{work['query_encodes']} query encodes, at most {work['reranked_pairs_at_most']} reranked pairs",
          file=sys.stderr)
    session = Session()
    session.set_corpus(data.corpus)
    result = run_experiment(session, data.judgments, plan, metrics=METRICS, progress=stage_progress(),
                            missing="drop" if args.drop_missing else "raise", n_resamples=args.resamples,
                            on_result=lambda name, r: print(f"done: {name} ({sum(r.timings.values()):.1f} s)",
                                                            file=sys.stderr))
    print(format_experiment(result))
    write_experiment(result, args.json, args.csv)
    if args.decision or args.code_dir:
        write_winner(result, data.judgments, args.decision, args.code_dir)


def write_experiment(result: ExperimentResult, json_path: str | None, csv_path: str | None) -> None:
    """The experiment as JSON (:meth:`ExperimentResult.to_dict`) and its per-query metrics as CSV, where asked."""
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(result.to_dict(), f, indent=1, ensure_ascii=False)
        print(f"wrote {json_path}", file=sys.stderr)
    if csv_path:
        result.per_query().to_csv(csv_path, index=False)
        print(f"wrote {csv_path}", file=sys.stderr)


def write_winner(result: ExperimentResult, judgments, decision_path: str | None, code_dir: str | None) -> None:
    """The best configuration on nDCG@10 as a decision file and scripts (dense configurations only)."""
    import yaml

    name, _, _ = result.best("ndcg@10")
    winner = next(c for c in result.plan.configurations if c.label == name)
    evaluated = result.results[name]
    entry = next(c for c in result.to_dict()["configurations"] if c["name"] == name)
    if decision_path:
        exported = decision(winner, evaluated.config, judgments, entry["metrics"], baseline=result.plan.baseline,
                            vs_baseline=entry["vs_baseline"])
        with open(decision_path, "w", encoding="utf-8") as f:
            yaml.safe_dump(exported, f, allow_unicode=True, sort_keys=False)
        print(f"wrote the decision ({name}) to {decision_path}", file=sys.stderr)
    if code_dir:
        try:
            scripts = {t: render_code(winner, evaluated.config, t) for t in TARGETS}
        except ExplorerError as exc:
            print(f"note: no code for {name}: {exc}", file=sys.stderr)
            return
        os.makedirs(code_dir, exist_ok=True)
        for target, code in scripts.items():
            with open(os.path.join(code_dir, f"{target}_search.py"), "w", encoding="utf-8") as f:
                f.write(code)
        print(f"wrote {len(scripts)} scripts for {name} to {code_dir}", file=sys.stderr)


def add_compare_command(commands) -> None:
    cp = commands.add_parser(
        "compare", help="two configurations over a query set without judgments: overlap, Jaccard, RBO",
        description="Run configurations A and B over a query set on a corpus and compare their top-k documents per "
                    "query (overlap@k, Jaccard@k, rank-biased overlap with p = 0.9), with the means.")
    add_corpus_options(cp)
    cp.add_argument("--queries", required=True, metavar="FILE",
                    help="one query per line (.txt), BEIR queries.jsonl, or a CSV/TSV with a query column")
    cp.add_argument("--a", required=True, metavar="FILE", help="configuration A (YAML or JSON)")
    cp.add_argument("--b", required=True, metavar="FILE", help="configuration B (YAML or JSON)")
    cp.add_argument("--k", type=int, default=10, help="documents compared per query (default 10)")
    cp.add_argument("--json", metavar="FILE", help="write the means and the per-query comparison as JSON")
    cp.add_argument("--csv", metavar="FILE", help="write the per-query comparison as CSV")
    cp.set_defaults(run=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> None:
    if args.k < 1:
        raise ExplorerError("--k must be at least 1")
    queries = read_query_set(args.queries)
    a = resolve_default_model(RetrievalConfig.load(args.a))
    b = resolve_default_model(RetrievalConfig.load(args.b))
    session = Session()
    corpus = session.load_corpus(args.corpus, text_column=args.text_column, id_column=args.id_column,
                                 title_column=args.title_column)
    for note in corpus.notes:
        print(f"note: {note}", file=sys.stderr)
    result = compare_configurations(session, a, b, queries, args.k)
    means = result.means()
    print(f"A: {result.label_a}\nB: {result.label_b}\n{len(queries)} queries, top {args.k} documents: overlap "
          f"{means['overlap']:.2f}, Jaccard {means['jaccard']:.3f}, RBO {means['rbo']:.3f}, same rank "
          f"{means['same_rank']:.2f}")
    shown = result.per_query[["query", "overlap", "jaccard", "rbo"]].sort_values("rbo").head(10)
    print("least alike:\n" + shown.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result.to_dict(), f, indent=1, ensure_ascii=False)
        print(f"wrote {args.json}", file=sys.stderr)
    if args.csv:
        result.per_query.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}", file=sys.stderr)
