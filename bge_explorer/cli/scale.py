"""``embed --engine ray`` (Parquet shards from a Ray cluster), ``load-index`` (shards into Milvus/Qdrant),
``connect`` (search an existing index, reranked like any search) and ``experiment-index`` (configurations
evaluated on an existing index against judgments)."""
from __future__ import annotations

import argparse
import sys

import pandas as pd

from bge_explorer.cli.options import config_from_args, resolve_default_model
from bge_explorer.errors import ExplorerError
from bge_explorer.models.backends import BACKENDS, DEFAULT_BACKEND
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
    from bge_explorer.scale.connect import search

    connection = _connect(args)
    ranking = search(connection, args.query, k=args.k, instruction=args.instruction)
    columns = ["rank", "score", "doc_id", "chunk", "text"]
    if args.reranker:
        from bge_explorer.models.loading import load_reranker
        from bge_explorer.retrieval.pipeline import rerank
        from bge_explorer.retrieval.rerank import RerankCache

        rerank(ranking, load_reranker(args.reranker, backend=args.backend or DEFAULT_BACKEND,
                                      precision=args.precision or "auto"), args.top_n, RerankCache())
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


def _connect(args: argparse.Namespace):
    from bge_explorer.scale.connect import connect

    connection = connect(args.index, uri=args.uri, collection=args.collection, path=args.path, model=args.model,
                         confirm_model=args.confirm_model, precision=args.precision or "auto",
                         model_backend=args.backend or DEFAULT_BACKEND)
    print(connection.describe(), file=sys.stderr)
    print(f"model: {connection.embedder.path_note}", file=sys.stderr)  # which backend and precision run, and why
    for note in connection.notes:
        print(f"note: {note}", file=sys.stderr)
    return connection


def _judgments(args: argparse.Namespace):
    """--beir (its queries and qrels; the corpus is the store) or --qrels [--queries]."""
    from bge_explorer.data.qrels import load_beir, load_judgments

    if bool(args.beir) == bool(args.qrels):
        raise ExplorerError("give the judgments as --beir DIR_OR_ZIP or as --qrels FILE (and --queries for a BEIR "
                            "qrels TSV)")
    judgments = (load_beir(args.beir, args.split, need_corpus=False).judgments if args.beir else
                 load_judgments(args.qrels, args.queries))
    for note in judgments.notes:
        print(f"note: {note}", file=sys.stderr)
    return judgments


def cmd_experiment_index(args: argparse.Namespace) -> None:
    from bge_explorer.cli.evaluate import stage_progress
    from bge_explorer.cli.experiment import format_experiment, write_experiment
    from bge_explorer.evaluation.experiment import ExperimentPlan
    from bge_explorer.retrieval.config import RetrievalConfig
    from bge_explorer.scale.experiment import run_connected_experiment

    judgments = _judgments(args)
    connection = _connect(args)
    try:
        base = RetrievalConfig(model=connection.embedder.spec.name, chunk_size=None,
                               backend=args.backend or DEFAULT_BACKEND, precision=args.precision or "auto")
        plan = ExperimentPlan.load(args.configs, base=base)
        if args.baseline:
            plan.baseline = args.baseline
        plan.checked()
        result = run_connected_experiment(connection, judgments, plan, progress=stage_progress(),
                                          n_resamples=args.resamples)
    finally:
        connection.index.close()
    print(format_experiment(result))
    for note in dict.fromkeys(n for r in result.results.values() for n in r.notes if n not in judgments.notes):
        print(f"note: {note}", file=sys.stderr)
    write_experiment(result, args.json, args.csv)


def _connect_options(parser: argparse.ArgumentParser) -> None:
    _store_options(parser, ["milvus", "qdrant", "parquet"])
    parser.add_argument("--path", metavar="DIR", help="the folder of Parquet shards (--index parquet)")
    parser.add_argument("--model", help="model to query with (default: the one stored with the index)")
    parser.add_argument("--confirm-model", action="store_true",
                        help="use --model for a store that has no model identity metadata")
    parser.add_argument("--backend", choices=BACKENDS, help="what runs the model and the reranker: torch (default) "
                                                          "or openvino (docs/cpu.md)")
    parser.add_argument("--precision", choices=PRECISIONS)


def add_scale_commands(commands) -> None:
    """``load-index``, ``connect`` and ``experiment-index`` subcommands."""
    load = commands.add_parser("load-index", help="copy Parquet shards (embed --engine ray) into a new Milvus or "
                                                  "Qdrant collection")
    load.add_argument("--shards", required=True, metavar="DIR")
    _store_options(load, ["milvus", "qdrant"])
    load.set_defaults(run=cmd_load_index)

    conn = commands.add_parser("connect", help="search an existing index (Milvus, Qdrant or Parquet shards), "
                                               "read-only")
    _connect_options(conn)
    conn.add_argument("--instruction", help="query instruction (default: the one stored with the index)")
    conn.add_argument("--reranker", help="cross-encoder to rerank the top n with")
    conn.add_argument("--top-n", type=int, default=20)
    conn.add_argument("--k", type=int, default=10)
    conn.add_argument("--format", choices=["table", "json"], default="table")
    conn.add_argument("query")
    conn.set_defaults(run=cmd_connect)

    ex = commands.add_parser(
        "experiment-index", help="configurations (instruction, reranker and depth, BM25 fusion) evaluated on an "
                                 "existing index against judgments, with intervals and Holm-adjusted tests",
        description="Evaluate the configurations of a YAML/JSON file on a connected Milvus/Qdrant collection or "
                    "Parquet shards, read-only: each query fetches its candidates from the store, then the same "
                    "fusion, reranking and metrics as the in-memory experiment. Configurations share the store's "
                    "embedding model (the default of every configuration).")
    _connect_options(ex)
    ex.add_argument("--beir", metavar="DIR_OR_ZIP", help="judgments: queries.jsonl and qrels/<split>.tsv of a BEIR "
                                                         "dataset (its corpus is not read: the store is the corpus)")
    ex.add_argument("--split", default="test", help="qrels split of --beir (default test)")
    ex.add_argument("--qrels", metavar="FILE", help="judgments: a BEIR qrels TSV (with --queries) or a CSV of "
                                                    "query,relevant_doc_id[,score]")
    ex.add_argument("--queries", metavar="FILE", help="BEIR queries.jsonl for --qrels")
    ex.add_argument("--configs", required=True, metavar="FILE",
                    help="YAML or JSON: {configurations: [{name: ..., <fields>}, ...], baseline: NAME}")
    ex.add_argument("--baseline", metavar="NAME", help="the configuration the others are tested against")
    ex.add_argument("--resamples", type=int, default=10_000, help="random sign flips and bootstrap samples")
    ex.add_argument("--json", metavar="FILE", help="write the experiment as JSON")
    ex.add_argument("--csv", metavar="FILE", help="write the per-query metrics of every configuration as CSV")
    ex.set_defaults(run=cmd_experiment_index)
