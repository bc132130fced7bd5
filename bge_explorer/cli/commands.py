"""Command line: ``python -m bge_explorer search|embed ...`` over the same engine as the app."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

import pandas as pd

from bge_explorer.models.catalog import DEFAULT_MODEL, EMBEDDERS, OFFLINE_MODEL
from bge_explorer.models.embedders import Embedder
from bge_explorer.data.chunking import DEFAULT_OVERLAP, DEFAULT_SIZE
from bge_explorer.errors import ExplorerError
from bge_explorer.models.loading import load_embedder, load_embedder_with_fallback, load_reranker
from bge_explorer.retrieval.search import DEFAULT_K, DEFAULT_TOP_N
from bge_explorer.session import Session


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
                        help=f"tokens per chunk, 0 for one chunk per document (default {DEFAULT_SIZE}); words for "
                             "--mode bm25 without --model")
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


MODES = ("dense", "sparse", "colbert", "bm25", "hybrid")
FUSIONS = ("m3", "weighted", "rrf")
FUSED = ("dense", "sparse", "colbert", "bm25")


def add_retrieval_options(parser, prefix: str = "") -> None:
    """--mode, --fusion, --weights, --components (``prefix`` "b-" gives configuration B's)."""
    b = bool(prefix)
    parser.add_argument(f"--{prefix}mode", choices=MODES, default=None if b else "dense",
                        help=("B's retrieval mode" if b else
                              "retrieval mode: dense (FAISS, default), sparse / colbert (BGE-M3 lexical weights / "
                              "multi-vectors), bm25 (bm25s; needs no --model) or hybrid (fused; see --fusion)"))
    parser.add_argument(f"--{prefix}fusion", choices=FUSIONS, default=None,
                        help=("B's fusion" if b else
                              "hybrid fusion: m3 (BGE-M3's weighted sum of raw dense, sparse, colbert scores; "
                              "default), weighted (min-max normalised weighted sum, any modes), rrf (reciprocal "
                              "rank fusion)"))
    parser.add_argument(f"--{prefix}weights", metavar="MODE=W,...", default=None,
                        help=("B's weights" if b else
                              "hybrid weights, e.g. dense=0.4,sparse=0.2,colbert=0.4 (m3 default), or positional "
                              "0.4,0.2,0.4 in the order of --components (default dense,sparse,colbert); weights "
                              "missing are 1 (weighted, rrf) or M3's default (m3)"))
    parser.add_argument(f"--{prefix}components", metavar="MODE,...", default=None,
                        help=("B's components" if b else
                              "modes fused by --mode hybrid, e.g. dense,bm25 (default: the model's own modes; "
                              "colbert only when named or weighted)"))


def parse_components(text: str | None) -> tuple[str, ...] | None:
    if not text:
        return None
    parts = tuple(p.strip().lower() for p in text.split(",") if p.strip())
    unknown = [p for p in parts if p not in FUSED]
    if unknown:
        raise ExplorerError(f"--components: unknown mode(s) {', '.join(unknown)}; use {', '.join(FUSED)}")
    return parts


def parse_weights(text: str | None, components: Sequence[str] | None = None) -> dict[str, float] | None:
    """``dense=0.4,sparse=0.2`` -> {"dense": 0.4, "sparse": 0.2}; ``0.4,0.2,0.4`` -> the same in the order of
    ``components`` (default dense, sparse, colbert)."""
    if not text:
        return None
    out: dict[str, float] = {}
    parts = [p.strip() for p in text.split(",") if p.strip()]
    order = list(components or ("dense", "sparse", "colbert"))
    try:
        for i, part in enumerate(parts):
            if "=" in part:
                name, value = (x.strip() for x in part.split("=", 1))
                name = name.lower()
            else:
                if i >= len(order):
                    raise ExplorerError(f"--weights: {len(parts)} positional weights for {len(order)} modes "
                                        f"({', '.join(order)}); name them as mode=weight")
                name, value = order[i], part
            if name not in FUSED:
                raise ExplorerError(f"--weights: unknown mode {name!r}; use {', '.join(FUSED)}")
            out[name] = float(value)
    except ValueError:
        raise ExplorerError(f"--weights: {text!r} is not a list of mode=weight numbers") from None
    if any(w < 0 for w in out.values()):
        raise ExplorerError("--weights: weights must be >= 0")
    return out


def hybrid_components(args: argparse.Namespace, prefix: str = "") -> tuple[str, ...] | None:
    """--components, or, when absent and weights are named, the modes with a weight above 0."""
    components = parse_components(getattr(args, f"{prefix}components"))
    weights = parse_weights(getattr(args, f"{prefix}weights"), components)
    if components is None and weights and getattr(args, f"{prefix}mode") == "hybrid" and "=" in (
            getattr(args, f"{prefix}weights") or ""):
        components = tuple(m for m in FUSED if weights.get(m, 0) > 0)
    return components


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


def lexical_session(args: argparse.Namespace) -> Session:
    """For --mode bm25: load and chunk the corpus, embedding nothing. Without --model no model is loaded and
    chunk sizes count words; with --model its tokenizer chunks (the model itself is not run)."""
    session = Session()
    corpus = session.load_corpus(args.corpus, text_column=args.text_column, id_column=args.id_column,
                                 title_column=args.title_column)
    for note in corpus.notes:
        print(f"note: {note}", file=sys.stderr)
    tokenizer = embedder_of(args).tokenizer if args.model else None
    chunks = session.chunk_only(tokenizer, args.chunk_size or None, args.overlap if args.chunk_size else 0)
    print(f"{len(corpus.documents)} documents, {len(chunks)} chunks (BM25 only, nothing embedded)", file=sys.stderr)
    return session


def describe_mode(results) -> str:
    """``mode: hybrid, m3 fusion of dense 0.4 + sparse 0.2`` for a HybridResults; empty for plain dense search."""
    mode = getattr(results, "mode", "dense")
    if mode == "dense" and not getattr(results, "components", ()):
        return ""
    if mode != "hybrid":
        return f"  mode: {mode}"
    mix = " + ".join(f"{m} {results.weights[m]:g}" if m in results.weights else m for m in results.components)
    return f"  mode: hybrid, {results.fusion} fusion of {mix} (rank/score are fused)"


def cmd_search(args: argparse.Namespace) -> None:
    plain = args.mode == "dense" and not (args.fusion or args.weights or args.components)
    session = lexical_session(args) if args.mode == "bm25" else indexed_session(args)
    reranker = load_reranker(args.reranker, precision=args.precision) if args.reranker else None
    if plain:
        results = session.search(args.query, instruction=instruction_of(args), k=args.k, reranker=reranker,
                                 top_n=args.top_n)
    else:
        components = hybrid_components(args)
        results = session.hybrid_search(
            args.query, args.mode, instruction=instruction_of(args) if args.mode != "bm25" else "", k=args.k,
            reranker=reranker, top_n=args.top_n, fusion=args.fusion or "m3",
            weights=parse_weights(args.weights, components), components=components)
    table = results.reranked() if reranker else results.table
    modes = [c for m in FUSED for c in (f"{m}_score", f"{m}_rank") if c in table.columns]
    columns = (["rerank_rank", "rank", "movement", "rerank_logit", "rerank_score", "score"] if reranker
               else ["rank", "score"]) + modes + ["doc_id", "chunk", "text"]
    table = table[columns]
    if getattr(results, "mode", "dense") == "hybrid":
        table = table.rename(columns={"rank": "fused_rank", "score": "fused_score"})
    if args.format == "csv":
        table.to_csv(sys.stdout, index=False)
    elif args.format == "json":
        print(table.to_json(orient="records", force_ascii=False))
    else:
        shown = table.assign(text=table["text"].str.replace(r"\s+", " ", regex=True).str.slice(0, 70))
        with pd.option_context("display.width", 200, "display.max_colwidth", 72, "display.max_rows", 500):
            print(f"query: {args.query!r}  instruction: {results.instruction!r}"
                  f"{f'  reranker: {results.reranker}' if reranker else ''}{describe_mode(results)}")
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
    add_retrieval_options(search)
    search.add_argument("--format", choices=["table", "csv", "json"], default="table")
    search.add_argument("query")
    search.set_defaults(run=cmd_search)

    embed = commands.add_parser("embed", help="embed a corpus; write chunks and vectors to Parquet")
    add_corpus_options(embed)
    add_model_options(embed)
    embed.add_argument("--out", required=True, metavar="FILE.parquet")
    embed.set_defaults(run=cmd_embed)

    from bge_explorer.cli.evaluate import add_evaluate_command

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
