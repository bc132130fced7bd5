"""A folder of Parquet embedding shards (``part-NNNNN.parquet``, written by ``embed --engine ray``) loaded into FAISS.

A shard holds one row per chunk: ``id`` (int64, unique over the folder), the chunk's payload
(:data:`~bge_explorer.indexes.base.PAYLOAD_COLUMNS`) and ``vector`` (fixed-size list of float32); the file
metadata holds the model identity under :data:`~bge_explorer.indexes.base.IDENTITY_KEY` and the chunking.
A shard is written to a temporary name and renamed, so a shard that exists is complete.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from bge_explorer.errors import ConfigError
from bge_explorer.indexes.base import IDENTITY_KEY, PAYLOAD_COLUMNS, ModelIdentity, register
from bge_explorer.indexes.faiss_backends import FlatIndex

SHARD_GLOB = "part-*.parquet"
CHUNKING_KEY = "bge_explorer.chunking"


def shard_name(number: int) -> str:
    return f"part-{number:05d}.parquet"


def write_shard(path: str | Path, ids: np.ndarray, payload: pd.DataFrame, vectors: np.ndarray,
                identity: ModelIdentity, chunking: dict) -> None:
    """Write one shard atomically: (n,) ids, an n-row payload (PAYLOAD_COLUMNS), (n, dim) float32 vectors."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = np.ascontiguousarray(vectors, np.float32)
    columns = {"id": pa.array(np.asarray(ids, np.int64))}
    for name in PAYLOAD_COLUMNS:
        columns[name] = pa.array(payload[name].tolist())
    columns["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    table = pa.table(columns).replace_schema_metadata({IDENTITY_KEY: identity.to_json(),
                                                       CHUNKING_KEY: json.dumps(chunking, sort_keys=True)})
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def shards(folder: str | Path) -> list[Path]:
    """The complete shards of ``folder``, in name order."""
    return sorted(Path(folder).glob(SHARD_GLOB))


def shard_identity(path: str | Path) -> tuple[ModelIdentity | None, dict]:
    """A shard's stored model identity (None without one) and chunking."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    identity = ModelIdentity.from_json(meta[IDENTITY_KEY.encode()]) if IDENTITY_KEY.encode() in meta else None
    return identity, json.loads(meta.get(CHUNKING_KEY.encode(), b"{}"))


def read_shard(path: str | Path) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """One shard: ids (n,), payload (n rows of PAYLOAD_COLUMNS), vectors (n, dim) float32."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    vectors = table.column("vector").combine_chunks()
    dim = vectors.type.list_size
    flat = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    payload = table.select([c for c in PAYLOAD_COLUMNS if c in table.column_names]).to_pandas()
    return table.column("id").to_numpy().astype(np.int64), payload, flat.reshape(-1, dim)


def read_shards(folder: str | Path) -> tuple[np.ndarray, pd.DataFrame, np.ndarray, ModelIdentity | None]:
    """Every shard of ``folder``: ids (n,), payload (n rows), vectors (n, dim) float32 and the identity they share.
    ConfigError("index") when the folder has no shards or its shards disagree on the model."""
    paths = shards(folder)
    identity = folder_identity(folder)
    parts = [read_shard(p) for p in paths]
    return (np.concatenate([p[0] for p in parts]), pd.concat([p[1] for p in parts], ignore_index=True),
            np.concatenate([p[2] for p in parts]), identity)


def folder_identity(folder: str | Path) -> ModelIdentity | None:
    """The model identity every shard of ``folder`` shares; ConfigError("index") without shards or when they differ."""
    paths = shards(folder)
    if not paths:
        raise ConfigError("index", f"{folder} has no {SHARD_GLOB} shards")
    identities = {shard_identity(p)[0] for p in paths}
    if len(identities) > 1:
        raise ConfigError("index", f"the shards of {folder} were embedded with different models: "
                                   + "; ".join(f"{i.model} ({i.identity})" if i else "no identity" for i in identities))
    return identities.pop()


@register
class ParquetIndex(FlatIndex):
    """The shards of a folder in exact FAISS (read-only: shards are written by ``embed --engine ray``)."""

    name = "parquet"

    @classmethod
    def create(cls, dim, identity=None, **options):
        raise ConfigError("index", "a Parquet folder is written by `python -m bge_explorer embed --engine ray "
                                   "--out DIR`; open it here")

    @classmethod
    def open(cls, read_only: bool = True, *, path: str) -> ParquetIndex:
        ids, payload, vectors, identity = read_shards(path)
        index = cls(vectors.shape[1], identity)
        index._add(vectors, ids, payload)
        index.read_only = True
        index.report.update(path=str(path), shards=len(shards(path)))
        return index
