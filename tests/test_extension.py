"""Adding a retrieval mode is one module and one registry entry: a "title match" mode registered only here is
picked up by the configuration, the pipeline, the planner (fused with dense), the CLI, the app's mode list and
weight sliders, and evaluation, with no other change."""
from __future__ import annotations

import re

import numpy as np
import pytest

from bge_explorer.app import hybrid as app_hybrid
from bge_explorer.app import layout
from bge_explorer.cli.commands import main
from bge_explorer.data.qrels import Judgments
from bge_explorer.evaluation.evaluate import evaluate
from bge_explorer.models.loading import load_embedder
from bge_explorer.retrieval import modes as registry
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.session import Session


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


class TitlePart(registry.FirstStagePart):
    def __init__(self, titles: list[str]):
        self.titles = [words(t) for t in titles]
        self.nbytes = 0

    def score(self, query, rows):
        q = words(query.text)
        return np.array([len(q & self.titles[r]) for r in rows], np.float64)

    def search_many(self, queries, k):
        out = []
        for query in queries:
            scores = self.score(query, np.arange(len(self.titles)))
            order = np.lexsort((np.arange(len(scores)), -scores))
            out.append(order[scores[order] > 0][:k].astype(np.int64))
        return out


class TitleMatch(registry.Mode):
    """Scores a chunk by how many query words its document title shares: no model needed."""

    name, label, needs, role = "title", "title match", None, registry.FIRST_STAGE
    description = "query words in the document title"

    def build(self, state, progress=None):
        return TitlePart(list(state.chunks.table["title"].astype(str)))


@pytest.fixture()
def title_mode():
    mode = registry.register(TitleMatch())
    yield mode
    registry.unregister(mode.name)


@pytest.fixture(scope="module")
def encoder(tiny_encoder):
    return load_embedder(tiny_encoder, precision="fp32", device="cpu")


def test_the_pipeline_ranks_by_the_new_mode_and_fuses_it(title_mode, encoder, sample_corpus):
    session = Session()
    session.load_corpus([sample_corpus])
    session.build_index(encoder, chunk_size=None)
    ranking = session.search("eiffel tower in paris", session.config.with_(modes=("title",), k=5))
    assert ranking.table.loc[0, "doc_id"] == "eiffel-tower" and ranking.plan.modes == ("title",)
    titles = session.chunks.table["title"].astype(str)
    expected = sorted((len(words("eiffel tower in paris") & words(t)) for t in titles), reverse=True)
    assert ranking.score.tolist() == [float(s) for s in expected if s > 0][:5]
    fused = session.search("eiffel tower", session.config.with_(modes="dense+title", fusion="rrf", k=5))
    assert fused.plan.fusion == "rrf" and set(fused.scores) == {"dense", "title"}
    assert {"title_score", "title_rank"} <= set(fused.table.columns)


def test_the_cli_and_evaluation_take_the_new_mode(title_mode, tiny_encoder, sample_corpus, capsys):
    assert main(["search", "--corpus", sample_corpus, "--model", tiny_encoder, "--mode", "title", "--k", "3",
                 "--format", "csv", "who painted the mona lisa"]) == 0
    header, first = capsys.readouterr().out.splitlines()[:2]
    assert first.split(",")[header.split(",").index("doc_id")] == "mona-lisa" and "title_score" in header
    session = Session()
    session.load_corpus([sample_corpus])
    judgments = Judgments({"q": "the mona lisa painting"}, {"q": {"mona-lisa": 1}})
    result = evaluate(session, judgments, RetrievalConfig(model=None, modes=("title",), chunk_size=None))
    assert result.config["mode"] == "title" and result.means()["mrr@10"] == 1.0


def test_the_app_lists_the_new_mode_with_a_weight_slider(title_mode):
    assert "title" in app_hybrid.mode_choices() and "title" in app_hybrid.default_weights()
    demo = layout.build_app()
    radios = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "mode"]
    assert radios and ("title", "title") in radios[0].choices
    assert any(getattr(b, "elem_id", None) == "weight-title" for b in demo.blocks.values())
