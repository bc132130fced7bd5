"""Documents streamed from corpus files in blocks, so a corpus of any size is read with bounded memory.

Parquet is read a row group batch at a time; every other format (:data:`~bge_explorer.data.corpus.FORMATS`)
one file at a time through :func:`~bge_explorer.data.corpus.load_corpus`. A folder stands for the files under it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import pandas as pd

from bge_explorer.data.corpus import FORMATS, load_corpus
from bge_explorer.errors import CorpusError

PARQUET = ".parquet"
NO_LIMIT = 10 ** 15  # chunks: a batch job has no per-session chunk limit
DOCUMENT_COLUMNS = ["doc_id", "title", "text", "source"]


def expand(paths: Sequence[str | Path]) -> list[Path]:
    """Files named, and the readable files under named folders (sorted); CorpusError for a path that is neither."""
    out: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (*FORMATS, PARQUET))
        elif path.is_file():
            out.append(path)
        else:
            raise CorpusError(str(path), "no such file or folder")
    if not out:
        raise CorpusError(", ".join(map(str, paths)), f"no corpus files ({', '.join(FORMATS)}, {PARQUET})")
    return out


def _parquet_blocks(path: Path, block: int, text_column: str | None, id_column: str | None,
                    title_column: str | None) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    names = file.schema_arrow.names
    pick = lambda given, options: given if given else next((c for c in options if c in names), None)  # noqa: E731
    text, ids, title = pick(text_column, ["text", "contents", "body"]), pick(id_column, ["doc_id", "_id", "id"]), \
        pick(title_column, ["title"])
    if text is None or text not in names:
        raise CorpusError(path.name, f"no text column (--text-column); the columns are {', '.join(names)}")
    seen = 0
    for batch in file.iter_batches(batch_size=block, columns=[c for c in (ids, title, text) if c]):
        frame = batch.to_pandas()
        n = len(frame)
        yield pd.DataFrame({
            "doc_id": frame[ids].astype(str).tolist() if ids else [f"{path.stem}-{seen + i}" for i in range(n)],
            "title": frame[title].fillna("").astype(str).tolist() if title else [""] * n,
            "text": frame[text].fillna("").astype(str).tolist(), "source": path.name})
        seen += n


def iter_documents(paths: Sequence[str | Path], *, block: int = 10_000, text_column: str | None = None,
                   id_column: str | None = None, title_column: str | None = None) -> Iterator[pd.DataFrame]:
    """Blocks of at most ``block`` documents (DOCUMENT_COLUMNS), file by file in name order."""
    for path in expand(paths):
        if path.suffix.lower() == PARQUET:
            yield from _parquet_blocks(path, block, text_column, id_column, title_column)
            continue
        docs = load_corpus([path], text_column=text_column, id_column=id_column, title_column=title_column,
                           max_chunks=NO_LIMIT).documents[DOCUMENT_COLUMNS]
        for start in range(0, len(docs), block):
            yield docs.iloc[start:start + block].reset_index(drop=True)
