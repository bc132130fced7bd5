"""Vector index backends behind one interface: exact FAISS, FAISS HNSW and IVF-PQ, Milvus, Qdrant, Parquet shards.

Every backend is a :class:`~bge_explorer.indexes.base.VectorIndex` (``add``, ``search`` top k with scores,
``count``, ``identity``: the embedding model the vectors came from), registered by name in
:data:`~bge_explorer.indexes.base.BACKENDS` and made by :func:`~bge_explorer.indexes.base.create`.
``RetrievalConfig.index`` names one; :func:`~bge_explorer.indexes.base.open_index` connects to one that exists.
"""
from __future__ import annotations

from bge_explorer.indexes.base import (BACKENDS, ModelIdentity, VectorIndex, build, create, names, open_index,
                                       recall_at_k, register)
# Each module registers its backends; the import order is the order of INDEX_BACKENDS (faiss-flat first).
from bge_explorer.indexes import faiss_backends, milvus, qdrant, parquet  # noqa: E402,F401,I001

__all__ = ["BACKENDS", "ModelIdentity", "VectorIndex", "build", "create", "names", "open_index", "recall_at_k", "register"]
