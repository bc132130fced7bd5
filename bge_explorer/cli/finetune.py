"""``python -m bge_explorer finetune``: mine hard negatives, fine-tune with FlagEmbedding on the CPU, save the model
with its card, and compare base and tuned on held-out queries."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings

from bge_explorer.cli.evaluate import stage_progress
from bge_explorer.cli.experiment import format_experiment
from bge_explorer.cli.options import resolve_default_model
from bge_explorer.data.safe_text import safe_csv_frame
from bge_explorer.data.qrels import Judgments, combine, load_beir, read_beir_judgments
from bge_explorer.errors import ConfigError, ExplorerError
from bge_explorer.models.catalog import OFFLINE_MODEL
from bge_explorer.retrieval.config import POOLINGS, RetrievalConfig, parse_modes
from bge_explorer.session import Session
from bge_explorer.tuning.mining import NegativeSampling
from bge_explorer.tuning.split import DEFAULT_FRACTION, HeldOutSplit, given_split, split_queries
from bge_explorer.tuning.training import TrainingOptions
from bge_explorer.tuning.tune import fine_tune

DEFAULTS = TrainingOptions()


def add_finetune_command(commands) -> None:
    ft = commands.add_parser(
        "finetune", help="fine-tune an embedding model on judged queries (hard negatives mined), prove it held out",
        description="Split the judged queries into training and held-out, mine hard negatives for the training "
                    "queries with the model's own index, fine-tune it through FlagEmbedding's runner on the CPU, "
                    "save it with a model card, and compare base and tuned on the held-out queries "
                    "(docs/finetune.md).")
    data = ft.add_argument_group("data")
    data.add_argument("--beir", required=True, metavar="DIR_OR_ZIP",
                      help="BEIR dataset folder or zip: corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    data.add_argument("--split", default="train", help="qrels split to train on (default train)")
    held = data.add_mutually_exclusive_group()
    held.add_argument("--holdout-split", metavar="SPLIT", help="qrels split held out for the comparison (e.g. test)")
    held.add_argument("--holdout-fraction", type=float, metavar="F",
                      help=f"share of --split's queries held out, chosen with --seed (default {DEFAULT_FRACTION})")
    data.add_argument("--relevance", type=int, default=1, help="lowest grade that counts as a positive (default 1)")
    model = ft.add_argument_group("model")
    model.add_argument("--model", default=OFFLINE_MODEL, metavar="NAME_OR_PATH",
                       help=f"encoder model to fine-tune (default {OFFLINE_MODEL})")
    model.add_argument("--pooling", choices=POOLINGS, help="pooling of a custom model (default cls)")
    instruction = model.add_mutually_exclusive_group()
    instruction.add_argument("--instruction", metavar="TEXT", help="query instruction (default: the model's own)")
    instruction.add_argument("--no-instruction", action="store_true", help="train and search without one")
    model.add_argument("--out", required=True, metavar="DIR", help="new or empty folder for the tuned model")
    mining = ft.add_argument_group("hard negatives")
    mining.add_argument("--negatives", default=str(NegativeSampling()), metavar="LOW-HIGH:N",
                        help="sample N negatives from ranking positions LOW to HIGH-1 (0-based, FlagEmbedding's "
                             "range_for_sampling; default %(default)s)")
    mining.add_argument("--mine-mode", default="dense", metavar="MODE",
                        help="retrieval mode whose ranking gives the negatives: dense (the model's own index, "
                             "default), bm25, or modes joined by +")
    mining.add_argument("--reranker", metavar="NAME_OR_PATH",
                        help="cross-encoder scoring the candidates: flags likely false negatives; with "
                             "--filter-above drops them; also adds reranked rows to the comparison")
    mining.add_argument("--filter-above", type=float, metavar="P",
                        help="drop candidates whose reranker sigmoid is above P (0-1)")
    mining.add_argument("--preview", metavar="FILE.csv", help="write every positive, negative and dropped candidate "
                                                              "with its rank, reranker sigmoid and flag")
    train = ft.add_argument_group("training")
    train.add_argument("--lora", action="store_true", help="train LoRA adapters (merged into the saved model)")
    train.add_argument("--epochs", type=float, default=DEFAULTS.epochs, help="default %(default)s")
    train.add_argument("--learning-rate", type=float, help="default 2e-5, with --lora 2e-4")
    train.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size, help="queries per step "
                                                                                    "(default %(default)s)")
    train.add_argument("--group-size", type=int, default=DEFAULTS.group_size,
                       help="passages per query: 1 positive + the rest negatives (default %(default)s)")
    train.add_argument("--temperature", type=float, default=DEFAULTS.temperature, help="default %(default)s")
    train.add_argument("--passage-max-len", type=int, default=DEFAULTS.passage_max_len, help="default %(default)s")
    train.add_argument("--max-steps", type=int, help="stop after this many steps (a smoke run)")
    train.add_argument("--seed", type=int, default=0, help="seed of the split, the sampling and the training")
    ft.add_argument("--resamples", type=int, default=10_000, help="random sign flips and bootstrap samples")
    ft.add_argument("--json", metavar="FILE", help="write the model card and the held-out comparison as JSON")
    ft.set_defaults(run=cmd_finetune)


def _flag(error: ConfigError) -> ExplorerError:
    """A ConfigError of the engine as the option that set the field."""
    names = {"modes": "--mine-mode", "filter_above": "--filter-above"}
    option = names.get(error.field, f"--{error.field.replace('_', '-')}")
    return ExplorerError(f"{option}: {error.reason}")


def _options(args: argparse.Namespace) -> TrainingOptions:
    return TrainingOptions(lora=args.lora, epochs=args.epochs, learning_rate=args.learning_rate,
                           batch_size=args.batch_size, group_size=args.group_size, temperature=args.temperature,
                           passage_max_len=args.passage_max_len, max_steps=args.max_steps, seed=args.seed)


def load_split(args: argparse.Namespace) -> tuple[Session, Judgments, HeldOutSplit]:
    """The session over the dataset's corpus, the judgments of both sides, and the held-out split."""
    bench = load_beir(args.beir, args.split)
    for note in bench.corpus.notes + bench.judgments.notes:
        print(f"note: {note}", file=sys.stderr)
    session = Session()
    session.set_corpus(bench.corpus)
    if args.holdout_split:
        queries, qrels = read_beir_judgments(args.beir, args.holdout_split)
        held = combine(queries, qrels, f"qrels/{args.holdout_split}.tsv").check_corpus(
            bench.corpus.documents["doc_id"].astype(str))
        split, judgments = given_split(bench.judgments, held)
    else:
        fraction = DEFAULT_FRACTION if args.holdout_fraction is None else args.holdout_fraction
        split, judgments = split_queries(bench.judgments, fraction, args.seed), bench.judgments
    return session, judgments, split


def cmd_finetune(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("FlagEmbedding").setLevel(logging.ERROR)  # its runner logs every argument at INFO
    warnings.filterwarnings("ignore", message="`max_length` is ignored")  # FlagEmbedding's collator, every batch
    try:
        sampling = NegativeSampling.parse(args.negatives)
        options = _options(args)
        session, judgments, split = load_split(args)
        instruction = args.instruction if args.instruction is not None else "" if args.no_instruction else None
        config = resolve_default_model(RetrievalConfig(model=args.model, pooling=args.pooling, chunk_size=None,
                                                       instruction=instruction))
        mining = config.with_(modes=parse_modes(args.mine_mode))
        print(f"{len(split.train)} training and {len(split.held_out)} held-out queries ({split.method}); "
              f"negatives {sampling} by {'+'.join(mining.modes)}", file=sys.stderr)
        training_bar = stage_progress()
        result = fine_tune(
            session, judgments, split, config, args.out, mining_config=mining, sampling=sampling, options=options,
            relevance=args.relevance, reranker=args.reranker, filter_above=args.filter_above,
            n_resamples=args.resamples,
            progress=lambda done, total, loss: training_bar("mine" if loss is None else "train", done, total),
            on_estimate=lambda seconds, steps: print(f"training: {steps} steps, about {seconds:.0f} s", file=sys.stderr))
    except ConfigError as exc:
        raise _flag(exc) from None
    for note in result.mined.notes:
        print(f"note: {note}", file=sys.stderr)
    losses = result.training.losses
    print(f"saved {result.model_dir} (identity {result.card.identity[:16]}): {result.training.steps} steps in "
          f"{result.training.seconds:.1f} s (estimated {result.estimate_s:.1f} s), loss "
          f"{losses[0][1]:.4f} -> {losses[-1][1]:.4f}", file=sys.stderr)
    if args.preview:
        safe_csv_frame(result.mined.preview()).to_csv(args.preview, index=False)
        print(f"wrote {args.preview}", file=sys.stderr)
    print(f"held-out queries: {len(split.held_out)}")
    print(format_experiment(result.comparison))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result.to_dict(), f, indent=1, ensure_ascii=False)
        print(f"wrote {args.json}", file=sys.stderr)
