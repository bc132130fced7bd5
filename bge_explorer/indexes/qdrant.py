"""Qdrant through ``qdrant-client``: local mode (``":memory:"`` or a folder: tests, one machine) or a server URL.

The model identity lives in the collection's metadata under :data:`~bge_explorer.indexes.base.IDENTITY_KEY`;
payload columns are the points' payload. Local mode searches exhaustively (exact); a server uses HNSW.
Local mode is meant for up to about 20,000 points (Qdrant warns past that): use a server for scale.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from bge_explorer.errors import ConfigError
from bge_explorer.indexes.base import IDENTITY_KEY, ModelIdentity, StoreIndex, pad_hits, register

UPSERT_BATCH = 1_000
LIST_BATCH = 10_000  # ids read per page when listing them


def _client(uri: str, api_key: str | None):
    from qdrant_client import QdrantClient

    if uri == ":memory:":
        return QdrantClient(location=":memory:")
    if uri.startswith(("http://", "https://")):
        return QdrantClient(url=uri, api_key=api_key)
    return QdrantClient(path=uri)


@register
class QdrantIndex(StoreIndex):
    """One Qdrant collection of unnamed dense vectors, cosine distance (= inner product on unit vectors)."""

    name = "qdrant"

    @staticmethod
    def local_index_type(uri: str) -> str | None:
        return None if uri.startswith(("http://", "https://")) else "exhaustive (local mode)"

    @classmethod
    def create(cls, dim: int, identity: ModelIdentity | None = None, *, uri: str = ":memory:",
               collection: str = "chunks", api_key: str | None = None) -> QdrantIndex:
        """A new collection (ConfigError("index") if it exists)."""
        from qdrant_client import models

        client = _client(uri, api_key)
        if client.collection_exists(collection):
            client.close()
            raise ConfigError("index", f"Qdrant collection {collection!r} already exists at {uri}; connect to it "
                                       "instead, or choose another name")
        client.create_collection(collection, vectors_config=models.VectorParams(size=int(dim),
                                                                                distance=models.Distance.COSINE),
                                 metadata={IDENTITY_KEY: identity.to_json()} if identity is not None else None)
        return cls(dim, identity, False, client, uri, collection)

    @classmethod
    def open(cls, read_only: bool = True, *, uri: str, collection: str, api_key: str | None = None) -> QdrantIndex:
        client = _client(uri, api_key)
        if not client.collection_exists(collection):
            names = [c.name for c in client.get_collections().collections]
            client.close()  # local mode locks its folder until closed
            raise ConfigError("index", f"there is no Qdrant collection {collection!r} at {uri}; the collections are "
                                       f"{', '.join(names) or 'none'}")
        config = client.get_collection(collection).config
        vectors = config.params.vectors
        if not hasattr(vectors, "size"):
            raise ConfigError("index", f"Qdrant collection {collection!r} has named vectors "
                                       f"({', '.join(vectors)}); only a collection of one unnamed vector is supported")
        stored = (config.metadata or {}).get(IDENTITY_KEY)
        return cls(int(vectors.size), ModelIdentity.from_json(stored) if stored else None, read_only, client, uri,
                   collection)

    def count(self) -> int:
        return int(self.client.count(self.collection, exact=True).count)

    def _add(self, vectors, ids, payload):
        from qdrant_client import models

        records = json.loads(payload.to_json(orient="records")) if payload is not None else None
        for start in range(0, len(ids), UPSERT_BATCH):
            end = min(start + UPSERT_BATCH, len(ids))
            self.client.upsert(self.collection, points=models.Batch(
                ids=[int(i) for i in ids[start:end]], vectors=vectors[start:end].tolist(),
                payloads=records[start:end] if records is not None else None))

    def _search(self, queries, k):
        from qdrant_client import models

        got = self.client.query_batch_points(self.collection, requests=[
            models.QueryRequest(query=q.tolist(), limit=k, with_payload=False) for q in queries])
        return pad_hits([[(p.id, p.score) for p in response.points] for response in got], k)

    def ids(self) -> np.ndarray:
        found, offset = [], None
        while True:
            points, offset = self.client.scroll(self.collection, limit=LIST_BATCH, offset=offset, with_payload=False,
                                                with_vectors=False)
            found.extend(p.id for p in points)
            if offset is None:
                return np.asarray(found, np.int64)

    def vectors(self, ids):
        ids = [int(i) for i in ids]
        got = {}
        for start in range(0, len(ids), UPSERT_BATCH):
            got.update((p.id, p.vector) for p in self.client.retrieve(self.collection, ids[start:start + UPSERT_BATCH],
                                                                      with_payload=False, with_vectors=True))
        missing = [i for i in ids if i not in got]
        if missing:
            raise ConfigError("index", f"ids not in Qdrant collection {self.collection!r}: {missing[:5]}")
        return np.asarray([got[i] for i in ids], np.float32).reshape(len(ids), self.dim)

    def _fetch(self, ids):
        rows = {r.id: r.payload or {} for r in self.client.retrieve(self.collection, [int(i) for i in ids],
                                                                     with_payload=True)}
        return pd.DataFrame([{**rows[i], "id": i} for i in ids.tolist() if i in rows], columns=None)
