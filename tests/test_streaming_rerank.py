"""Reranking that streams: the retrieval table comes before any cross-encoder call, the reranked table fills in
batch by batch, and the final result is the one unstreamed reranking gives (same logits, same order)."""
from __future__ import annotations

import numpy as np

from bge_explorer.app import explorer as ui
from bge_explorer.models.loading import load_reranker
from bge_explorer.retrieval.pipeline import FIRST_RERANK_STEP, rerank, rerank_steps
from bge_explorer.retrieval.rerank import RerankCache


def indexed(sample_corpus, tiny_encoder):
    *_, app = ui.load_corpus([sample_corpus])
    *_, app = ui.build_index(tiny_encoder, chunking="none", state=app, progress=None)
    return app


def test_rerank_steps_grow_a_batch_at_a_time_and_end_where_rerank_does(sample_corpus, tiny_encoder, tiny_reranker):
    app = indexed(sample_corpus, tiny_encoder)
    reranker = load_reranker(tiny_reranker)
    ranking = app.session.search("eiffel tower paris", app.session.config.with_(k=20))
    cache = RerankCache()
    sizes, scored = [], []
    for step in rerank_steps(ranking, reranker, 20, cache):
        sizes.append(len(step.rerank_logits))
        scored.append(cache.pairs_scored)
    expected = list(range(FIRST_RERANK_STEP, 20, reranker.batch_size)) + [20]
    assert sizes == expected[:len(sizes)] and sizes[-1] == 20 and sizes[0] == FIRST_RERANK_STEP
    assert scored == sizes  # each step scores only its new batch; earlier pairs come from the cache
    streamed = ranking.rerank_logits.copy()
    reference = rerank(app.session.search("eiffel tower paris", app.session.config.with_(k=20)), reranker, 20,
                       RerankCache())
    np.testing.assert_allclose(streamed, reference.rerank_logits, rtol=1e-6)
    np.testing.assert_array_equal(ranking.final_rows(), reference.final_rows())
    again = list(rerank_steps(ranking, reranker, 12, cache))  # a smaller top n: all scored already
    assert len(again) == 1 and cache.pairs_scored == 20 and len(again[0].rerank_logits) == 12


def test_the_search_handler_shows_retrieval_before_the_reranker_scores_a_pair(sample_corpus, tiny_encoder,
                                                                               tiny_reranker):
    app = indexed(sample_corpus, tiny_encoder)
    cache = app.session.rerank_cache
    steps = ui.search("eiffel tower paris", "model default", "", 10, tiny_reranker, 20, app)
    before, after, summary, _, _ = next(steps)
    assert cache.pairs_scored == 0  # the first yield comes before any cross-encoder call
    assert len(before) == 10 and len(after) == 0 and "0 of 20 candidates scored" in summary
    assert (before["reranked rank"] == "·").all()
    rest = list(steps)
    rescored = [int((out[0]["reranked rank"] != "·").sum()) for out in rest]
    assert rescored == sorted(rescored) and rescored[0] <= FIRST_RERANK_STEP and len(rest) >= 2
    final = rest[-1]
    first_candidates = set(app.ranking.rows[:20].tolist())
    assert "rescored the top 20 candidates" in final[2] and "<progress" not in final[2]
    assert cache.pairs_scored == 20
    unstreamed = ui.search_once("eiffel tower paris", "model default", "", 10, tiny_reranker, 20, app)
    assert final[1].equals(unstreamed[1]) and final[0].equals(unstreamed[0])
    # a smaller top n: one yield, nothing scored
    outputs = list(ui.search("eiffel tower paris", "model default", "", 10, tiny_reranker, 5, app))
    assert len(outputs) == 1 and cache.pairs_scored == 20
    # another instruction: only candidates the first top 20 did not have are scored
    list(ui.search("eiffel tower paris", "custom", "Represent this for search: ", 10, tiny_reranker, 20, app))
    assert app.ranking.instruction == "Represent this for search: "
    new = [r for r in app.ranking.rows[:20].tolist() if r not in first_candidates]
    assert cache.pairs_scored == 20 + len(new)
