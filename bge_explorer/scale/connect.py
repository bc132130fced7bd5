"""Explore an index that already exists: a Milvus or Qdrant collection, or a folder of Parquet shards.

:func:`connect` opens the store read-only, reads the model identity stored with it and loads the embedding
model: the stored one by default, or the one chosen, which must be the same embedding space (a mismatch is
refused with the reason; a store without identity metadata needs ``confirm_model=True``). :func:`search`
encodes the query, takes the top k from the store, fetches those chunks' payloads and returns a
:class:`~bge_explorer.retrieval.results.Ranking` over them, reranked through the session's reranker cache
like any other, so the app's and CLI's tables read it unchanged. :func:`load_shards` copies Parquet shards
into a new collection: the one way anything is written to a store, and only when asked.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from bge_explorer import indexes
from bge_explorer.data.chunking import CHUNK_COLUMNS, Chunks
from bge_explorer.errors import ConfigError, ExplorerError
from bge_explorer.indexes.base import ModelIdentity, VectorIndex
from bge_explorer.models.backends import DEFAULT_BACKEND
from bge_explorer.models.embedders import Embedder
from bge_explorer.retrieval.planner import Plan
from bge_explorer.retrieval.results import Ranking

EXTERNAL = ("milvus", "qdrant", "parquet")
FETCH_LIMIT = 1_000  # chunks fetched per query from a store


@dataclasses.dataclass
class Connection:
    """An opened store, the model its queries are encoded with, and notes for people (identity differences)."""

    index: VectorIndex
    embedder: Embedder
    notes: list[str]
    where: str

    @property
    def instruction(self) -> str:
        """The query instruction the store was built for (else the model's own)."""
        identity = self.index.identity
        return identity.instruction if identity is not None else self.embedder.spec.instruction

    def describe(self) -> str:
        identity = self.index.identity
        model = f"{identity.model} ({identity.identity})" if identity else f"{self.embedder.spec.name} (confirmed)"
        return f"{self.where}: {self.index.count():,} vectors of {self.index.dim} dims, embedded with {model}"


def _options(backend: str, uri: str | None, collection: str | None, path: str | None) -> tuple[dict, str]:
    if backend not in EXTERNAL:
        raise ConfigError("index", f"connect to one of {', '.join(EXTERNAL)}, not {backend!r}")
    if backend == "parquet":
        if not path:
            raise ConfigError("path", "name the folder of Parquet shards")
        return {"path": path}, f"Parquet shards in {path}"
    if not uri or not collection:
        raise ConfigError("uri" if not uri else "collection", f"a {backend} connection needs a URI and a collection")
    return {"uri": uri, "collection": collection}, f"{backend} {uri} / {collection}"


def connect(backend: str, *, uri: str | None = None, collection: str | None = None, path: str | None = None,
            model: str | None = None, confirm_model: bool = False, precision: str = "auto",  # auto: the stored one
            pooling: str | None = None, model_class: str | None = None,
            model_backend: str = DEFAULT_BACKEND) -> Connection:
    """Open a store read-only and the model to query it with (see the module docstring); ``model_backend`` (torch
    or openvino) runs that model. Raises ConfigError naming ``model`` for a mismatched or unconfirmed model,
    ``index``/``uri``/``collection``/``path`` for the store."""
    from bge_explorer.models.loading import load_embedder

    options, where = _options(backend, uri, collection, path)
    index = indexes.open_index(backend, read_only=True, **options)
    stored = index.identity
    if stored is None and not (model and confirm_model):
        index.close()
        raise ConfigError("model", f"{where} has no model identity metadata: choose the model that embedded it "
                                   "and confirm it (confirm_model / --confirm-model)")
    name = model or stored.model
    if precision == "auto" and stored is not None and stored.precision in ("fp32", "bf16"):
        precision = stored.precision  # queries in the precision the index was embedded in
    embedder = load_embedder(name, backend=model_backend, precision=precision, pooling=pooling or (stored.pooling if stored else None),
                             model_class=model_class)
    chosen = ModelIdentity.of(embedder)
    try:
        notes = stored.check(chosen) if stored is not None else []
        if chosen.dim != index.dim:
            raise ConfigError("model", f"{name} makes {chosen.dim}-d vectors, the index holds {index.dim}-d ones")
    except ConfigError:
        index.close()
        raise
    if stored is None:
        notes.append(f"the store has no identity metadata; you confirmed {embedder.spec.name}")
    return Connection(index, embedder, notes, where)


def chunk_table(payload: pd.DataFrame, ids: np.ndarray) -> Chunks:
    """The fetched payload rows as a chunk table (CHUNK_COLUMNS) in ``ids`` order; missing fields left empty."""
    table = payload.set_index("id").reindex(ids).reset_index(drop=True)
    defaults = {"chunk_id": [str(i) for i in ids], "doc_id": [str(i) for i in ids], "chunk": 0, "title": "",
                "text": "", "start": 0, "end": 0, "page": None, "n_tokens": 0, "source": ""}
    for column in CHUNK_COLUMNS:
        if column not in table:
            table[column] = defaults[column]
        elif column in ("title", "text", "source"):
            table[column] = table[column].fillna("").astype(str)
    return Chunks(table[CHUNK_COLUMNS])


def search(connection: Connection, query: str, *, k: int = 100, instruction: str | None = None) -> Ranking:
    """The store's top ``k`` (at most FETCH_LIMIT) for ``query`` as a dense :class:`Ranking` over the fetched chunks
    (rows 0..k'-1 in score order). ``instruction`` None: the store's (see :attr:`Connection.instruction`)."""
    return search_hits(connection, query, k=k, instruction=instruction)[0]


def search_hits(connection: Connection, query: str, *, k: int = 100,
                instruction: str | None = None) -> tuple[Ranking, np.ndarray]:
    """:func:`search`, with the store ids of the ranking's rows (k',) int64 (row i is the chunk of id i)."""
    if not query.strip():
        raise ExplorerError("Type a query.")
    instruction = connection.instruction if instruction is None else instruction
    vector = connection.embedder.encode_queries([query], instruction)[0]
    scores, ids = connection.index.search(vector[None, :], min(int(k), FETCH_LIMIT))
    keep = ids[0] >= 0
    scores, ids = scores[0][keep], ids[0][keep]
    chunks = chunk_table(connection.index.fetch(ids), ids)
    rows = np.arange(len(ids), dtype=np.int64)
    plan = Plan(("dense",), ("dense",), ("dense",), None, {}, tuple(connection.notes))
    return Ranking(query, instruction, chunks, rows, scores.astype(np.float64), {"dense": scores.astype(np.float32)},
                   {"dense": rows + 1}, plan, query_vector=vector), ids


def load_shards(folder: str | Path, backend: str, *, uri: str, collection: str, batch: int = 10_000) -> VectorIndex:
    """Copy the Parquet shards of ``folder`` (ids, payload, vectors, identity) into a new ``backend`` collection."""
    from bge_explorer.indexes.parquet import folder_identity, read_shard, shards

    if backend not in ("milvus", "qdrant"):
        raise ConfigError("index", f"load shards into milvus or qdrant, not {backend!r}")
    identity = folder_identity(folder)
    index = None
    for path in shards(folder):  # one shard in memory at a time
        ids, payload, vectors = read_shard(path)
        if index is None:
            index = indexes.create(backend, vectors.shape[1], identity, uri=uri, collection=collection)
        for start in range(0, len(ids), batch):
            index.add(vectors[start:start + batch], ids[start:start + batch], payload.iloc[start:start + batch])
    return index
