"""BGE-M3 sparse retrieval: lexical matching scores of the model's per-token weights (an inverted index)."""
from __future__ import annotations

import numpy as np

from bge_explorer.models.embedders import LEXICAL
from bge_explorer.retrieval.modes.base import FIRST_STAGE, FirstStagePart, Mode, QueryInput, register
from bge_explorer.retrieval.sparse_index import SparseIndex


class SparsePart(FirstStagePart):
    def __init__(self, index: SparseIndex):
        self.index = index
        self.nbytes = index.nbytes

    def score(self, query: QueryInput, rows: np.ndarray) -> np.ndarray:
        return self.index.score_rows(query.encoded[LEXICAL], rows)

    def search_many(self, queries, k):
        return [self.index.search(q.encoded[LEXICAL], k)[1] for q in queries]


class Sparse(Mode):
    name, label, needs, role, m3_weight = "sparse", "sparse (M3 lexical)", LEXICAL, FIRST_STAGE, 0.2
    requires = "a BGE-M3 model (model class m3)"
    description = "BGE-M3's learned token weights; scores shared tokens"

    def build(self, state, progress=None):
        weights = state.cache.get(state.embedder, state.passages, (LEXICAL,), progress)[LEXICAL]
        return SparsePart(SparseIndex.from_weights(weights, state.embedder.vocab_size))


register(Sparse())
