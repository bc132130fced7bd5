"""A map of an index you already have: UMAP of a seeded uniform sample of the store's vectors, plus the query's
neighbourhood.

:func:`map_store` lists the store's ids (ids only), draws a seeded sample of at most :data:`MAP_SAMPLE` of them,
reads only their vectors and payloads, and fits UMAP on them once per connection (with k-means clusters named by
c-TF-IDF keywords, as the in-memory map). :func:`query_marks` places a query and its top k from the whole store
on that map: the hits inside the sample are marked where they are, the others are read from the store and placed
with UMAP's transform, so every hit is drawn whether the sample holds it or not.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from bge_explorer.data.chunking import Chunks
from bge_explorer.maps import labels, projection
from bge_explorer.retrieval.results import Ranking
from bge_explorer.scale.connect import Connection, chunk_table

MAP_SAMPLE = projection.FIT_SAMPLE  # vectors of a store drawn on its map (50,000: UMAP fits all of them)


@dataclasses.dataclass
class StoreMap:
    """The map of a store's sample: ``ids`` (m,), their ``chunks`` and ``vectors`` (m, dim), the fitted
    ``projection`` (coords (m, 2)), coarse ``clusters`` (m,) with their ``cluster_labels``, and the store's
    ``total`` count."""

    ids: np.ndarray
    chunks: Chunks
    vectors: np.ndarray
    projection: projection.Projection
    clusters: np.ndarray
    cluster_labels: list[labels.ClusterLabel]
    total: int

    @property
    def sampled(self) -> bool:
        return len(self.ids) < self.total

    def describe(self) -> str:
        drawn = (f"a seeded uniform sample of {len(self.ids):,} of its {self.total:,} vectors" if self.sampled
                 else f"all {self.total:,} of its vectors")
        return f"UMAP of {drawn} ({self.projection.note})"


def map_store(connection: Connection, n: int = MAP_SAMPLE, seed: int = 0) -> StoreMap:
    """Sample at most ``n`` of the store's vectors (seeded, uniform over its ids) and map them."""
    index = connection.index
    ids, vectors = index.sample(n, seed)
    chunks = chunk_table(index.fetch(ids), ids)
    fitted = projection.fit_umap(vectors)
    coarse = projection.clusters(vectors)
    found = labels.cluster_labels(chunks.table["text"].astype(str).tolist(), coarse, fitted.coords)
    return StoreMap(ids, chunks, vectors, fitted, coarse, found, index.count())


@dataclasses.dataclass
class QueryMarks:
    """A query on a :class:`StoreMap`: the points to draw (the sample's, then the hits outside it) as ``coords``
    (p, 2) and ``chunks``; the query's position ``xy``; rows of its ``retrieved`` top k and ``reranked`` top n
    among those points."""

    coords: np.ndarray
    chunks: pd.DataFrame
    xy: np.ndarray
    retrieved: list[int]
    reranked: list[int]
    outside: int  # hits not in the sample, placed by the transform


def query_marks(connection: Connection, store_map: StoreMap, ranking: Ranking, hit_ids: np.ndarray,
                k: int) -> QueryMarks:
    """Place ``ranking``'s query and its top ``k`` hits on ``store_map``; ``hit_ids`` (k',) are the store ids of the
    ranking's rows (:func:`~bge_explorer.scale.connect.search_hits`), so the store is not searched again."""
    index = connection.index
    hit_ids = np.asarray(hit_ids, np.int64)
    ids = hit_ids[:k]
    where = {int(i): row for row, i in enumerate(store_map.ids.tolist())}
    outside = np.array([i for i in ids.tolist() if i not in where], np.int64)
    table = store_map.chunks.table
    coords = store_map.projection.coords
    if len(outside):
        extra = chunk_table(index.fetch(outside), outside).table
        for row, i in enumerate(outside.tolist(), start=len(table)):
            where[i] = row
        table = pd.concat([table, extra], ignore_index=True)
        coords = np.vstack([coords, store_map.projection.transform(index.vectors(outside))])
    retrieved = [where[int(i)] for i in ids]
    reranked = ([where[int(i)] for i in hit_ids[ranking.final_rows()[:k]] if int(i) in where]
                if ranking.rerank_logits is not None else [])
    xy = store_map.projection.transform(np.asarray(ranking.query_vector, np.float32)[None, :])[0]
    return QueryMarks(coords, table, xy, retrieved, reranked, len(outside))
