"""``python -m bge_explorer calibrate``: where the score threshold goes, read off labelled queries."""
from __future__ import annotations

import argparse
import json
import sys

from bge_explorer.cli.evaluate import add_data_options, load_data
from bge_explorer.cli.options import add_config_options, config_from_args, resolve_default_model
from bge_explorer.errors import ExplorerError
from bge_explorer.evaluation.calibration import Threshold, best_f1, judged_pairs, threshold_for_precision
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.session import Session


def add_calibrate_command(commands) -> None:
    cal = commands.add_parser(
        "calibrate", help="score thresholds (dense cosine, reranker sigmoid) from labelled queries",
        description="Score every judged (query, document) pair with the configuration's model (and reranker), then "
                    "give the threshold with the best F1 and the lowest one reaching --precision, with counts.")
    add_data_options(cal)
    add_config_options(cal.add_argument_group("configuration"), chunk_default=" (default 0: whole documents)")
    cal.add_argument("--target-precision", type=float, default=0.9, metavar="P",
                     help="also the lowest threshold whose precision reaches P (default 0.9)")
    cal.add_argument("--json", metavar="FILE", help="write the thresholds as JSON")
    cal.add_argument("--csv", metavar="FILE", help="write the scored pairs as CSV")
    cal.set_defaults(run=cmd_calibrate)


def _describe(name: str, t: Threshold | None) -> str:
    if t is None:
        return f"  {name}: never reached"
    return (f"  {name}: {t.value:.4f}  precision {t.precision:.3f}  recall {t.recall:.3f}  F1 {t.f1:.3f}  "
            f"(TP {t.tp}, FP {t.fp}, FN {t.fn})")


def cmd_calibrate(args: argparse.Namespace) -> None:
    data = load_data(args)
    if data.corpus is None:
        raise ExplorerError("the dataset has no corpus.jsonl")
    config = resolve_default_model(config_from_args(args, base=RetrievalConfig(chunk_size=None)))
    session = Session()
    session.set_corpus(data.corpus)
    pairs = judged_pairs(session, data.judgments, config)
    relevant = pairs["relevant"].to_numpy()
    print(f"{len(pairs)} judged pairs ({int(relevant.sum())} relevant) of {len(data.judgments)} queries; "
          f"{config.describe()}")
    payload = {"config": config.to_dict(), "pairs": len(pairs), "relevant": int(relevant.sum())}
    for column in ("cosine", "sigmoid"):
        if column not in pairs:
            continue
        best = best_f1(pairs[column], relevant)
        target = threshold_for_precision(pairs[column], relevant, args.target_precision)
        print(f"{column} (relevant: mean {pairs[column][relevant].mean():.4f}; not relevant: "
              f"{pairs[column][~relevant].mean() if (~relevant).any() else float('nan'):.4f})")
        print(_describe("best F1", best))
        print(_describe(f"precision >= {args.target_precision:g}", target))
        payload[column] = {"best_f1": best.__dict__, "target_precision": args.target_precision,
                           "at_target": target.__dict__ if target else None}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=1)
        print(f"wrote {args.json}", file=sys.stderr)
    if args.csv:
        pairs.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}", file=sys.stderr)
