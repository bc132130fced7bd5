"""Command line: ``python -m bge_explorer search|embed|evaluate|finetune ...`` over the same engine as the app.

Each command builds one :class:`~bge_explorer.retrieval.config.RetrievalConfig` from ``--config FILE`` and
its options (:mod:`bge_explorer.cli.options`) and runs it through the one pipeline.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

import pandas as pd

from bge_explorer.cli.evaluate import add_evaluate_command
from bge_explorer.cli.calibrate import add_calibrate_command
from bge_explorer.cli.experiment import add_compare_command, add_experiment_command
from bge_explorer.cli.finetune import add_finetune_command
from bge_explorer.cli.scale import add_ray_options, add_scale_commands, cmd_embed_ray
from bge_explorer.cli.options import (add_config_options, add_corpus_options, config_from_args, resolve_default_model,
                                      stderr_progress)
from bge_explorer.data.chunking import DEFAULT_SIZE
from bge_explorer.data.safe_text import safe_csv_frame
from bge_explorer.errors import ExplorerError
from bge_explorer.exports import chunk_table
from bge_explorer.retrieval.config import DEFAULT_K, RetrievalConfig
from bge_explorer.session import Session


def indexed_session(args: argparse.Namespace, config: RetrievalConfig) -> tuple[Session, RetrievalConfig]:
    """Load the corpus and build the index the configuration describes (BM25 alone embeds nothing)."""
    session = Session()
    corpus = session.load_corpus(args.corpus, text_column=args.text_column, id_column=args.id_column,
                                 title_column=args.title_column)
    for note in corpus.notes:
        print(f"note: {note}", file=sys.stderr)
    config = resolve_default_model(config)
    embedder = session.embedder_for(config)
    if embedder is not None:
        print(f"model: {embedder.path_note}", file=sys.stderr)  # which backend and precision run, and why
    if config.needs_model:
        chunks = session.build_index(embedder, config.chunk_size, config.overlap, stderr_progress("embed"))
        how = ""
    else:
        chunks = session.chunk_only(embedder.tokenizer if embedder is not None else None, config.chunk_size,
                                    config.overlap)
        how = " (BM25 only, nothing embedded)"
    print(f"{len(corpus.documents)} documents, {len(chunks)} chunks{how}"
          f"{f', {chunks.dropped_empty} empty chunks dropped' if chunks.dropped_empty else ''}", file=sys.stderr)
    return session, config


def cmd_search(args: argparse.Namespace) -> None:
    config = config_from_args(args)
    if args.k is not None:
        config = config.with_(k=args.k)
    session, config = indexed_session(args, config)
    ranking = session.search(args.query, config)
    reranked = ranking.rerank_logits is not None
    table = ranking.reranked() if reranked else ranking.table
    # every mode's score and rank, but for plain dense search (its rank and score are the dense ones)
    per_mode = bool(ranking.plan.fusion) or ranking.plan.computed != ("dense",)
    modes = [c for m in ranking.modes for c in (f"{m}_score", f"{m}_rank")] if per_mode else []
    columns = (["rerank_rank", "rank", "movement", "rerank_logit", "rerank_score", "score"] if reranked
               else ["rank", "score"]) + modes + ["doc_id", "chunk", "text"]
    table = table[columns]
    if ranking.plan.fusion:
        table = table.rename(columns={"rank": "fused_rank", "score": "fused_score"})
    if args.format == "csv":
        safe_csv_frame(table).to_csv(sys.stdout, index=False)
    elif args.format == "json":
        print(table.to_json(orient="records", force_ascii=False))
    else:
        shown = table.assign(text=table["text"].str.replace(r"\s+", " ", regex=True).str.slice(0, 70))
        with pd.option_context("display.width", 200, "display.max_colwidth", 72, "display.max_rows", 500):
            print(f"query: {args.query!r}  instruction: {ranking.instruction!r}"
                  f"{f'  reranker: {ranking.reranker}' if reranked else ''}  mode: {ranking.plan.label}"
                  f"{' (rank/score are fused)' if ranking.plan.fusion else ''}  config: {config.id}")
            for note in ranking.plan.notes:
                print(f"note: {note}", file=sys.stderr)
            print(shown.to_string(index=False, float_format=lambda x: f"{x:.4f}"))


def cmd_embed(args: argparse.Namespace) -> None:
    if args.engine == "ray":
        return cmd_embed_ray(args)
    session, config = indexed_session(args, config_from_args(args).with_(modes=("dense",)))
    table = chunk_table(session)
    table.to_parquet(args.out, index=False)
    print(f"wrote {len(table)} chunks with {session.vectors.shape[1]}-d vectors to {args.out}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bge_explorer", description="Explore retrieval with BGE models.")
    commands = parser.add_subparsers(dest="command", required=True)

    search = commands.add_parser("search", help="search a corpus and print the ranked table")
    add_corpus_options(search)
    add_config_options(search, chunk_default=f" (default {DEFAULT_SIZE})")
    search.add_argument("--k", type=int, help=f"chunks to retrieve (default {DEFAULT_K})")
    search.add_argument("--format", choices=["table", "csv", "json"], default="table")
    search.add_argument("query")
    search.set_defaults(run=cmd_search)

    embed = commands.add_parser("embed", help="embed a corpus; write chunks and vectors to Parquet")
    add_corpus_options(embed)
    add_config_options(embed, chunk_default=f" (default {DEFAULT_SIZE})")
    embed.add_argument("--out", required=True, metavar="FILE.parquet | DIR", help="a Parquet file (a folder of "
                                                                                 "shards with --engine ray)")
    add_ray_options(embed)
    embed.set_defaults(run=cmd_embed)
    add_scale_commands(commands)

    add_evaluate_command(commands)
    add_experiment_command(commands)
    add_compare_command(commands)
    add_calibrate_command(commands)
    add_finetune_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except ExplorerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
