"""BGE-M3 ColBERT: late-interaction MaxSim over per-token vectors, rescoring the dense and sparse hits.

Off unless named: the store keeps one vector per chunk token (bge-m3: 1,024 floats each, float16).
Rebuilt for the same model after re-chunking, it copies the rows of chunks whose text it has seen.
"""
from __future__ import annotations

import numpy as np

from bge_explorer.models.embedders import MULTIVECTOR
from bge_explorer.retrieval.colbert_store import ColbertStore, estimate_bytes
from bge_explorer.retrieval.embedding_cache import digest
from bge_explorer.retrieval.modes.base import RESCORER, Mode, Part, QueryInput, register


class ColbertPart(Part):
    def __init__(self, store: ColbertStore, keys: list[bytes], cache_key: tuple):
        self.store, self.keys, self.cache_key = store, keys, cache_key
        self.nbytes = store.nbytes

    def score(self, query: QueryInput, rows: np.ndarray) -> np.ndarray:
        return self.store.scores(query.encoded[MULTIVECTOR], rows)


class Colbert(Mode):
    name, label, needs, role, m3_weight = "colbert", "ColBERT (M3 multi-vector)", MULTIVECTOR, RESCORER, 0.4
    in_hybrid = False
    candidates_from = ("dense", "sparse")
    requires = "a BGE-M3 model (model class m3)"
    description = "one vector per token, MaxSim; rescores the dense and sparse candidates"

    def build(self, state, progress=None):
        embedder = state.embedder
        keys = [digest(p) for p in state.passages]
        known: dict[bytes, np.ndarray] = {}
        for old in state.reusable_parts(self.name):
            if old.cache_key == embedder.cache_key:
                wanted = set(keys)
                known.update({k: old.store.chunk(r) for r, k in enumerate(old.keys) if k in wanted})
        missing = list(dict.fromkeys(k for k in keys if k not in known))
        if missing:
            text_of = dict(zip(keys, state.passages))
            got = embedder.encode_passages([text_of[k] for k in missing], (MULTIVECTOR,), progress)
            known.update(zip(missing, got[MULTIVECTOR]))
        return ColbertPart(ColbertStore([known[k] for k in keys], state.colbert_dtype), keys, embedder.cache_key)

    def estimate_bytes(self, state):
        """One vector per passage token plus the final SEP/EOS, truncated as the model truncates (a tokenizer
        pass, no model run)."""
        embedder = state.embedder
        counts = np.asarray(embedder.count_tokens(state.passages), np.int64)
        tokens = int(np.minimum(counts + 1, embedder.spec.max_length - 1).sum())
        return estimate_bytes(tokens, embedder.colbert_dim, state.colbert_dtype)


register(Colbert())
