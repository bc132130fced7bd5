"""Two published numbers, reproduced: BM25 on BEIR SciFact (test split), nDCG@10.

No model: documents are chunked whole (``title + " " + text``) and indexed with bm25s (Lucene BM25, k1=1.5,
b=0.75, English stop words). The engine's default analyzer stems with Snowball English, bm25s's own setup,
which bm25s publishes at 0.6874; ``--bm25 lucene`` (no stemming) is BEIR's baseline, 0.665 (BEIR paper,
Table 2). The first test runs the exact command a user types, ``python -m bge_explorer evaluate --beir
../shared/data/scifact --mode bm25 --bm25 lucene``; the second scores the engine's default run with
pytrec_eval. A few seconds each; marked slow.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval

from bge_explorer.retrieval.pipeline import retrieve
from bge_explorer.session import Session
from conftest import SCIFACT

BEIR_BM25_NDCG_AT_10 = 0.665  # Thakur et al., NeurIPS 2021 datasets track, BM25 on SciFact
TOLERANCE = 0.01  # BEIR used Elasticsearch's analyzer; bm25s's tokenizer differs slightly
BM25S_NDCG_AT_10 = 0.6874  # bm25s README, SciFact, its default (stemmed) configuration
BM25S_TOLERANCE = 0.003  # the same library and settings
ROOT = Path(__file__).resolve().parent.parent


def need_scifact() -> None:
    if not os.path.isfile(os.path.join(SCIFACT, "qrels", "test.tsv")):
        pytest.skip(f"SciFact data is not at {SCIFACT} (BEIR test split: corpus.jsonl, queries.jsonl, "
                    "qrels/test.tsv); nothing to reproduce against")


@pytest.mark.slow
def test_cli_evaluate_bm25_on_scifact_reproduces_the_published_ndcg(tmp_path):
    need_scifact()
    out = tmp_path / "bm25.json"
    beir = os.path.relpath(SCIFACT, ROOT)  # ../shared/data/scifact from the repository root
    result = subprocess.run([sys.executable, "-m", "bge_explorer", "evaluate", "--beir", beir, "--mode", "bm25",
                             "--bm25", "lucene", "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
    assert result.returncode == 0, result.stderr
    payload = json.loads(out.read_text())
    ndcg = payload["retrieval"]["ndcg@10"]
    print(f"CLI BM25 SciFact nDCG@10 = {ndcg:.4f} (BEIR: {BEIR_BM25_NDCG_AT_10})")
    assert payload["config"]["queries"] == 300 and payload["config"]["documents"] == 5183
    assert payload["config"]["model"] is None and payload["config"]["passages_embedded"] == 0  # no model at all
    assert "stemmer=none" in payload["config"]["bm25"]  # the analyzer asked for is the one that ran
    assert ndcg == pytest.approx(BEIR_BM25_NDCG_AT_10, abs=TOLERANCE)
    assert "ndcg" in result.stdout and f"{ndcg:.4f}" in result.stdout  # the printed table shows the figure


@pytest.mark.slow
def test_scifact_bm25_default_reproduces_bm25s_published_ndcg():
    need_scifact()
    qrels_path = os.path.join(SCIFACT, "qrels", "test.tsv")
    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    with open(os.path.join(SCIFACT, "queries.jsonl")) as f:
        queries = {r["_id"]: r["text"] for r in map(json.loads, f) if r["_id"] in qrels}
    session = Session()
    session.load_corpus([os.path.join(SCIFACT, "corpus.jsonl")])
    chunks = session.chunk_only(chunk_size=None)
    assert len(chunks) == 5183 and len(queries) == 300
    ids = list(queries)
    assert session.config.modes == ("bm25",) and session.config.model is None
    rankings = retrieve(session, session.config.with_(k=100), [queries[q] for q in ids], state=session.index_state())
    doc_ids = chunks.table["doc_id"].to_numpy()
    run = {q: {str(doc_ids[r]): float(s) for r, s in zip(ranking.rows, ranking.score)}
           for q, ranking in zip(ids, rankings)}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    ndcg = float(np.mean([per_query[q]["ndcg_cut_10"] for q in ids]))
    print(f"BM25 (stemmed) SciFact nDCG@10 = {ndcg:.4f} (bm25s: {BM25S_NDCG_AT_10})")
    assert session.config.bm25 == "stemmed"
    assert ndcg == pytest.approx(BM25S_NDCG_AT_10, abs=BM25S_TOLERANCE)
