"""Shared fixtures: tiny random-weight models built once per test run, loaded through FlagEmbedding."""
from __future__ import annotations

import os
import socket
from pathlib import Path

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


def write_parquet_index(folder, encoder: str, n: int = 60):
    """Two Parquet shards (as ``embed --engine ray`` writes them) of the single-process embedding of ``n`` random
    documents in ``folder`` -> (the session that embedded them, the shards' chunk ids (n_chunks,))."""
    from bge_explorer.indexes import ModelIdentity
    from bge_explorer.indexes.parquet import shard_name, write_shard
    from bge_explorer.models.loading import load_embedder
    from bge_explorer.scale.ray_embed import chunk_ids
    from bge_explorer.session import Session

    session = Session()
    session.set_corpus(random_corpus(n))
    embedder = load_embedder(encoder, precision="fp32")
    session.build_index(embedder, 16, 4)
    table = session.chunks.table
    seq = table["doc_id"].str.slice(3).astype(int).to_numpy()
    ids = chunk_ids(seq, table["chunk"].to_numpy())
    for shard, mask in enumerate([seq < n // 2, seq >= n // 2]):
        write_shard(Path(folder) / shard_name(shard), ids[mask], table[mask], session.vectors[mask],
                    ModelIdentity.of(embedder), {"chunk_size": 16, "overlap": 4})
    return session, ids


@pytest.fixture(scope="module")
def m3_fp32(tiny_m3):
    """The tiny BGE-M3 model in fp32 on the CPU: exact equality with FlagEmbedding's own scores."""
    from bge_explorer.models.loading import load_embedder

    return load_embedder(tiny_m3, model_class="m3", precision="fp32", device="cpu")


@pytest.fixture(scope="session")
def sample_corpus() -> str:
    return os.path.join(os.path.dirname(__file__), "..", "assets", "sample_corpus.jsonl")
