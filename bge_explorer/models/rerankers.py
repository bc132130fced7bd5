"""Cross-encoder rerankers (FlagEmbedding's ``FlagReranker``) and the scores they give."""
from __future__ import annotations

import threading
import time
from typing import Callable, Sequence

import numpy as np
import torch

from bge_explorer.models import meter
from bge_explorer.models.catalog import ModelSpec
from bge_explorer.models.devices import autocast


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Raw reranker logits -> scores in (0, 1), as ``compute_score(normalize=True)`` gives."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


class Reranker:
    """A loaded cross-encoder. Safe to share between threads (each batch holds the model alone).

    Loaded by FlagEmbedding (``FlagReranker``) and fed the same inputs its ``compute_score`` builds
    (query truncated to 3/4 of the max length, passage truncated to fit); the batching loop is ours,
    without the repeated probe batch, so a single batch of candidates is scored once, not twice.
    """

    backend = "torch"

    def __init__(self, spec: ModelSpec, model, identity: str, device: str, precision: str, batch_size: int):
        self.spec, self.model, self.identity = spec, model, identity
        self.device, self.precision, self.batch_size = device, precision, batch_size
        self.path_note = f"{self.backend} {precision}"  # which path runs and why; the loader says more
        self._lock = threading.Lock()
        self._place()

    def _place(self) -> None:
        """Put the torch module on the device, in eval mode (halved on a GPU, as FlagReranker scores there)."""
        if self.model.use_fp16:
            self.model.model.half()
        self.model.model.to(self.device).eval()

    @property
    def cache_key(self) -> tuple:
        """What scores depend on besides the texts: model identity, max length, backend, precision."""
        return (self.identity, self.spec.max_length, self.backend, self.precision)

    def score(self, query: str, passages: Sequence[str],
              progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Raw logits for (query, passage) pairs. (n,) passages -> (n,) float64; unbounded, higher is better.
        The model is held per batch, so other sessions' queries are served in between."""
        if not passages:
            return np.empty(0)
        from FlagEmbedding.utils.tokenizer_compat import prepare_for_model_compat

        tokenizer, max_length = self.model.tokenizer, self.spec.max_length
        out = np.empty(len(passages))
        with self._lock:
            query_ids = tokenizer(query, add_special_tokens=False, max_length=max_length * 3 // 4,
                                  truncation=True)["input_ids"]
            passage_ids = tokenizer(list(passages), add_special_tokens=False, max_length=max_length,
                                    truncation=True)["input_ids"]
            inputs = [prepare_for_model_compat(tokenizer, query_ids, ids, truncation="only_second",
                                               max_length=max_length, padding=False) for ids in passage_ids]
        order = np.argsort([-len(item["input_ids"]) for item in inputs], kind="stable")
        began = time.perf_counter()
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            with self._lock:
                out[rows] = self._forward({key: [inputs[i][key] for i in rows] for key in inputs[rows[0]]})
            if progress:
                progress(min(start + self.batch_size, len(order)), len(order))
        meter.record("pair", self.spec.name, len(passages), time.perf_counter() - began)
        return out

    def _forward(self, features: dict[str, list]) -> np.ndarray:
        """Unpadded token ids of b pairs -> (b,) raw logits."""
        with torch.inference_mode(), autocast(self.precision, self.device):
            batch = self.model.tokenizer.pad(features, padding=True, return_tensors="pt").to(self.device)
            return self.model.model(**batch, return_dict=True).logits.view(-1).float().cpu().numpy()
