"""Labelled queries uploaded as files -> a :class:`~bge_explorer.data.qrels.Benchmark`, for the app and the library.

Accepted: one BEIR ``.zip``; ``corpus.jsonl`` (optional) + ``queries.jsonl`` + a qrels ``.tsv``; or a ``.csv``
of ``query,relevant_doc_id[,score]``. Without a corpus file the benchmark's corpus is None: the caller
evaluates against the corpus it already has.
"""
from __future__ import annotations

import os
from typing import Sequence

from bge_explorer.data.corpus import load_corpus
from bge_explorer.data.qrels import Benchmark, combine, load_beir, read_qrels_csv, read_qrels_tsv, read_queries
from bge_explorer.errors import ExplorerError
from bge_explorer.settings import Limits


def _name(path: str) -> str:
    return os.path.basename(str(path))


def load_uploaded(paths: Sequence[str], split: str, limits: Limits) -> Benchmark:
    """The benchmark the uploaded files hold (see the module docstring). Raises ExplorerError naming the file."""
    paths = [str(p) for p in paths]
    if not paths:
        raise ExplorerError("Upload labelled queries: a BEIR zip, queries.jsonl with a qrels .tsv, or a CSV of "
                            "query,relevant_doc_id[,score].")
    limits.check_files(paths)
    split = limits.check_field((split or "test").strip(), "the qrels split") or "test"
    zips = [p for p in paths if p.lower().endswith(".zip")]
    if zips:
        if len(paths) > 1:
            raise ExplorerError("Upload the BEIR zip on its own.")
        return load_beir(zips[0], split, need_corpus=False, name=_name(zips[0]),
                         max_bytes=int(limits.max_upload_mb * 10 * 2**20))
    corpus_files = [p for p in paths if "corpus" in _name(p).lower() and p.lower().endswith(".jsonl")]
    csvs = [p for p in paths if p.lower().endswith(".csv")]
    tsvs = [p for p in paths if p.lower().endswith(".tsv")]
    queries = [p for p in paths if p.lower().endswith(".jsonl") and p not in corpus_files]
    other = set(paths) - set(corpus_files) - set(csvs) - set(tsvs) - set(queries)
    if other:
        raise ExplorerError(f"Unexpected file(s): {', '.join(sorted(_name(p) for p in other))}. Upload a BEIR zip, "
                            "queries.jsonl + a qrels .tsv (+ corpus.jsonl), or a CSV.")
    if csvs and (tsvs or queries) or len(csvs) > 1 or len(tsvs) > 1 or len(queries) > 1:
        raise ExplorerError("Upload one set of judgments: a CSV, or queries.jsonl with one qrels .tsv.")
    if csvs:
        q, qrels = read_qrels_csv(csvs[0], _name(csvs[0]))
        judgments = combine(q, qrels, _name(csvs[0]))
    elif tsvs and queries:
        judgments = combine(read_queries(queries[0], _name(queries[0])), read_qrels_tsv(tsvs[0], _name(tsvs[0])),
                            _name(tsvs[0]))
    else:
        raise ExplorerError("A qrels .tsv needs its queries.jsonl (and queries.jsonl its qrels .tsv).")
    corpus = load_corpus(corpus_files[:1], names=[_name(corpus_files[0])]) if corpus_files else None
    return Benchmark(corpus, judgments, _name(corpus_files[0]) if corpus_files else "", split)
