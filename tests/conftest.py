"""Shared fixtures: tiny random-weight models built once per test run, loaded through FlagEmbedding."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a Hub name fails at once instead of after a minute
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest

from bge_explorer import random_models

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
SCIFACT = os.path.abspath(os.path.join(SHARED_DATA, "scifact"))


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> str:
    return random_models.build(tmp_path_factory.mktemp("models") / "tiny-encoder", "encoder")


@pytest.fixture(scope="session")
def tiny_reranker(tmp_path_factory) -> str:
    return random_models.build(tmp_path_factory.mktemp("models") / "tiny-reranker", "reranker", seed=1)


@pytest.fixture(scope="session")
def tiny_m3(tmp_path_factory) -> str:
    return random_models.build(tmp_path_factory.mktemp("models") / "tiny-m3", "m3", seed=2)


@pytest.fixture(scope="session")
def sample_corpus() -> str:
    return os.path.join(os.path.dirname(__file__), "..", "assets", "sample_corpus.jsonl")
