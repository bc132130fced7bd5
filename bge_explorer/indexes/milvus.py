"""Milvus through ``pymilvus``: milvus-lite embedded (a ``.db`` file: tests, one machine) or a server/cluster URI.

The model identity lives in the collection's properties under :data:`~bge_explorer.indexes.base.IDENTITY_KEY`;
payload columns are dynamic fields. On milvus-lite the index is FLAT (exact); on a server HNSW.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import weakref

import numpy as np
import pandas as pd

from bge_explorer.errors import ConfigError
from bge_explorer.indexes.base import IDENTITY_KEY, ModelIdentity, StoreIndex, pad_hits, register

INSERT_BATCH = 2_000
MAX_LIMIT = 16_384  # Milvus's top-k ceiling
LIST_BATCH = 10_000  # ids read per page when listing them


def _is_lite(uri: str) -> bool:
    return uri.endswith(".db")


def _remove(client, folder: str) -> None:
    """Close a milvus-lite client and delete its temporary folder."""
    with contextlib.suppress(Exception):
        client.close()
    shutil.rmtree(folder, ignore_errors=True)


def _client(uri: str, token: str | None):
    from pymilvus import MilvusClient

    return MilvusClient(uri, token=token or "")


@register
class MilvusIndex(StoreIndex):
    """One Milvus collection: ``id`` INT64 primary key, ``vector`` FLOAT_VECTOR(dim), inner product."""

    name = "milvus"

    @staticmethod
    def local_index_type(uri: str) -> str | None:
        return "FLAT" if _is_lite(uri) else None

    @classmethod
    def create(cls, dim: int, identity: ModelIdentity | None = None, *, uri: str | None = None,
               collection: str = "chunks", token: str | None = None) -> MilvusIndex:
        """A new collection (ConfigError("index") if it exists); ``uri`` None: a milvus-lite file in a temp dir."""
        from pymilvus import DataType

        scratch = tempfile.mkdtemp(prefix="bge-milvus-") if uri is None else None
        uri = uri or os.path.join(scratch, "index.db")
        client = _client(uri, token)
        if client.has_collection(collection):
            client.close()
            raise ConfigError("index", f"Milvus collection {collection!r} already exists at {uri}; connect to it "
                                       "instead, or choose another name")
        schema = client.create_schema(auto_id=False, enable_dynamic_field=True)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(dim))
        params = client.prepare_index_params()
        if _is_lite(uri):
            params.add_index("vector", index_type="FLAT", metric_type="IP")
        else:
            params.add_index("vector", index_type="HNSW", metric_type="IP", params={"M": 16, "efConstruction": 200})
        client.create_collection(collection, schema=schema, index_params=params)
        if identity is not None:
            client.alter_collection_properties(collection, properties={IDENTITY_KEY: identity.to_json()})
        index = cls(dim, identity, False, client, uri, collection)
        if scratch is not None:  # the temporary milvus-lite file goes with the index: closed, collected or at exit
            index._cleanup = weakref.finalize(index, _remove, client, scratch)
        return index

    _cleanup: weakref.finalize | None = None

    def close(self) -> None:
        if self._cleanup is not None:
            self._cleanup()
        else:
            super().close()

    @classmethod
    def open(cls, read_only: bool = True, *, uri: str, collection: str, token: str | None = None) -> MilvusIndex:
        client = _client(uri, token)
        if not client.has_collection(collection):
            names = client.list_collections()
            client.close()
            raise ConfigError("index", f"there is no Milvus collection {collection!r} at {uri}; the collections are "
                                       f"{', '.join(names) or 'none'}")
        info = client.describe_collection(collection)
        vector = [f for f in info["fields"] if f["type"].name == "FLOAT_VECTOR"]
        if not vector:
            raise ConfigError("index", f"Milvus collection {collection!r} has no FLOAT_VECTOR field")
        stored = (info.get("properties") or {}).get(IDENTITY_KEY)
        client.load_collection(collection)
        return cls(int(vector[0]["params"]["dim"]), ModelIdentity.from_json(stored) if stored else None, read_only,
                   client, uri, collection)

    def count(self) -> int:
        got = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(got[0]["count(*)"])

    def _add(self, vectors, ids, payload):
        records = json.loads(payload.to_json(orient="records")) if payload is not None else [{} for _ in ids]
        for start in range(0, len(ids), INSERT_BATCH):
            rows = [{**records[i], "id": int(ids[i]), "vector": vectors[i].tolist()}
                    for i in range(start, min(start + INSERT_BATCH, len(ids)))]
            self.client.insert(self.collection, rows)

    def _search(self, queries, k):
        k = min(k, MAX_LIMIT)
        params = {"metric_type": "IP"} if self.exact else {"metric_type": "IP", "params": {"ef": max(64, k)}}
        got = self.client.search(self.collection, data=queries.tolist(), limit=k, output_fields=["id"],
                                 search_params=params)
        return pad_hits([[(hit["id"], hit["distance"]) for hit in hits] for hits in got], k)

    def ids(self) -> np.ndarray:
        found, pages = [], self.client.query_iterator(self.collection, batch_size=LIST_BATCH, filter="",
                                                      output_fields=["id"])
        try:
            while page := pages.next():
                found.extend(r["id"] for r in page)
        finally:
            pages.close()
        return np.asarray(found, np.int64)

    def vectors(self, ids):
        ids = [int(i) for i in ids]
        got = {}
        for start in range(0, len(ids), INSERT_BATCH):
            rows = self.client.get(self.collection, ids=ids[start:start + INSERT_BATCH], output_fields=["vector"])
            got.update((r["id"], r["vector"]) for r in rows)
        missing = [i for i in ids if i not in got]
        if missing:
            raise ConfigError("index", f"ids not in Milvus collection {self.collection!r}: {missing[:5]}")
        return np.asarray([got[i] for i in ids], np.float32).reshape(len(ids), self.dim)

    def _fetch(self, ids):
        if len(ids) == 0:
            return pd.DataFrame({"id": ids})
        rows = {r["id"]: r for r in self.client.get(self.collection, ids=ids.tolist(), output_fields=["*"])}
        table = pd.DataFrame([rows[i] for i in ids.tolist() if i in rows])
        return table.drop(columns=["vector"], errors="ignore")
