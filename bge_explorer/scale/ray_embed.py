"""Batch embedding on Ray Data: documents -> chunks -> vectors -> Parquet shards, resumable and fault tolerant.

Documents are numbered in file order and grouped into shards of ``shard_docs`` documents
(``part-NNNNN.parquet``, :mod:`bge_explorer.indexes.parquet`); a chunk's id is ``document number << 20 | chunk
number``, the same in every run. The driver streams the documents a window of shards at a time into a
Ray Dataset of small blocks; ``map_batches`` with :class:`ChunkEmbedder` (one model per actor, ``num_gpus``
per actor on GPU clusters) chunks each block with the model's tokenizer and embeds it. Blocks come back in
order (``preserve_order``), so a shard is written, atomically, as soon as its last block is in. A shard
that exists is complete and skipped on a rerun. A killed actor is restarted and its block retried by Ray
(``max_restarts``/``max_task_retries``): a block's output is all or nothing, so no chunk is lost or doubled.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from bge_explorer.data.chunking import DEFAULT_OVERLAP, DEFAULT_SIZE
from bge_explorer.indexes.base import PAYLOAD_COLUMNS, ModelIdentity
from bge_explorer.indexes.parquet import shard_identity, shard_name, write_shard
from bge_explorer.scale.documents import iter_documents

CHUNK_BITS = 20  # chunks per document: up to 2**20
BLOCK_DOCS = 64  # documents per Ray block (the unit an actor embeds and a fault retries)


def chunk_ids(doc_numbers: np.ndarray, chunk_numbers: np.ndarray) -> np.ndarray:
    """(n,) document numbers and chunk numbers -> (n,) int64 ids, unique over a corpus."""
    return (np.asarray(doc_numbers, np.int64) << CHUNK_BITS) | np.asarray(chunk_numbers, np.int64)


class ChunkEmbedder:
    """A Ray actor: loads the model once, then chunks and embeds blocks of documents.

    ``__call__``: a block (columns seq, shard, doc_id, title, text, source) -> its chunks: id, shard,
    PAYLOAD_COLUMNS, vector (n, dim) float32 and identity (the model identity as JSON, every row)."""

    def __init__(self, model: str, pooling: str | None, model_class: str | None, precision: str,
                 chunk_size: int | None, overlap: int, device: str, batch_size: int | None):
        from bge_explorer.models.loading import load_embedder

        self.embedder = load_embedder(model, pooling=pooling, model_class=model_class, precision=precision,
                                      device=device, batch_size=batch_size)
        self.chunk_size, self.overlap = chunk_size, overlap
        self.identity = ModelIdentity.of(self.embedder).to_json()

    def __call__(self, block: pd.DataFrame) -> dict[str, np.ndarray]:
        from bge_explorer.data.chunking import chunk_documents

        docs = block.assign(page_starts=None)
        chunks = chunk_documents(docs, self.embedder.tokenizer, self.chunk_size, self.overlap)
        table = chunks.table
        seq = dict(zip(block["doc_id"], block["seq"]))
        shard = dict(zip(block["doc_id"], block["shard"]))
        vectors = self.embedder.encode_corpus(chunks.passages()) if len(table) else \
            np.empty((0, self.embedder.dim), np.float32)
        out = {"id": chunk_ids(table["doc_id"].map(seq).to_numpy(), table["chunk"].to_numpy()),
               "shard": table["doc_id"].map(shard).to_numpy(np.int64)}
        for name in PAYLOAD_COLUMNS:
            out[name] = table[name].to_numpy()
        out["vector"] = vectors
        out["identity"] = np.array([self.identity] * len(table), dtype=object)
        return out


@dataclasses.dataclass
class EmbedSummary:
    """What a run did: documents and chunks embedded now, documents that gave no chunk (no text), shards written
    and skipped (done before), seconds."""

    documents: int = 0
    chunks: int = 0
    empty_documents: int = 0
    shards_written: int = 0
    shards_skipped: int = 0
    seconds: float = 0.0

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (f"{self.documents:,} documents, {self.chunks:,} chunks embedded in {self.seconds:.1f} s "
                f"({self.chunks_per_s:.1f} chunks/s); {self.shards_written} shards written, {self.shards_skipped} "
                f"skipped (already done); failures: {self.empty_documents:,} documents without text")


def _init_ray(address: str | None, workers: int, gpus_per_worker: float) -> None:
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(num_cpus=workers, num_gpus=int(np.ceil(gpus_per_worker * workers)) or None, include_dashboard=False,
                 log_to_driver=False)


def _check_identity(out: Path, identity: ModelIdentity) -> None:
    """Refuse to add shards of another model to a folder (ConfigError("model") naming both)."""
    for path in sorted(out.glob("part-*.parquet"))[:1]:
        stored, _ = shard_identity(path)
        if stored is not None:
            stored.check(identity)


def embed_corpus(paths: Sequence[str | Path], out: str | Path, model: str, *, pooling: str | None = None,
                 model_class: str | None = None, precision: str = "fp32", chunk_size: int | None = DEFAULT_SIZE,
                 overlap: int = DEFAULT_OVERLAP, address: str | None = None, workers: int = 2,
                 gpus_per_worker: float = 0, batch_size: int | None = None, shard_docs: int = 1_000,
                 window_shards: int | None = None, text_column: str | None = None, id_column: str | None = None,
                 title_column: str | None = None, progress: Callable[[str], None] | None = None) -> EmbedSummary:
    """Embed the corpus files ``paths`` into Parquet shards under ``out`` (see the module docstring).

    ``workers`` actors (each 1 CPU and ``gpus_per_worker`` GPUs; a local Ray of ``workers`` CPUs without
    ``address``); ``window_shards`` shards in flight at a time (default 2 per worker) bound the driver's memory.
    Raises ConfigError("model") when ``out`` holds shards of another model."""
    import ray

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _init_ray(address, workers, gpus_per_worker)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    window = (window_shards or 2 * workers) * shard_docs
    device = "cuda:0" if gpus_per_worker else "cpu"
    kwargs = dict(model=model, pooling=pooling, model_class=model_class, precision=precision, chunk_size=chunk_size,
                  overlap=overlap, device=device, batch_size=batch_size)
    say = progress or (lambda text: print(text, file=sys.stderr, flush=True))
    summary, started = EmbedSummary(), time.perf_counter()
    seq = 0
    pending: list[pd.DataFrame] = []
    skipped: set[int] = set()

    def run(docs: pd.DataFrame) -> None:
        if len(docs) == 0:
            return
        shards = sorted(set(docs["shard"]))
        blocks = [docs.iloc[i:i + BLOCK_DOCS].reset_index(drop=True) for i in range(0, len(docs), BLOCK_DOCS)]
        ds = ray.data.from_pandas(blocks).map_batches(
            ChunkEmbedder, fn_constructor_kwargs=kwargs, batch_size=None, batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1, num_gpus=gpus_per_worker or None)
        # Ray Data restarts a dead actor and retries its block (max_restarts = max_task_retries = -1 by default)
        rows: dict[int, list[dict]] = {s: [] for s in shards}
        identity: ModelIdentity | None = None
        todo = list(shards)

        def flush(upto: int | None) -> None:
            while todo and (upto is None or todo[0] < upto):
                shard = todo.pop(0)
                if identity is None:
                    continue  # nothing embedded yet in this window: no identity to write an empty shard with
                parts = rows.pop(shard)
                ids = np.concatenate([p["id"] for p in parts]) if parts else np.empty(0, np.int64)
                payload = pd.concat([pd.DataFrame({c: p[c] for c in PAYLOAD_COLUMNS}) for p in parts],
                                    ignore_index=True) if parts else pd.DataFrame(columns=list(PAYLOAD_COLUMNS))
                vectors = np.concatenate([p["vector"] for p in parts]) if parts else \
                    np.empty((0, identity.dim), np.float32)
                write_shard(out / shard_name(shard), ids, payload, vectors, identity,
                            {"chunk_size": chunk_size, "overlap": overlap, "shard_docs": shard_docs})
                summary.shards_written += 1
                summary.chunks += len(ids)
                summary.empty_documents += int((docs["shard"] == shard).sum()) - payload["doc_id"].nunique()
                elapsed = time.perf_counter() - started
                say(f"shard {shard_name(shard)}: {len(ids):,} chunks; {summary.shards_written} written, "
                    f"{summary.chunks:,} chunks, {summary.chunks / elapsed:.1f} chunks/s")

        for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
            if len(batch["id"]) == 0:
                continue
            if identity is None:
                identity = ModelIdentity.from_json(str(batch["identity"][0]))
                _check_identity(out, identity)
            for shard in np.unique(batch["shard"]):
                mask = batch["shard"] == shard
                rows[int(shard)].append({k: v[mask] for k, v in batch.items() if k != "identity"})
            flush(int(batch["shard"].max()))
        flush(None)

    for block in iter_documents(paths, text_column=text_column, id_column=id_column, title_column=title_column):
        numbers = np.arange(seq, seq + len(block))
        seq += len(block)
        block = block.assign(seq=numbers, shard=numbers // shard_docs)
        done = {int(s) for s in set(block["shard"]) if (out / shard_name(int(s))).exists()}
        skipped |= done
        block = block[~block["shard"].isin(done)]
        summary.documents += len(block)
        if len(block):
            pending.append(block)
        if sum(map(len, pending)) >= window:  # run the complete shards; the last one may go on in the next block
            docs = pd.concat(pending, ignore_index=True)
            last = docs["shard"].max()
            run(docs[docs["shard"] < last].reset_index(drop=True))
            pending = [docs[docs["shard"] == last].reset_index(drop=True)]
    if pending:
        run(pd.concat(pending, ignore_index=True))
    summary.shards_skipped = len(skipped)
    summary.seconds = time.perf_counter() - started
    return summary
