"""Security review "Safe and fair on a public Space", data side: the qrels split stays inside the dataset,
size bombs within the limits are refused early, chunks keep their token budget, broken UTF-16 and long CSV
fields are handled, hidden characters are shown, CSV cells are defused."""
from __future__ import annotations

import pandas as pd
import pytest

from bge_explorer.data.corpus import load_corpus
from bge_explorer.data.qrels import read_queries
from bge_explorer.errors import CorpusError, LimitError, QrelsError


# ---------------------------------------------------------------------------------------------------------
# 2. Size bombs inside the limits


def test_text_past_the_budget_is_refused_across_files_whatever_on_error(tmp_path):
    (tmp_path / "a.txt").write_text("word " * 30_000)  # 150,000 characters
    (tmp_path / "b.txt").write_text("more " * 30_000)
    (tmp_path / "c.txt").write_text("x" * 300_000)  # fewer bytes than 4 x the budget: counted once decoded
    assert len(load_corpus([tmp_path / "a.txt"], max_chunks=100).documents) == 1  # 150,000 <= 204,800
    for paths in ([tmp_path / "a.txt", tmp_path / "b.txt"], [tmp_path / "c.txt"]):
        for on_error in ("raise", "skip"):
            with pytest.raises(LimitError, match=r"over 204,800 characters, more than 100 chunks can hold"):
                load_corpus(paths, max_chunks=100, on_error=on_error)


# ---------------------------------------------------------------------------------------------------------
# 3. Broken UTF-16, long CSV fields, hidden characters, CSV injection


def test_odd_length_utf16_is_a_corpus_error_and_skip_keeps_the_other_files(tmp_path):
    (tmp_path / "good.txt").write_text("Good text.")
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe" + "hello".encode("utf-16-le") + b"!")  # 13 bytes
    corpus = load_corpus([tmp_path / "good.txt", tmp_path / "bad.txt"], on_error="skip")
    assert corpus.documents["doc_id"].tolist() == ["good.txt"]
    assert len(corpus.problems) == 1 and corpus.problems[0].startswith("bad.txt: not valid UTF-16")
    with pytest.raises(CorpusError, match=r"bad\.txt: not valid UTF-16.*truncated data"):
        load_corpus([tmp_path / "good.txt", tmp_path / "bad.txt"])
    (tmp_path / "queries.jsonl").write_bytes((tmp_path / "bad.txt").read_bytes())
    with pytest.raises(QrelsError, match=r"queries\.jsonl: not valid UTF-16"):
        read_queries(tmp_path / "queries.jsonl")


@pytest.mark.parametrize("text, shown", [
    ("invoice\u202eexe.txt", "invoice\\u202eexe.txt"),
    ("a\u202ab\u202bc\u202cd\u202de", "a\\u202ab\\u202bc\\u202cd\\u202de"),
    ("\u2066x\u2067y\u2068z\u2069", "\\u2066x\\u2067y\\u2068z\\u2069"),
    ("l\u200er\u200fa\u061c", "l\\u200er\\u200fa\\u061c"),
    ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff"),
    ("line\nbreak\x00\x1b[31m", "line\\x0abreak\\x00\\x1b[31m"),
    ("tag\U000e0041smuggled", "tag\\U000e0041smuggled"),
    ("Ελληνικά, 漢字, العربية, हिन्दी, नमस्‍ते", "Ελληνικά, 漢字, العربية, हिन्दी, नमस्‍ते"),
    ("👩‍🔬 🇫🇷 👍🏽 🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f ok",
     "👩‍🔬 🇫🇷 👍🏽 🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f ok"),
    ("plain ascii, no change", "plain ascii, no change"),
])
def test_visible_escapes_hidden_characters_only(text, shown):
    from bge_explorer.data.safe_text import visible

    assert visible(text) == shown


@pytest.mark.parametrize("cell, expected", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
    ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"), ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"),
    ("\r=1", "'\r=1"), ("plain text", "plain text"), ("a=b", "a=b"), ("", ""), ("-1.5", "-1.5"), ("+3e5", "+3e5"),
    (-1.5, -1.5), (3, 3), (None, None),
])
def test_neutralize_csv_cell(cell, expected):
    from bge_explorer.data.safe_text import neutralize_csv_cell

    assert neutralize_csv_cell(cell) == expected and type(neutralize_csv_cell(cell)) is type(expected)


def test_safe_csv_frame_defuses_text_columns_and_keeps_numbers(tmp_path):
    from bge_explorer.data.safe_text import safe_csv_frame

    frame = pd.DataFrame({"query": ["=1+1", "fine", "@evil"], "score": [-0.5, 1.0, 2.0], "rank": [-1, 2, 3],
                          "=header": pd.array(["-x", "y", None], dtype="string")})
    safe = safe_csv_frame(frame)
    assert frame.loc[0, "query"] == "=1+1"  # the input is unchanged
    assert safe["query"].tolist() == ["'=1+1", "fine", "'@evil"] and list(safe.columns)[-1] == "'=header"
    assert safe["score"].dtype == frame["score"].dtype and safe["rank"].tolist() == [-1, 2, 3]
    assert safe["'=header"].tolist()[:2] == ["'-x", "y"]
    safe.to_csv(tmp_path / "out.csv", index=False)
    read = pd.read_csv(tmp_path / "out.csv")
    assert not any(str(v).startswith(("=", "+", "@")) for v in read.to_numpy().ravel())
    assert read["score"].tolist() == [-0.5, 1.0, 2.0]
