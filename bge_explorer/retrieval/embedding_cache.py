"""Passage encodings remembered per (model cache key, output, passage text), for one session.

Changing the query instruction, reranker, k or fusion never touches this cache; re-chunking encodes
only the chunks whose text is new; switching back to a model reuses what it encoded. Dense vectors and
BGE-M3 lexical weights are kept (small); ColBERT token vectors are not (a vector per token: the
ColBERT mode keeps them in its own store). Kept per session: a cache shared across visitors would let
one learn from timing that another uploaded the same text.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from bge_explorer.models.embedders import DENSE, LEXICAL, Embedder, Progress

CACHED_OUTPUTS = (DENSE, LEXICAL)


def digest(text: str) -> bytes:
    """A 16-byte digest of a passage's text: the cache key of its encodings."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


LEXICAL_ENTRY_BYTES = 56  # a {token id: weight} item of a lexical-weight dict, roughly


def _nbytes(output: str, value) -> int:
    return int(value.nbytes) if output == DENSE else LEXICAL_ENTRY_BYTES * (len(value) + 1)


class EmbeddingCache:
    """``{(embedder.cache_key, output): {passage digest: value}}``. Encodings of two models never mix.

    With ``max_bytes``, the encodings of the models used least recently are dropped once the cache holds more
    (never those of the model being encoded for); a model switched back to is then encoded again."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self._store: dict[tuple, dict[bytes, object]] = {}
        self._bytes: dict[tuple, int] = {}
        self.max_bytes = max_bytes

    def get(self, embedder: Embedder, passages: Sequence[str], outputs: Sequence[str] = (DENSE,),
            progress: Progress | None = None) -> dict[str, object]:
        """``{output: values}`` for (n,) passages: ``dense`` as an (n, dim) float32 array, ``lexical`` as a list.

        Passages missing any asked output are encoded in one pass, together with every other cached output
        the model produces (so BGE-M3's lexical weights come free with its dense vectors)."""
        outputs = list(outputs)
        unknown = [o for o in outputs if o not in CACHED_OUTPUTS]
        if unknown:
            raise ValueError(f"only {', '.join(CACHED_OUTPUTS)} encodings are cached, not {', '.join(unknown)}")
        stores = {o: self._use((embedder.cache_key, o)) for o in CACHED_OUTPUTS if o in embedder.produces}
        digests = [digest(p) for p in passages]
        missing = list(dict.fromkeys(d for d in digests if any(d not in stores[o] for o in outputs)))
        if missing:
            text_of = dict(zip(digests, passages))
            got = embedder.encode_passages([text_of[d] for d in missing], list(stores), progress)
            for output, store in stores.items():
                store.update(zip(missing, got[output]))
                self._bytes[(embedder.cache_key, output)] = self._bytes.get((embedder.cache_key, output), 0) + sum(
                    _nbytes(output, v) for v in got[output])
            self._evict(keep=embedder.cache_key)
        elif progress:
            progress(len(passages), len(passages))
        out: dict[str, object] = {}
        for o in outputs:
            values = [stores[o][d] for d in digests]
            if o == DENSE:
                out[o] = np.stack(values) if values else np.empty((0, embedder.dim), np.float32)
            else:
                out[o] = values
        return out

    def embed(self, embedder: Embedder, passages: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """(n,) passages -> (n, dim) float32 dense vectors, encoding only the passages not seen before."""
        return self.get(embedder, passages, (DENSE,), progress)[DENSE]  # type: ignore[return-value]

    def _use(self, key: tuple) -> dict[bytes, object]:
        """The store of ``key``, now the most recently used."""
        store = self._store.pop(key, None)
        self._store[key] = store if store is not None else {}
        return self._store[key]

    def _evict(self, keep: tuple) -> None:
        while self.max_bytes is not None and self.nbytes > self.max_bytes:
            old = next((k for k in self._store if k[0] != keep), None)
            if old is None:
                return
            del self._store[old]
            self._bytes.pop(old, None)

    @property
    def nbytes(self) -> int:
        """Memory the kept encodings take (lexical weights estimated)."""
        return sum(self._bytes.values())

    def count(self, embedder: Embedder, output: str = DENSE) -> int:
        """How many passages' ``output`` is kept for this model."""
        return len(self._store.get((embedder.cache_key, output), {}))

    def models(self) -> list[tuple]:
        """Cache keys of the models with stored encodings."""
        return list(dict.fromkeys(key for key, _ in self._store))
