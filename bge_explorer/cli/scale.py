"""``embed --engine ray`` (Parquet shards from a Ray cluster), ``load-index`` (shards into Milvus/Qdrant) and
``connect`` (search an existing index, reranked like any search)."""
from __future__ import annotations

import argparse
import sys

import pandas as pd

from bge_explorer.cli.options import config_from_args, resolve_default_model
from bge_explorer.models.devices import PRECISIONS


def add_ray_options(embed: argparse.ArgumentParser) -> None:
    """Options of ``embed`` for the Ray engine (``--out`` is then a folder of shards)."""
    embed.add_argument("--engine", choices=["local", "ray"], default="local",
                       help="local: one process, one Parquet file; ray: Ray Data actors, a folder of Parquet shards")
    embed.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    embed.add_argument("--workers", type=int, default=2, help="model actors (default 2)")
    embed.add_argument("--gpus-per-worker", type=float, default=0, help="GPUs per actor (default 0: CPU actors)")
    embed.add_argument("--shard-docs", type=int, default=1_000, help="documents per Parquet shard (default 1000)")


def cmd_embed_ray(args: argparse.Namespace) -> None:
    from bge_explorer.scale.ray_embed import embed_corpus

    config = resolve_default_model(config_from_args(args))
    summary = embed_corpus(args.corpus, args.out, config.model, pooling=config.pooling, model_class=config.model_class,
                           precision=config.precision, chunk_size=config.chunk_size, overlap=config.overlap,
                           address=args.address, workers=args.workers, gpus_per_worker=args.gpus_per_worker,
                           shard_docs=args.shard_docs, text_column=args.text_column, id_column=args.id_column,
                           title_column=args.title_column)
    print(summary.line(), file=sys.stderr)


def _store_options(parser: argparse.ArgumentParser, backends: list[str]) -> None:
    parser.add_argument("--index", choices=backends, required=True, help="the store's kind")
    parser.add_argument("--uri", help="Milvus URI (a milvus-lite .db file or http://host:19530) or Qdrant "
                                      "(':memory:', a local folder or http://host:6333)")
    parser.add_argument("--collection", help="collection name")


def cmd_load_index(args: argparse.Namespace) -> None:
    from bge_explorer.scale.connect import load_shards

    index = load_shards(args.shards, args.index, uri=args.uri, collection=args.collection)
    print(f"wrote {index.count():,} vectors into {args.index} {args.uri} / {args.collection}", file=sys.stderr)
    index.close()


def cmd_connect(args: argparse.Namespace) -> None:
    from bge_explorer.scale.connect import connect, search

    connection = connect(args.index, uri=args.uri, collection=args.collection, path=args.path, model=args.model,
                         confirm_model=args.confirm_model, precision=args.precision or "auto")
    print(connection.describe(), file=sys.stderr)
    for note in connection.notes:
        print(f"note: {note}", file=sys.stderr)
    ranking = search(connection, args.query, k=args.k, instruction=args.instruction)
    columns = ["rank", "score", "doc_id", "chunk", "text"]
    if args.reranker:
        from bge_explorer.models.loading import load_reranker
        from bge_explorer.retrieval.pipeline import rerank
        from bge_explorer.retrieval.rerank import RerankCache

        rerank(ranking, load_reranker(args.reranker), args.top_n, RerankCache())
        table = ranking.reranked()
        columns = ["rerank_rank", "rank", "movement", "rerank_logit", "rerank_score", "score", "doc_id", "chunk",
                   "text"]
    else:
        table = ranking.table
    table = table[columns]
    if args.format == "json":
        print(table.to_json(orient="records", force_ascii=False))
    else:
        shown = table.assign(text=table["text"].str.replace(r"\s+", " ", regex=True).str.slice(0, 70))
        with pd.option_context("display.width", 200, "display.max_colwidth", 72, "display.max_rows", 500):
            print(shown.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    connection.index.close()


def add_scale_commands(commands) -> None:
    """``load-index`` and ``connect`` subcommands."""
    load = commands.add_parser("load-index", help="copy Parquet shards (embed --engine ray) into a new Milvus or "
                                                  "Qdrant collection")
    load.add_argument("--shards", required=True, metavar="DIR")
    _store_options(load, ["milvus", "qdrant"])
    load.set_defaults(run=cmd_load_index)

    conn = commands.add_parser("connect", help="search an existing index (Milvus, Qdrant or Parquet shards), "
                                               "read-only")
    _store_options(conn, ["milvus", "qdrant", "parquet"])
    conn.add_argument("--path", metavar="DIR", help="the folder of Parquet shards (--index parquet)")
    conn.add_argument("--model", help="model to query with (default: the one stored with the index)")
    conn.add_argument("--confirm-model", action="store_true",
                      help="use --model for a store that has no model identity metadata")
    conn.add_argument("--precision", choices=PRECISIONS)
    conn.add_argument("--instruction", help="query instruction (default: the one stored with the index)")
    conn.add_argument("--reranker", help="cross-encoder to rerank the top n with")
    conn.add_argument("--top-n", type=int, default=20)
    conn.add_argument("--k", type=int, default=10)
    conn.add_argument("--format", choices=["table", "json"], default="table")
    conn.add_argument("query")
    conn.set_defaults(run=cmd_connect)
