"""Judgments made in place: keyed by (query text, document id), counted against a ranking, and round-tripped
without loss through the BEIR layout and CSV; evaluation reads them as it reads an uploaded qrels file."""
from __future__ import annotations

import pytest

from bge_explorer.data.judging import MAX_JUDGMENTS, JudgmentStore
from bge_explorer.data.qrels import load_beir
from bge_explorer.errors import ExplorerError
from bge_explorer.evaluation.evaluate import evaluate
from bge_explorer.evaluation.metrics import score_rankings
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.session import Session
from test_evaluation import beir_dir  # noqa: F401  (fixture)

TRIPLES = [("eiffel tower", "eiffel", 3), ("eiffel tower", "louvre", 1), ("eiffel tower", "nile", 0),
           ("great wall, \"china\"", "great-wall", 2), ("great wall, \"china\"", "nile", 0),
           ("only junk here", "louvre", 0), ("tab\tand ünïcode", "eiffel", 1)]


def store_of(triples) -> JudgmentStore:
    store = JudgmentStore()
    for query, doc_id, grade in triples:
        store.grade(query, doc_id, grade)
    return store


def snapshot(store: JudgmentStore) -> dict:
    return {q: store.grades(q) for q in store.queries()}


def test_round_trip_through_beir_zip_and_csv_is_lossless(tmp_path):
    store = store_of(TRIPLES)
    again = JudgmentStore()
    assert again.load_beir(store.to_beir_zip(tmp_path / "judgments.zip")) == len(TRIPLES)
    assert snapshot(again) == snapshot(store) and again.queries() == store.queries()
    csv_path = tmp_path / "judgments.csv"
    csv_path.write_text(store.to_csv(), encoding="utf-8")
    from_csv = JudgmentStore()
    assert from_csv.load_csv(csv_path) == len(TRIPLES) and snapshot(from_csv) == snapshot(store)
    # the zip is a BEIR dataset (without a corpus) for the loaders too
    bench = load_beir(tmp_path / "judgments.zip", need_corpus=False)
    assert set(bench.judgments.queries.values()) == {"eiffel tower", "great wall, \"china\"", "tab\tand ünïcode"}


def test_counts_holes_and_next_unjudged_follow_a_ranking():
    store = store_of(TRIPLES)
    top = ["eiffel", "pyramids", "louvre", "nile", "colosseum"]
    counts = store.counts("eiffel tower", top)
    assert (counts.judged, counts.holes, counts.relevant) == (3, 2, 2)
    assert store.next_unjudged("eiffel tower", top) == 1
    assert store.next_unjudged("eiffel tower", top, after=1) == 4
    assert store.next_unjudged("eiffel tower", top, after=4) == 1  # wraps around
    assert store.next_unjudged("eiffel tower", ["eiffel", "louvre"]) is None
    store.grade("eiffel tower", "louvre", None)  # un-judge
    assert store.get("eiffel tower", "louvre") is None and store.counts("eiffel tower", top).judged == 2


def test_grades_are_checked_and_the_scale_can_switch():
    store = JudgmentStore()
    for bad in (4, -1, 1.5, True, "2"):
        with pytest.raises(ExplorerError, match="0 to 3"):
            store.grade("q", "d", bad)
    store.grade("q", "d", 3)
    store.set_scale("binary")
    assert store.get("q", "d") == 1 and store.top_grade == 1
    with pytest.raises(ExplorerError, match="0 to 1"):
        store.grade("q", "d", 2)
    with pytest.raises(ExplorerError, match="scale"):
        store.set_scale("stars")


def test_a_session_keeps_a_bounded_number_of_judgments(monkeypatch):
    import bge_explorer.data.judging as judging

    monkeypatch.setattr(judging, "MAX_JUDGMENTS", 3)
    store = store_of(TRIPLES[:3])
    store.grade("eiffel tower", "eiffel", 2)  # changing a grade is always possible
    with pytest.raises(ExplorerError, match="at most 3"):
        store.grade("new query", "doc", 1)
    assert MAX_JUDGMENTS >= 10_000


def test_session_judgments_evaluate_like_hand_built_qrels(beir_dir, tiny_encoder):  # noqa: F811
    data = load_beir(beir_dir)
    session = Session()
    session.set_corpus(data.corpus)
    store = session.judgments
    texts = list(data.judgments.queries.values())[:3]
    docs = [next(iter(data.judgments.qrels[q])) for q in list(data.judgments.queries)[:3]]
    for text, doc in zip(texts, docs):
        store.grade(text, doc, 2)
        store.grade(text, "great-wall" if doc != "great-wall" else "eiffel", 0)
    store.grade("a query with only an irrelevant grade", "eiffel", 0)
    judgments = store.to_judgments()
    assert list(judgments.queries.values()) == texts
    assert any(n.startswith("1 queries have no relevant document") for n in judgments.notes)
    config = RetrievalConfig(model=tiny_encoder, chunk_size=None, instruction="")
    result = evaluate(session, judgments, config)
    qrels = [{doc: 2, ("great-wall" if doc != "great-wall" else "eiffel"): 0} for doc in docs]
    expected = score_rankings(result.rankings, qrels)
    assert result.retrieval.reset_index(drop=True).equals(expected)
    with pytest.raises(ExplorerError, match="No judgments"):
        JudgmentStore().to_judgments()


def test_judgments_travel_with_a_pickled_session():
    """ZeroGPU pickles the session's state between processes: the grades come back, the lock is rebuilt."""
    import pickle

    store = store_of(TRIPLES)
    back = pickle.loads(pickle.dumps(store))
    assert snapshot(back) == snapshot(store)
    back.grade("eiffel tower", "new", 2)
    assert back.get("eiffel tower", "new") == 2 and store.get("eiffel tower", "new") is None
