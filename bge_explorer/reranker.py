"""Cross-encoder rerankers (FlagEmbedding's ``FlagReranker``) and the scores they give."""
from __future__ import annotations

import threading
from typing import Sequence

import numpy as np

from .catalog import ModelSpec
from .devices import autocast


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Raw reranker logits -> scores in (0, 1), as ``compute_score(normalize=True)`` gives."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


class Reranker:
    """A loaded cross-encoder. Safe to share between threads (calls are serialised)."""

    def __init__(self, spec: ModelSpec, model, identity: str, device: str, precision: str, batch_size: int):
        self.spec, self.model, self.identity = spec, model, identity
        self.device, self.precision, self.batch_size = device, precision, batch_size
        self._lock = threading.Lock()

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """Raw logits for (query, passage) pairs. (n,) passages -> (n,) float64; unbounded, higher is better."""
        if not passages:
            return np.empty(0)
        pairs = [(query, p) for p in passages]
        with self._lock, autocast(self.precision, self.device):
            logits = self.model.compute_score(pairs, batch_size=self.batch_size, max_length=self.spec.max_length,
                                              normalize=False)
        return np.asarray(logits, dtype=np.float64).reshape(len(passages))
