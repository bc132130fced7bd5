"""Shared fixtures: tiny random-weight models built once per test run, loaded through FlagEmbedding."""
from __future__ import annotations

import os
import socket

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a Hub name fails at once instead of after a minute
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("BGE_EXPLORER_AUTO_UMAP", "0")  # maps are fitted when asked for; the browser tests turn it on

import pytest

from bge_explorer.models import random_models

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
SCIFACT = os.path.abspath(os.path.join(SHARED_DATA, "scifact"))

SAMPLE_QUESTIONS = {  # assets/sample_corpus.jsonl: question -> the document that answers it
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


def pytest_collection_modifyitems(items) -> None:
    """Browser tests belong to the slow tier too: ``pytest -m "not slow"`` is the fast inner loop."""
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> str:
    return random_models.build(tmp_path_factory.mktemp("models") / "tiny-encoder", "encoder")


@pytest.fixture(scope="session")
def tiny_reranker(tmp_path_factory) -> str:
    return random_models.build(tmp_path_factory.mktemp("models") / "tiny-reranker", "reranker", seed=1)


@pytest.fixture(scope="session")
def tiny_m3(tmp_path_factory) -> str:
    return random_models.build(tmp_path_factory.mktemp("models") / "tiny-m3", "m3", seed=2)


def random_corpus(n: int = 40, seed: int = 11, titles: bool = True):
    """A corpus of ``n`` documents of 5-30 random words (every third with a two-word title when ``titles``)."""
    import numpy as np
    import pandas as pd

    from bge_explorer.data.corpus import Corpus

    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(random_models.WORDS, rng.integers(5, 30))) for _ in range(n)]
    heads = [" ".join(rng.choice(random_models.WORDS, 2)) if titles and i % 3 == 0 else "" for i in range(n)]
    return Corpus(pd.DataFrame(dict(doc_id=[f"doc{i}" for i in range(n)], title=heads, text=texts, source="gen",
                                    page_starts=None)))


@pytest.fixture(scope="module")
def m3_fp32(tiny_m3):
    """The tiny BGE-M3 model in fp32 on the CPU: exact equality with FlagEmbedding's own scores."""
    from bge_explorer.models.loading import load_embedder

    return load_embedder(tiny_m3, model_class="m3", precision="fp32", device="cpu")


@pytest.fixture(scope="session")
def sample_corpus() -> str:
    return os.path.join(os.path.dirname(__file__), "..", "assets", "sample_corpus.jsonl")
