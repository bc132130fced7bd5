"""Splitting documents into chunks by tokens of the model's own tokenizer.

A chunk never starts or ends inside a whitespace-delimited word, except a word longer than a chunk,
which is cut at token boundaries: a chunk never has more tokens than its size, whatever the text. A
token spans at most MAX_TOKEN_CHARS characters (a longer one, such as the ``[UNK]`` WordPiece makes of
a word of over 100 characters, counts as one token per MAX_TOKEN_CHARS characters), so a chunk's text
has at most ``size x MAX_TOKEN_CHARS`` characters plus what the tokenizer skips between its tokens
(whitespace, control characters). Each chunk keeps its document id, title, chunk number, character
offsets ``[start, end)`` into the document text, its page (PDFs) and its length in tokens. Empty and
whitespace-only chunks are dropped and counted.
"""
from __future__ import annotations

import bisect
import dataclasses
from typing import Sequence

import numpy as np
import pandas as pd

from bge_explorer.errors import ConfigError, LimitError

DEFAULT_SIZE = 256
DEFAULT_OVERLAP = 32
SEGMENT_CHARS = 200_000  # longer documents are tokenized in pieces of about this many characters
MAX_TOKEN_CHARS = 100  # WordPiece's longest word; a token spanning more is counted as several
CHUNK_COLUMNS = ["chunk_id", "doc_id", "chunk", "title", "text", "start", "end", "page", "n_tokens", "source"]


@dataclasses.dataclass
class Chunks:
    """The chunk table (CHUNK_COLUMNS) and how many empty chunks were dropped."""

    table: pd.DataFrame
    dropped_empty: int = 0

    def __len__(self) -> int:
        return len(self.table)

    def passages(self, rows: Sequence[int] | None = None) -> list[str]:
        """What gets embedded (and reranked) for each chunk, or for the given row positions:
        ``title + " " + text`` when the document has a title (BEIR/MTEB convention), else the text."""
        table = self.table if rows is None else self.table.iloc[list(rows)]
        return [f"{title} {text}" if title else text for title, text in zip(table["title"], table["text"])]


def windows(word_starts: np.ndarray, size: int, overlap: int) -> list[tuple[int, int]]:
    """Token windows ``[s, e)`` of at most ``size`` tokens that start and end on word starts where they can.

    ``word_starts``: (n_tokens,) bool, True where a token begins a word. Consecutive windows share
    at most ``overlap`` tokens. A word longer than ``size`` tokens is cut every ``size`` tokens or so.
    """
    n = len(word_starts)
    boundaries = np.flatnonzero(word_starts).tolist() + [n]  # preferred cut points
    out, s = [], 0
    while s < n:
        i = bisect.bisect_right(boundaries, s + size) - 1
        e = boundaries[i] if boundaries[i] > s else min(s + size, n)  # no word start in reach: cut the word
        out.append((s, e))
        if e >= n:
            break
        back = max(e - overlap, s + 1)
        j = bisect.bisect_left(boundaries, back)
        s = boundaries[j] if boundaries[j] <= e else back  # inside a long word: go back `overlap` tokens
    return out


def split_long_tokens(offsets: np.ndarray, limit: int = MAX_TOKEN_CHARS) -> np.ndarray:
    """Token offsets ``(n, 2)`` -> ``(m, 2)``, m >= n: a token spanning more than ``limit`` characters becomes
    consecutive spans of at most ``limit``."""
    lengths = offsets[:, 1] - offsets[:, 0]
    if len(offsets) == 0 or lengths.max() <= limit:
        return offsets
    pieces = np.maximum(1, -(-lengths // limit))
    first = np.repeat(np.cumsum(pieces) - pieces, pieces)  # each piece's token's first piece
    starts = np.repeat(offsets[:, 0], pieces) + limit * (np.arange(pieces.sum()) - first)
    return np.stack([starts, np.minimum(starts + limit, np.repeat(offsets[:, 1], pieces))], axis=1)


def _segments(text: str, limit: int = SEGMENT_CHARS):
    """``(start, piece)`` pieces of ``text`` of at most about ``limit`` characters, cut just after whitespace
    (so a word-level tokenizer gives the same tokens as on the whole text)."""
    start, n = 0, len(text)
    while start < n:
        end = min(start + limit, n)
        if end < n:
            cut = max(text.rfind(c, start, end) for c in " \n\t\r")
            if cut > start:
                end = cut + 1
        yield start, text[start:end]
        start = end


def _token_offsets(texts: list[str], tokenizer, size: int | None, max_chunks: int | None, rows: list):
    """Per document, its token offsets ``(n_tokens, 2)``: short documents are tokenized in batches, long ones
    in pieces, so memory stays bounded whatever the corpus. Past ``max_chunks`` (chunks already made are
    ``len(rows)``; a document of more than ``room x size`` tokens cannot fit) raises LimitError early,
    before the rest is tokenized."""
    def encode(pieces: list[str]) -> list[np.ndarray]:
        encoded = tokenizer(pieces, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [split_long_tokens(np.asarray(o, dtype=np.int64).reshape(-1, 2)) for o in encoded["offset_mapping"]]

    def over(tokens: int) -> None:
        if max_chunks is not None and size is not None and tokens > (max_chunks - len(rows)) * size:
            raise LimitError(f"more than {max_chunks:,} chunks of up to {size} tokens: over the limit of "
                             f"{max_chunks:,} chunks (BGE_EXPLORER_MAX_CHUNKS); use larger chunks or fewer documents")

    batch: list[str] = []
    for i, text in enumerate(texts + [None]):  # None: flush the last batch
        if text is not None and len(text) <= SEGMENT_CHARS and sum(map(len, batch)) + len(text) <= 5 * SEGMENT_CHARS:
            batch.append(text)
            continue
        if batch:
            yield from encode(batch)  # the caller appends rows between documents, so `over` sees them
            batch = []
        if text is None:
            break
        if len(text) <= SEGMENT_CHARS:
            batch.append(text)
            continue
        parts, tokens = [], 0
        for start, piece in _segments(text):
            offsets = encode([piece])[0] + start
            tokens += len(offsets)
            over(tokens)
            parts.append(offsets)
        yield np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64)


def chunk_documents(documents: pd.DataFrame, tokenizer, size: int | None = DEFAULT_SIZE,
                    overlap: int = DEFAULT_OVERLAP, max_chunks: int | None = None) -> Chunks:
    """Documents (corpus.COLUMNS) -> :class:`Chunks`. ``size=None``: one chunk per document.

    ``tokenizer`` is a Hugging Face fast tokenizer (offsets are needed). Raises ValueError for a
    size below 1 or an overlap outside ``[0, size)``. With ``max_chunks``, raises LimitError as soon as
    the chunks cannot fit, before the rest of the corpus is tokenized.
    """
    if size is not None and (size < 1 or not 0 <= overlap < size):
        raise ConfigError("overlap" if size and size >= 1 else "chunk_size",
                          f"the chunk size must be at least 1 and the overlap from 0 to below it; got size={size}, "
                          f"overlap={overlap}")
    rows, dropped = [], 0
    docs = documents.itertuples(index=False)
    for doc, offsets in zip(docs, _token_offsets(documents["text"].tolist(), tokenizer, size, max_chunks, rows)):
        text = doc.text
        if size is None or len(offsets) == 0:
            spans = [(0, len(offsets))]
        else:
            word_starts = np.array([s == 0 or text[s - 1].isspace() for s in offsets[:, 0]])
            word_starts[0] = True
            spans = windows(word_starts, size, overlap)
        number = 0
        for s, e in spans:
            if size is None or len(offsets) == 0:
                start, end = 0, len(text)
            else:
                start, end = int(offsets[s, 0]), int(offsets[e - 1, 1])
            chunk_text = text[start:end]
            if not chunk_text.strip():
                dropped += 1
                continue
            page = bisect.bisect_right(doc.page_starts, start) if doc.page_starts is not None else None
            rows.append((f"{doc.doc_id}#{number}", doc.doc_id, number, doc.title, chunk_text, start, end, page,
                         e - s, doc.source))
            number += 1
        if max_chunks is not None and len(rows) > max_chunks:
            raise LimitError(f"at least {len(rows):,} chunks is over the limit of {max_chunks:,} chunks "
                             "(BGE_EXPLORER_MAX_CHUNKS); use larger chunks or fewer documents")
    table = pd.DataFrame(rows, columns=CHUNK_COLUMNS)
    table["page"] = table["page"].astype("Int64")
    return Chunks(table, dropped)
