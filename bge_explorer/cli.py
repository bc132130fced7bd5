"""Command line: ``python -m bge_explorer search|embed ...`` over the same engine as the app."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

import pandas as pd

from .catalog import DEFAULT_MODEL, EMBEDDERS, OFFLINE_MODEL
from .embedder import Embedder
from .chunking import DEFAULT_OVERLAP, DEFAULT_SIZE
from .errors import ExplorerError
from .models import load_embedder, load_embedder_with_fallback, load_reranker
from .search import DEFAULT_K, DEFAULT_TOP_N
from .session import Session


def stderr_progress(label: str):
    """A ``progress(done, total)`` callback drawing a tqdm bar on stderr."""
    from tqdm import tqdm

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=label, unit="chunk", file=sys.stderr, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return progress


def add_corpus_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", nargs="+", required=True, metavar="PATH",
                        help="corpus files: .txt .md .csv .tsv .jsonl .json .pdf")
    parser.add_argument("--text-column", help="CSV/TSV/JSON field holding the text (default: text)")
    parser.add_argument("--id-column", help="CSV/TSV/JSON field holding the document id")
    parser.add_argument("--title-column", help="CSV/TSV/JSON field holding the title")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_SIZE,
                        help=f"tokens per chunk, 0 for one chunk per document (default {DEFAULT_SIZE})")
    parser.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP, help=f"tokens shared by neighbouring chunks "
                                                                             f"(default {DEFAULT_OVERLAP})")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="NAME_OR_PATH",
                        help=f"catalog name ({', '.join(EMBEDDERS)}), Hub id or local directory (default "
                             f"{DEFAULT_MODEL}, or {OFFLINE_MODEL} when that cannot be had offline)")
    parser.add_argument("--pooling", choices=["cls", "mean"], help="pooling for a custom model (default cls)")
    parser.add_argument("--model-class", choices=["encoder", "m3"], help="class of a custom model (default encoder)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="CPU precision: bf16 where the CPU has bf16 units (auto), or fp32")


def add_instruction_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--instruction", metavar="TEXT", help="query instruction (default: the model's own)")
    group.add_argument("--no-instruction", action="store_true", help="search without a query instruction")


def instruction_of(args: argparse.Namespace) -> str | None:
    return "" if args.no_instruction else args.instruction


def embedder_of(args: argparse.Namespace) -> Embedder:
    """The --model embedder; without --model the default, falling back to the offline model (said on stderr)."""
    options = dict(pooling=args.pooling, model_class=args.model_class, precision=args.precision)
    if args.model:
        return load_embedder(args.model, **options)
    embedder, notice = load_embedder_with_fallback(DEFAULT_MODEL, **options)
    if notice:
        print(f"note: {notice}", file=sys.stderr)
    return embedder


def indexed_session(args: argparse.Namespace) -> Session:
    """Load the corpus and build the index the options describe."""
    session = Session()
    corpus = session.load_corpus(args.corpus, text_column=args.text_column, id_column=args.id_column,
                                 title_column=args.title_column)
    for note in corpus.notes:
        print(f"note: {note}", file=sys.stderr)
    chunks = session.build_index(embedder_of(args), args.chunk_size or None, args.overlap, stderr_progress("embed"))
    print(f"{len(corpus.documents)} documents, {len(chunks)} chunks"
          f"{f', {chunks.dropped_empty} empty chunks dropped' if chunks.dropped_empty else ''}", file=sys.stderr)
    return session


def cmd_search(args: argparse.Namespace) -> None:
    session = indexed_session(args)
    reranker = load_reranker(args.reranker, precision=args.precision) if args.reranker else None
    results = session.search(args.query, instruction=instruction_of(args), k=args.k, reranker=reranker,
                             top_n=args.top_n)
    table = results.reranked() if reranker else results.table
    columns = (["rerank_rank", "rank", "movement", "rerank_logit", "rerank_score", "score"] if reranker
               else ["rank", "score"]) + ["doc_id", "chunk", "text"]
    table = table[columns]
    if args.format == "csv":
        table.to_csv(sys.stdout, index=False)
    elif args.format == "json":
        print(table.to_json(orient="records", force_ascii=False))
    else:
        shown = table.assign(text=table["text"].str.replace(r"\s+", " ", regex=True).str.slice(0, 70))
        with pd.option_context("display.width", 200, "display.max_colwidth", 72, "display.max_rows", 500):
            print(f"query: {args.query!r}  instruction: {results.instruction!r}"
                  f"{f'  reranker: {results.reranker}' if reranker else ''}")
            print(shown.to_string(index=False, float_format=lambda x: f"{x:.4f}"))


def cmd_embed(args: argparse.Namespace) -> None:
    session = indexed_session(args)
    table = session.chunks.table.assign(model=session.embedder.identity, embedding=list(session.vectors))
    table.drop(columns=["page"]).assign(page=session.chunks.table["page"].astype("float")).to_parquet(args.out,
                                                                                                      index=False)
    print(f"wrote {len(table)} chunks with {session.vectors.shape[1]}-d vectors to {args.out}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bge_explorer", description="Explore retrieval with BGE models.")
    commands = parser.add_subparsers(dest="command", required=True)

    search = commands.add_parser("search", help="search a corpus and print the ranked table")
    add_corpus_options(search)
    add_model_options(search)
    add_instruction_options(search)
    search.add_argument("--reranker", metavar="NAME_OR_PATH", help="cross-encoder to rerank the top n with")
    search.add_argument("--k", type=int, default=DEFAULT_K, help=f"chunks to retrieve (default {DEFAULT_K})")
    search.add_argument("--top-n", type=int, default=DEFAULT_TOP_N,
                        help=f"candidates the reranker rescores (default {DEFAULT_TOP_N})")
    search.add_argument("--format", choices=["table", "csv", "json"], default="table")
    search.add_argument("query")
    search.set_defaults(run=cmd_search)

    embed = commands.add_parser("embed", help="embed a corpus; write chunks and vectors to Parquet")
    add_corpus_options(embed)
    add_model_options(embed)
    embed.add_argument("--out", required=True, metavar="FILE.parquet")
    embed.set_defaults(run=cmd_embed)

    from .cli_evaluate import add_evaluate_command

    add_evaluate_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ExplorerError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
