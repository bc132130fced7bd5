"""Token chunking with the model's tokenizer: sizes, overlap, word boundaries, offsets, pages."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bge_explorer.errors import ConfigError
from transformers import AutoTokenizer

from bge_explorer.data.chunking import chunk_documents, windows

WORDS = ("the cell protein gene cancer risk patients study human blood brain drug virus bacteria photosynthesis "
         "retrieval embedding").split()


def docs(*texts, page_starts=None):
    return pd.DataFrame(dict(doc_id=[f"d{i}" for i in range(len(texts))], title="", text=list(texts), source="s",
                             page_starts=[page_starts] * len(texts)))


@pytest.fixture(scope="module")
def tokenizer(tiny_encoder):
    return AutoTokenizer.from_pretrained(tiny_encoder)


def test_windows_respect_size_overlap_and_word_starts():
    rng = np.random.default_rng(0)
    starts = rng.random(500) < 0.6
    starts[0] = True
    spans = windows(starts, size=40, overlap=8)
    assert spans[0][0] == 0 and spans[-1][1] == 500
    for (s, e), (s2, e2) in zip(spans, spans[1:]):
        assert e - s <= 40 and starts[s] and (e == 500 or starts[e])
        assert s < s2 <= e and e - s2 <= 8  # progress, and at most `overlap` tokens shared


def test_chunks_never_split_a_word_and_offsets_point_into_the_document(tokenizer):
    rng = np.random.default_rng(1)
    text = " ".join(rng.choice(WORDS, 400)) + " supercalifragilistic end"
    chunks = chunk_documents(docs(text), tokenizer, size=30, overlap=5).table
    assert len(chunks) > 5
    for row in chunks.itertuples():
        assert text[row.start:row.end] == row.text
        assert row.start == 0 or text[row.start - 1] == " "
        assert row.end == len(text) or text[row.end] == " "
        assert row.n_tokens <= 30
    assert chunks["chunk"].tolist() == list(range(len(chunks)))
    assert chunks["chunk_id"].iloc[1] == "d0#1"
    covered = np.zeros(len(text), bool)
    for row in chunks.itertuples():
        covered[row.start:row.end] = True
    assert covered[[i for i, c in enumerate(text) if c != " "]].all()  # nothing lost


def test_overlap_repeats_text_between_neighbours(tokenizer):
    text = " ".join(WORDS * 10)
    chunks = chunk_documents(docs(text), tokenizer, size=20, overlap=6).table
    for a, b in zip(chunks.itertuples(), list(chunks.itertuples())[1:]):
        assert b.start < a.end  # they share text
    no_overlap = chunk_documents(docs(text), tokenizer, size=20, overlap=0).table
    assert all(b.start >= a.end for a, b in zip(no_overlap.itertuples(), list(no_overlap.itertuples())[1:]))


def test_no_chunking_is_one_chunk_per_document_and_empty_ones_are_counted(tokenizer):
    result = chunk_documents(docs("one two", "   \n ", "", "three"), tokenizer, size=None)
    assert result.table["doc_id"].tolist() == ["d0", "d3"]
    assert result.dropped_empty == 2
    assert result.table["n_tokens"].tolist() == [len(tokenizer("one two", add_special_tokens=False)["input_ids"]),
                                                 len(tokenizer("three", add_special_tokens=False)["input_ids"])]


def test_pdf_page_of_each_chunk(tokenizer):
    page1 = " ".join(["cell"] * 50)
    text = page1 + "\n\n" + " ".join(["brain"] * 50)
    chunks = chunk_documents(docs(text, page_starts=[0, len(page1) + 2]), tokenizer, size=20, overlap=0).table
    assert chunks["page"].iloc[0] == 1 and chunks["page"].iloc[-1] == 2
    assert all(("brain" in t) == (p == 2) or "cell" in t for t, p in zip(chunks["text"], chunks["page"]))


def test_title_is_prefixed_to_the_embedded_passage(tokenizer):
    frame = docs("body text")
    frame["title"] = "A Title"
    chunks = chunk_documents(frame, tokenizer, size=None)
    assert chunks.passages() == ["A Title body text"]
    assert chunks.table["text"].tolist() == ["body text"]


def test_bad_sizes_are_rejected(tokenizer):
    with pytest.raises(ConfigError, match="overlap") as info:
        chunk_documents(docs("x"), tokenizer, size=10, overlap=10)
    assert info.value.field == "overlap"
