"""``python -m bge_explorer`` search and embed, as a user runs them."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd

from bge_explorer.cli.commands import main


def test_search_prints_a_ranked_table_with_the_offline_default(sample_corpus, capsys):
    assert main(["search", "--corpus", sample_corpus, "--k", "3", "--", "When did Apollo 11 land on the Moon?"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[1].split()[:3] == ["rank", "score", "doc_id"]
    assert lines[2].split()[0] == "1" and "moon-landing" in lines[2]
    assert len(lines) == 5
    assert "Using all-MiniLM-L6-v2" in err  # the fallback is said, not hidden


def test_search_with_reranker_and_csv_output(sample_corpus, tiny_encoder, tiny_reranker, capsys):
    assert main(["search", "--corpus", sample_corpus, "--model", tiny_encoder, "--reranker", tiny_reranker,
                 "--k", "10", "--top-n", "4", "--format", "csv", "--no-instruction", "coffee beans"]) == 0
    table = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert table["rerank_rank"].tolist() == [1, 2, 3, 4]
    assert (table["movement"] == table["rank"] - table["rerank_rank"]).all()
    assert table["rerank_logit"].is_monotonic_decreasing


def test_embed_writes_chunks_and_vectors(sample_corpus, tiny_encoder, tmp_path):
    out = tmp_path / "e.parquet"
    assert main(["embed", "--corpus", sample_corpus, "--model", tiny_encoder, "--chunk-size", "32",
                 "--overlap", "8", "--out", str(out)]) == 0
    table = pd.read_parquet(out)
    assert {"chunk_id", "doc_id", "chunk", "start", "end", "text", "embedding", "model"} <= set(table.columns)
    vectors = np.stack(table["embedding"])
    assert vectors.shape == (len(table), 32) and len(table) > 26
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)


def test_bad_input_is_a_clear_error_and_exit_code(tmp_path):
    (tmp_path / "c.jsonl").write_text('{"_id": 1, "text": "ok"}\n{broken\n')
    result = subprocess.run([sys.executable, "-m", "bge_explorer", "search", "--corpus", str(tmp_path / "c.jsonl"),
                             "--model", "/etc", "q"], capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1",
                                                                                              "PATH": ""})
    assert result.returncode == 2
    assert "error: c.jsonl, line 2: not valid JSON" in result.stderr
