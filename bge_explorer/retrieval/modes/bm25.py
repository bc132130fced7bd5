"""BM25 over the chunk passages with bm25s: no embedding model, the query as typed (no instruction)."""
from __future__ import annotations

import collections
import threading

import numpy as np

from bge_explorer.pickling import ProcessLocal
from bge_explorer.retrieval.bm25_index import BM25Index
from bge_explorer.retrieval.modes.base import FIRST_STAGE, FirstStagePart, Mode, QueryInput, register
from bge_explorer.retrieval.sparse_index import top_k


KEPT_QUERIES = 64  # the pipeline's query batch: each query's scores over all chunks serve its rescoring too


class BM25Part(ProcessLocal, FirstStagePart):
    def __init__(self, index: BM25Index):
        self.index = index
        self.nbytes = index.nbytes
        self._recent: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self._lock = threading.Lock()


    def _all(self, text: str) -> np.ndarray:
        """(n,) BM25 scores of the query with every chunk, computed once per recent query."""
        with self._lock:
            if text in self._recent:
                self._recent.move_to_end(text)
                return self._recent[text]
        scores = self.index.scores(text)
        with self._lock:
            self._recent[text] = scores
            while len(self._recent) > KEPT_QUERIES:
                self._recent.popitem(last=False)
        return scores

    def score(self, query: QueryInput, rows: np.ndarray) -> np.ndarray:
        return self._all(query.text)[rows]

    def search_many(self, queries, k):
        return [top_k(self._all(q.text), k)[1] for q in queries]


class BM25(Mode):
    name, label, needs, role = "bm25", "BM25", None, FIRST_STAGE
    description = "term frequencies (bm25s); needs no model"

    def build(self, state, progress=None):
        return BM25Part(BM25Index(state.passages, state.bm25_settings))

    def estimate_bytes(self, state):
        return 0


register(BM25())
