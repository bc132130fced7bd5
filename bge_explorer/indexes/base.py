"""The vector index interface, the model identity stored with the vectors, the registry and recall@k.

A :class:`VectorIndex` holds (n, dim) float32 unit vectors with int64 ids and, optionally, a payload per id
(the chunk's text, document id, offsets): :meth:`~VectorIndex.add`, :meth:`~VectorIndex.search` (top k
inner products = cosine, best first), :meth:`~VectorIndex.count`, :meth:`~VectorIndex.fetch` (payloads)
and :attr:`~VectorIndex.identity`. An index opened on an existing store is read-only unless opened with
``read_only=False``: nothing is written to a user's collection unless they ask.
"""
from __future__ import annotations

import abc
import dataclasses
import json
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from bge_explorer.errors import ConfigError

IDENTITY_KEY = "bge_explorer.identity"  # where stores keep the identity (Parquet metadata, collection metadata)
PAYLOAD_COLUMNS = ("chunk_id", "doc_id", "chunk", "title", "text", "start", "end")


@dataclasses.dataclass(frozen=True)
class ModelIdentity:
    """What vectors depend on: the model (name and identity hash: Hub revision or file hash), dim, pooling,
    normalisation, max length, precision, and the instruction policy (the query instruction used with them)."""

    model: str
    identity: str
    dim: int
    pooling: str
    normalized: bool = True
    max_length: int = 512
    precision: str = "fp32"
    instruction: str = ""

    @classmethod
    def of(cls, embedder) -> ModelIdentity:
        """The identity of a loaded :class:`~bge_explorer.models.embedders.Embedder` (its vectors are unit length)."""
        spec = embedder.spec
        return cls(spec.name, embedder.identity, int(embedder.dim), spec.pooling, True, int(spec.max_length),
                   embedder.precision, spec.instruction)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes | Mapping[str, Any]) -> ModelIdentity:
        """Parse stored identity metadata; ConfigError("index") when it is not one."""
        try:
            data = json.loads(text) if isinstance(text, (str, bytes)) else dict(text)
            return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})
        except (TypeError, ValueError, KeyError) as exc:
            raise ConfigError("index", f"the stored model identity cannot be read ({exc})") from None

    def mismatch(self, other: ModelIdentity) -> list[str]:
        """Why vectors of ``other`` cannot share an index with these (empty: they can). The model's identity hash,
        dim, pooling and normalisation decide; max length, precision and instruction are reported by :meth:`notes`."""
        out = []
        if self.identity != other.identity:
            out.append(f"the index was embedded with {self.model} (identity {self.identity}), the chosen model is "
                       f"{other.model} (identity {other.identity}): embeddings of different model versions cannot "
                       "share an index")
        for name in ("dim", "pooling", "normalized"):
            if getattr(self, name) != getattr(other, name):
                out.append(f"{name}: the index has {getattr(self, name)!r}, the chosen model {getattr(other, name)!r}")
        return out

    def notes(self, other: ModelIdentity) -> list[str]:
        """Differences that keep the embedding space but shift vectors slightly or change the default query."""
        out = [f"{name}: the index was embedded with {getattr(self, name)!r}, queries use {getattr(other, name)!r}"
               for name in ("max_length", "precision") if getattr(self, name) != getattr(other, name)]
        if self.instruction != other.instruction:
            out.append(f"instruction: the index was built for queries prefixed with {self.instruction!r}; "
                       f"the model's default is {other.instruction!r}")
        return out

    def check(self, other: ModelIdentity) -> list[str]:
        """Raise ConfigError("model") naming every reason ``other`` cannot query this index; else return the notes."""
        reasons = self.mismatch(other)
        if reasons:
            raise ConfigError("model", "; ".join(reasons))
        return self.notes(other)


class VectorIndex(abc.ABC):
    """An index of (n, dim) unit vectors with int64 ids (see the module docstring)."""

    name: str
    exact: bool = False  # True: search returns the exact top k
    sized: bool = False  # True: create() takes ``expected`` (the corpus size) to choose its parameters

    def __init__(self, dim: int, identity: ModelIdentity | None = None, read_only: bool = False):
        self.dim, self._identity, self.read_only = int(dim), identity, read_only
        self.report: dict[str, Any] = {}  # build facts: parameters, seconds, measured recall@10

    @property
    def identity(self) -> ModelIdentity | None:
        """The model the stored vectors came from; None when the store has no identity metadata."""
        return self._identity

    def add(self, vectors: np.ndarray, ids: np.ndarray | None = None, payload: pd.DataFrame | None = None) -> None:
        """Add (n, dim) vectors with (n,) int64 ids (default: count() onwards) and an optional n-row payload table.
        ConfigError("index") on a read-only index or a wrong dim."""
        if self.read_only:
            raise ConfigError("index", f"the {self.name} index is read-only (an existing store is opened read-only "
                                       "unless you ask to write to it)")
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if vectors.shape[1] != self.dim:
            raise ConfigError("index", f"vectors have dim {vectors.shape[1]}, the index has {self.dim}")
        ids = np.arange(self.count(), self.count() + len(vectors), dtype=np.int64) if ids is None \
            else np.asarray(ids, np.int64)
        if len(ids) != len(vectors) or (payload is not None and len(payload) != len(vectors)):
            raise ValueError(f"{len(vectors)} vectors, {len(ids)} ids and "
                             f"{'no' if payload is None else len(payload)} payload rows do not match")
        if len(vectors):
            self._add(vectors, ids, payload.reset_index(drop=True) if payload is not None else None)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(m, dim) queries -> scores (m, k') float32 and ids (m, k') int64, best first, k' = min(k, count());
        a row short of k' hits is padded with id -1 and score -inf."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.dim:
            raise ConfigError("index", f"query vectors have dim {queries.shape[1]}, the index has {self.dim}")
        k = min(int(k), self.count())
        if k < 1 or len(queries) == 0:
            return np.empty((len(queries), 0), np.float32), np.empty((len(queries), 0), np.int64)
        return self._search(queries, k)

    def fetch(self, ids: Sequence[int]) -> pd.DataFrame:
        """The payload rows of ``ids`` in that order (an ``id`` column and what was stored); rows of unknown ids
        are missing."""
        return self._fetch(np.asarray(ids, np.int64))

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """A seeded uniform sample of min(n, count()) stored rows -> ids (m,) int64 ascending and their vectors
        (m, dim) float32: every id is listed (ids only, no vectors), the sample drawn, then only its vectors read."""
        ids = np.sort(np.asarray(self.ids(), np.int64))
        if len(ids) > n:
            ids = np.sort(np.random.default_rng(seed).choice(ids, int(n), replace=False))
        return ids, self.vectors(ids)

    def ids(self) -> np.ndarray:
        """Every stored id (count(),) int64, in no set order."""
        raise ConfigError("index", f"the {self.name} index cannot list its ids")

    def vectors(self, ids: Sequence[int]) -> np.ndarray:
        """The stored vectors of ``ids`` (m, dim) float32 in that order; ConfigError("index") for an unknown id."""
        raise ConfigError("index", f"the {self.name} index cannot return its vectors")

    def __len__(self) -> int:
        return self.count()

    @abc.abstractmethod
    def count(self) -> int:
        """Vectors stored."""

    @abc.abstractmethod
    def _add(self, vectors: np.ndarray, ids: np.ndarray, payload: pd.DataFrame | None) -> None: ...

    @abc.abstractmethod
    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    @abc.abstractmethod
    def _fetch(self, ids: np.ndarray) -> pd.DataFrame: ...

    def nbytes(self) -> int:
        """Memory this process holds for the index (0 for a store in another process)."""
        return 0

    def close(self) -> None:
        """Release the connection or embedded server (a no-op in this process's memory)."""

    def train(self, sample: np.ndarray) -> None:
        """Fit the index's quantisers on (s, dim) sample vectors; a no-op for indexes that need no training."""

    @classmethod
    def create(cls, dim: int, identity: ModelIdentity | None = None, **options) -> VectorIndex:
        """A new empty index (see :func:`create`)."""
        return cls(dim, identity, **options)

    @classmethod
    def open(cls, read_only: bool = True, **options) -> VectorIndex:
        """An existing index (see :func:`open_index`)."""
        raise ConfigError("index", f"{cls.name} lives in this process only: there is no existing index to open; "
                                   f"open milvus, qdrant or parquet ({', '.join(b for b in BACKENDS if b != cls.name)})")


class StoreIndex(VectorIndex):
    """A collection in a vector database reached through its ``client`` (Milvus, Qdrant): subclasses say from
    the URI whether search is exact (:meth:`local_index_type`: the embedded engine's kind, else None)."""

    def __init__(self, dim: int, identity: ModelIdentity | None, read_only: bool, client, uri: str, collection: str):
        super().__init__(dim, identity, read_only)
        self.client, self.uri, self.collection = client, uri, collection
        local = self.local_index_type(uri)
        self.exact = local is not None
        self.report.update(uri=uri, collection=collection, index_type=local or "HNSW")

    @staticmethod
    @abc.abstractmethod
    def local_index_type(uri: str) -> str | None:
        """The exact index of the embedded engine ``uri`` names, or None for a server (HNSW)."""

    def close(self) -> None:
        self.client.close()


def pad_hits(hits: list[list[tuple[int, float]]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query (id, score) pairs best first -> scores (m, k) float32, ids (m, k) int64 padded with -inf / -1."""
    scores = np.full((len(hits), k), -np.inf, np.float32)
    ids = np.full((len(hits), k), -1, np.int64)
    for i, row in enumerate(hits):
        for j, (id_, score) in enumerate(row[:k]):
            ids[i, j], scores[i, j] = id_, score
    return scores, ids


BACKENDS: dict[str, type[VectorIndex]] = {}


def register(cls: type[VectorIndex]) -> type[VectorIndex]:
    """Class decorator: add a backend to :data:`BACKENDS` under ``cls.name``."""
    BACKENDS[cls.name] = cls
    return cls


def names() -> list[str]:
    return list(BACKENDS)


def _backend(name: str) -> type[VectorIndex]:
    try:
        return BACKENDS[name]
    except KeyError:
        raise ConfigError("index", f"unknown index backend {name!r}; the backends are {', '.join(BACKENDS)}") from None


def create(name: str, dim: int, identity: ModelIdentity | None = None, **options) -> VectorIndex:
    """A new, empty, writable index of backend ``name`` (options: the backend's, e.g. Milvus ``uri``)."""
    return _backend(name).create(dim, identity, **options)


def open_index(name: str, *, read_only: bool = True, **options) -> VectorIndex:
    """An existing index (a Milvus/Qdrant collection, a Parquet folder), read-only unless ``read_only=False``."""
    return _backend(name).open(read_only=read_only, **options)


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Mean over queries of |found[:k] ∩ truth[:k]| / |truth[:k]|. found, truth: (m, >=k) ids (-1 = none)."""
    per = [len(set(f[:k].tolist()) & set(t[:k].tolist()) - {-1}) / max(1, len(set(t[:k].tolist()) - {-1}))
           for f, t in zip(found, truth)]
    return float(np.mean(per)) if per else 1.0


def build(name: str, vectors: np.ndarray, identity: ModelIdentity | None = None, *, ids: np.ndarray | None = None,
          payload: pd.DataFrame | None = None, queries: np.ndarray | None = None, held_out: int = 200, k: int = 10,
          seed: int = 0, **options) -> VectorIndex:
    """Create backend ``name``, train it (on a sample that leaves out the held-out rows), add (n, dim) ``vectors``
    and, for an approximate backend, measure recall@k against exact search into ``report``: on (m, dim) ``queries``
    when given, else on ``held_out`` corpus vectors used as queries (each one's own row left out of both lists)."""
    import time

    import faiss

    vectors = np.ascontiguousarray(vectors, np.float32)
    if _backend(name).sized:
        options.setdefault("expected", len(vectors))
    index = create(name, vectors.shape[1], identity, **options)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(vectors))
    own = queries is None
    test_rows = order[:min(held_out, len(vectors) // 10)] if own else np.empty(0, np.int64)
    started = time.perf_counter()
    index.train(vectors[np.sort(order[len(test_rows):])])
    index.add(vectors, ids, payload)
    index.report["build_s"] = round(time.perf_counter() - started, 3)
    if index.exact:
        index.report[f"recall@{k}"] = 1.0
        return index
    queries = vectors[test_rows] if own else np.ascontiguousarray(np.atleast_2d(queries), np.float32)
    if len(queries) == 0:
        return index
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    extra = 1 if own else 0
    _, truth = exact.search(queries, k + extra)
    all_ids = np.arange(len(vectors), dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
    truth = all_ids[truth]
    _, found = index.search(queries, k + extra)
    if own:
        self_ids = all_ids[test_rows]
        truth = np.stack([t[t != s][:k] for t, s in zip(truth, self_ids)])
        found = [f[f != s][:k] for f, s in zip(found, self_ids)]
    index.report[f"recall@{k}"] = round(recall_at_k(np.asarray(found), truth, k), 4)
    index.report["recall_queries"] = f"{len(queries)} {'held-out corpus vectors' if own else 'given queries'}"
    return index
