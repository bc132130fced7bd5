"""BM25 with the ``bm25s`` library, over the same chunk passages the embedders see. Needs no embedding model.

Two analyzers (:data:`ANALYZERS`, the ``bm25`` field of a configuration), both bm25s's Lucene variant with
k1=1.5, b=0.75 and English stop words:

- ``stemmed`` (the default): Snowball English stemming via PyStemmer, bm25s's own recommended setup. SciFact
  nDCG@10 0.6863 here; bm25s publishes 0.6874.
- ``lucene``: no stemming, the BEIR paper's baseline. SciFact nDCG@10 0.6617 here; BEIR publishes 0.665.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Sequence

import numpy as np

from bge_explorer.retrieval.sparse_index import top_k


@dataclasses.dataclass(frozen=True)
class BM25Settings:
    """How text is tokenized and scored. ``stopwords``: "en" or None; ``stemmer``: a Snowball language
    name ("english") or None; ``method``: bm25s variant ("lucene", "robertson", "atire", "bm25l", "bm25+")."""

    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"
    stopwords: str | None = "en"
    stemmer: str | None = "english"

    def describe(self) -> str:
        return (f"BM25 ({self.method}, k1={self.k1:g}, b={self.b:g}, stopwords={self.stopwords or 'none'}, "
                f"stemmer={self.stemmer or 'none'})")


ANALYZERS: dict[str, BM25Settings] = {
    "stemmed": BM25Settings(),
    "lucene": BM25Settings(stemmer=None),
}
DEFAULT_ANALYZER = "stemmed"


def _stemmer(name: str | None):
    if not name:
        return None
    import Stemmer  # PyStemmer

    return Stemmer.Stemmer(name)


class BM25Index:
    """A ``bm25s.BM25`` index over n passages (row i = passage i)."""

    def __init__(self, passages: Sequence[str], settings: BM25Settings | None = None):
        import bm25s

        self.settings = settings or BM25Settings()
        self._stem = _stemmer(self.settings.stemmer)
        tokens = bm25s.tokenize(list(passages), stopwords=self.settings.stopwords, stemmer=self._stem,
                                show_progress=False)
        self.retriever = bm25s.BM25(k1=self.settings.k1, b=self.settings.b, method=self.settings.method)
        self.retriever.index(tokens, show_progress=False)
        self.n = len(passages)

    def __len__(self) -> int:
        return self.n

    @property
    def nbytes(self) -> int:
        """Memory of the score matrix (bm25s keeps precomputed scores as CSC arrays); vocabulary dict not counted."""
        return int(sum(v.nbytes for v in self.retriever.scores.values() if hasattr(v, "nbytes")))

    def query_tokens(self, query: str) -> list[str]:
        """The query's terms after tokenization, stopwords and stemming (those in the index vocabulary)."""
        import bm25s

        terms = bm25s.tokenize([query], stopwords=self.settings.stopwords, stemmer=self._stem, return_ids=False,
                               show_progress=False)[0]
        return [t for t in terms if t in self.retriever.vocab_dict]

    def scores(self, query: str) -> np.ndarray:
        """(n,) float32 BM25 score of ``query`` with every passage (0 for no shared term)."""
        ids = [self.retriever.vocab_dict[t] for t in self.query_tokens(query)]
        if not ids:
            return np.zeros(self.n, np.float32)
        return np.asarray(self.retriever.get_scores_from_ids(ids), dtype=np.float32)

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` passages sharing a term with the query: scores (k',), rows (k',) int64, best first."""
        return top_k(self.scores(query), k)


class WordTokenizer:
    """Splits on whitespace, with the call signature of a Hugging Face fast tokenizer that
    :func:`bge_explorer.data.chunking.chunk_documents` uses: lets BM25-only sessions chunk by words, no model."""

    _word = re.compile(r"\S+")

    def __call__(self, texts: Sequence[str], add_special_tokens: bool = False, return_offsets_mapping: bool = True,
                 verbose: bool = False) -> dict:
        offsets = [[m.span() for m in self._word.finditer(t)] for t in texts]
        return {"input_ids": [list(range(len(o))) for o in offsets], "offset_mapping": offsets}
