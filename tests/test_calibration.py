"""Score calibration: thresholds against brute force on synthetic scores, and the judged pairs' scores against
the embedder's and the reranker's own outputs."""
from __future__ import annotations

import numpy as np
import pytest

from bge_explorer.data.judging import JudgmentStore
from bge_explorer.errors import ExplorerError
from bge_explorer.evaluation.calibration import (best_f1, judged_pairs, sigmoid, threshold_for_precision,
                                                 threshold_table)
from bge_explorer.models.loading import load_embedder, load_reranker
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.session import Session


def brute_force(scores, relevant):
    """Every distinct score t: (t, precision, recall, f1) of "score >= t", by counting."""
    rows = []
    for t in sorted(set(scores), reverse=True):
        predicted = [s >= t for s in scores]
        tp = sum(p and r for p, r in zip(predicted, relevant))
        fp = sum(p and not r for p, r in zip(predicted, relevant))
        fn = sum(r and not p for p, r in zip(predicted, relevant))
        precision, recall = tp / (tp + fp), tp / (tp + fn)
        rows.append((t, precision, recall, 2 * precision * recall / (precision + recall) if tp else 0.0))
    return rows


def test_the_f1_optimal_threshold_of_known_distributions_is_found_exactly():
    rng = np.random.default_rng(5)
    scores = np.r_[rng.normal(2, 1, 300), rng.normal(-1, 1, 700)].round(2)  # rounding makes ties
    relevant = np.r_[np.ones(300, bool), np.zeros(700, bool)]
    rows = brute_force(scores.tolist(), relevant.tolist())
    best = max(rows, key=lambda r: (r[3], r[0]))  # highest F1, the highest threshold on ties
    found = best_f1(scores, relevant)
    assert found.value == best[0] and found.f1 == pytest.approx(best[3]) and found.precision == pytest.approx(best[1])
    assert found.tp + found.fn == 300
    table = threshold_table(scores, relevant)
    assert np.allclose(table[["threshold", "precision", "recall", "f1"]].to_numpy(), np.array(rows))
    target = threshold_for_precision(scores, relevant, 0.95)
    lowest = min((r for r in rows if r[1] >= 0.95), key=lambda r: r[0])
    assert target.value == lowest[0] and target.precision >= 0.95


def test_separable_scores_give_f1_one_at_the_lowest_relevant_score():
    found = best_f1([0.9, 0.8, 0.75, 0.3, 0.2], [True, True, True, False, False])
    assert (found.value, found.f1, found.tp, found.fp, found.fn) == (0.75, 1.0, 3, 0, 0)
    assert threshold_for_precision([0.9, 0.1], [False, True], 0.5).value == 0.1  # at 0.1: 1 of 2 right
    assert threshold_for_precision([0.9, 0.8], [False, True], 0.9) is None  # never reaches 0.9
    with pytest.raises(ExplorerError, match="relevant"):
        best_f1([0.5, 0.4], [False, False])
    with pytest.raises(ExplorerError, match="target precision"):
        threshold_for_precision([0.5], [True], 1.5)
    assert sigmoid([0.0])[0] == 0.5


def test_judged_pairs_carry_the_embedders_and_rerankers_own_scores(sample_corpus, tiny_encoder, tiny_reranker):
    session = Session()
    session.load_corpus([sample_corpus])
    store = JudgmentStore()
    store.grade("eiffel tower paris", "eiffel-tower", 3)
    store.grade("eiffel tower paris", "great-wall", 0)
    store.grade("eiffel tower paris", "not-in-the-corpus", 1)
    store.grade("the longest river", "amazon-river", 2)
    config = RetrievalConfig(model=tiny_encoder, chunk_size=16, overlap=4, instruction="", precision="fp32",
                             reranker=tiny_reranker)  # fp32: bf16 scores shift with the batch a text is in
    pairs = judged_pairs(session, store.to_judgments(), config)
    assert len(pairs) == 3 and set(pairs["doc_id"]) == {"eiffel-tower", "great-wall", "amazon-river"}
    embedder, reranker = load_embedder(tiny_encoder, precision="fp32"), load_reranker(tiny_reranker, precision="fp32")
    chunks = session.state_for(config).chunks
    for row in pairs.itertuples():
        rows = np.flatnonzero(chunks.table["doc_id"].astype(str).to_numpy() == row.doc_id)
        passages = chunks.passages(rows)
        cosines = embedder.encode(passages, ("dense",))["dense"] @ embedder.encode_queries([row.query])[0]
        assert row.cosine == pytest.approx(float(cosines.max()), abs=1e-5)
        closest = [passages[i] for i in np.argsort(-cosines, kind="stable")[:3]]
        assert row.logit == pytest.approx(float(reranker.score(row.query, closest).max()), abs=1e-5)
        assert row.sigmoid == pytest.approx(1 / (1 + np.exp(-row.logit)))
        assert row.relevant == (row.grade >= 1)


def test_cli_calibrate_prints_and_writes_thresholds(tmp_path, sample_corpus, tiny_encoder, tiny_reranker, capsys):
    import json

    from bge_explorer.cli.commands import main
    from test_evaluation import QUESTIONS, write_beir

    queries = {f"q{i}": text for i, text in enumerate(QUESTIONS)}
    qrels = [(f"q{i}", doc, 1) for i, doc in enumerate(QUESTIONS.values())] + [("q0", "great-wall", 0)]
    folder = write_beir(tmp_path / "b", sample_corpus, queries, qrels)
    out = tmp_path / "t.json"
    assert main(["calibrate", "--beir", str(folder), "--model", tiny_encoder, "--reranker", tiny_reranker,
                 "--precision", "fp32", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "best F1" in printed and "sigmoid" in printed and "cosine" in printed
    payload = json.loads(out.read_text())
    assert payload["pairs"] == len(qrels) and payload["relevant"] == len(QUESTIONS)
    assert 0 < payload["sigmoid"]["best_f1"]["f1"] <= 1
