"""Security review "Safe and fair on a public Space", data side: the qrels split stays inside the dataset,
size bombs within the limits are refused early, chunks keep their token budget, broken UTF-16 and long CSV
fields are handled, hidden characters are shown, CSV cells are defused."""
from __future__ import annotations

import json
import os
import shutil
import tracemalloc
import zipfile

import numpy as np
import pandas as pd
import pytest
from transformers import AutoTokenizer

from bge_explorer.cli.commands import main
from bge_explorer.data.chunking import chunk_documents, windows
from bge_explorer.data.corpus import load_corpus
from bge_explorer.data.qrels import load_beir, read_qrels_csv, read_queries
from bge_explorer.errors import CorpusError, LimitError, QrelsError

SECRET = "query-id\tcorpus-id\tscore\nalice\tapi_key=SECRET-TOKEN\t1\nbob\tpassword=hunter2\t1\n"


def write_dataset(folder, corpus_src, split="test"):
    """A small BEIR folder: the sample corpus, two queries, one judgment each."""
    (folder / "qrels").mkdir(parents=True)
    shutil.copy(corpus_src, folder / "corpus.jsonl")
    (folder / "queries.jsonl").write_text('{"_id": "1", "text": "eiffel"}\n{"_id": "alice", "text": "who"}\n')
    (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n1\teiffel-tower\t1\n")
    return folder


@pytest.fixture()
def planted(tmp_path, sample_corpus):
    """(dataset folder, a .tsv with secrets outside it)."""
    (tmp_path / "outside").mkdir()
    secret = tmp_path / "outside" / "secret.tsv"
    secret.write_text(SECRET)
    return write_dataset(tmp_path / "ds", sample_corpus), secret


def assert_no_secret(message: str):
    for leaked in ("alice", "bob", "SECRET-TOKEN", "api_key", "hunter2"):
        assert leaked not in message


# ---------------------------------------------------------------------------------------------------------
# 1. The qrels split cannot leave the dataset folder


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink"])
def test_split_cannot_read_a_tsv_outside_the_dataset(planted, kind):
    folder, secret = planted
    if kind == "absolute":
        split = str(secret.with_suffix(""))
    elif kind == "dotdot":
        split = "../../outside/secret"
    else:
        (folder / "qrels" / "leak.tsv").symlink_to(secret)
        split = "leak"
    with pytest.raises(QrelsError) as info:
        load_beir(folder, split)
    message = str(info.value)
    assert_no_secret(message)
    if kind == "symlink":
        assert "qrels/leak.tsv leads outside the dataset folder" in message
    else:
        assert "is not a split name" in message and "the splits here are: test" in message
    assert len(load_beir(folder, "test").judgments) == 1  # the dataset's own split still loads


def test_symlinked_queries_or_corpus_outside_the_dataset_are_refused(planted, tmp_path):
    folder, secret = planted
    outside_queries = tmp_path / "outside" / "queries.jsonl"
    outside_queries.write_text('{"_id": "alice", "text": "api_key=SECRET-TOKEN"}\n')
    (folder / "queries.jsonl").unlink()
    (folder / "queries.jsonl").symlink_to(outside_queries)
    with pytest.raises(QrelsError, match="queries.jsonl leads outside the dataset folder") as info:
        load_beir(folder)
    assert_no_secret(str(info.value))


def test_cli_split_is_checked_too(planted, capsys):
    folder, secret = planted
    assert main(["evaluate", "--beir", str(folder), "--split", str(secret.with_suffix("")), "--model", "x"]) == 2
    err = capsys.readouterr().err
    assert "is not a split name" in err
    assert_no_secret(err)


def test_split_names_are_short_names_of_the_folders_own_files(planted):
    folder, _ = planted
    shutil.copy(folder / "qrels" / "test.tsv", folder / "qrels" / "dev.tsv")
    with pytest.raises(LimitError, match=r"the split has 501 characters.*BGE_EXPLORER_MAX_FIELD_CHARS"):
        load_beir(folder, "a" * 501)
    for bad in (".hidden", "a/b", "", "test.tsv/..", "te st"):
        with pytest.raises(QrelsError, match=r"is not a split name.*the splits here are: dev, test"):
            load_beir(folder, bad)
    with pytest.raises(QrelsError, match="no qrels/train.tsv; the splits here are: dev, test"):
        load_beir(folder, "train")
    assert load_beir(folder, "dev").split == "dev"


def test_values_echoed_in_messages_are_cut_short(tmp_path, sample_corpus):
    folder = write_dataset(tmp_path / "ds", sample_corpus)
    long_id = "x" * 5_000
    (folder / "qrels" / "test.tsv").write_text(f"query-id\tcorpus-id\tscore\n1\t{long_id}\t1\n1\tbm25\t{long_id}\n")
    with pytest.raises(QrelsError, match=r"the score 'x{40}…' is not a number") as info:
        load_beir(folder)
    assert len(str(info.value)) < 300
    (folder / "qrels" / "test.tsv").write_text(f"query-id\tcorpus-id\tscore\n1\t{long_id}\t1\n{long_id}\tbm25\t1\n")
    with pytest.raises(QrelsError, match=r"not in the queries file: 'x{40}…'") as info:
        load_beir(folder)
    assert len(str(info.value)) < 300
    (folder / "qrels" / "test.tsv").write_text(f"query-id\tcorpus-id\tscore\n1\t{long_id}\t1\n")
    with pytest.raises(QrelsError, match=r"not in the corpus \(1 judgment\(s\)\): 'x{40}…'") as info:
        load_beir(folder)
    assert len(str(info.value)) < 400


# ---------------------------------------------------------------------------------------------------------
# 2. Size bombs inside the limits


def test_corpus_in_a_zip_past_the_chunk_limit_is_refused_before_it_is_read(tmp_path, sample_corpus, monkeypatch):
    monkeypatch.setenv("BGE_EXPLORER_MAX_CHUNKS", "100")  # room for 100 x 2,048 characters of text
    folder = write_dataset(tmp_path / "ds", sample_corpus)
    line = {"title": "", "text": "volcano lava " * 30}
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", **line}) + "\n" for i in range(12_000))
                                         + json.dumps({"_id": "eiffel-tower", "text": "Paris"}) + "\n")
    assert os.path.getsize(folder / "corpus.jsonl") > 5_000_000
    zipped = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as z:
        for file in sorted(folder.rglob("*")):
            z.write(file, file.relative_to(folder).as_posix())
    assert os.path.getsize(zipped) < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(LimitError, match=r"corpus\.jsonl: the text is over 204,800 characters.*"
                                             r"BGE_EXPLORER_MAX_CHUNKS"):
            load_beir(zipped)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < os.path.getsize(folder / "corpus.jsonl") * 0.9  # never held the corpus, let alone parsed it


def test_text_past_the_budget_is_refused_across_files_whatever_on_error(tmp_path):
    (tmp_path / "a.txt").write_text("word " * 30_000)  # 150,000 characters
    (tmp_path / "b.txt").write_text("more " * 30_000)
    (tmp_path / "c.txt").write_text("x" * 300_000)  # fewer bytes than 4 x the budget: counted once decoded
    assert len(load_corpus([tmp_path / "a.txt"], max_chunks=100).documents) == 1  # 150,000 <= 204,800
    for paths in ([tmp_path / "a.txt", tmp_path / "b.txt"], [tmp_path / "c.txt"]):
        for on_error in ("raise", "skip"):
            with pytest.raises(LimitError, match=r"over 204,800 characters, more than 100 chunks can hold"):
                load_corpus(paths, max_chunks=100, on_error=on_error)


@pytest.fixture(scope="module")
def tokenizer(tiny_encoder):
    return AutoTokenizer.from_pretrained(tiny_encoder)


def one_doc(text: str) -> pd.DataFrame:
    return pd.DataFrame(dict(doc_id=["d"], title=[""], text=[text], source=["s"], page_starts=[None]))


@pytest.mark.parametrize("text", ["a" * 300_000,  # one WordPiece [UNK] per 200,000-character segment
                                  "abc/def+ghi=" * 5_000,  # short tokens, no whitespace
                                  "intro words here " + "x" * 5_000 + " outro words " * 40],
                         ids=["one-letter", "punctuated", "long-word-among-words"])
def test_a_chunk_never_exceeds_its_token_budget_whatever_the_text(tokenizer, text):
    size = 32
    chunks = chunk_documents(one_doc(text), tokenizer, size=size, overlap=4).table
    assert len(chunks) > 1
    covered = np.zeros(len(text), bool)
    for row in chunks.itertuples():
        assert row.n_tokens <= size and len(row.text) <= size * 100  # a token spans <= 100 chars (MAX_TOKEN_CHARS)
        assert len(tokenizer(row.text, add_special_tokens=False)["input_ids"]) <= size  # as the model reads it
        assert text[row.start:row.end] == row.text
        covered[row.start:row.end] = True
    assert covered[[i for i, c in enumerate(text) if c != " "]].all()  # nothing lost
    if text.startswith("intro"):  # outside the long word, cuts stay on word boundaries
        word = range(len("intro words here "), len("intro words here ") + 5_000)
        for row in chunks.itertuples():
            assert row.start in word or row.start == 0 or text[row.start - 1] == " "


def test_windows_cut_a_long_word_and_keep_the_overlap():
    starts = np.array([True] + [False] * 99 + [True, False, True])
    spans = windows(starts, size=10, overlap=3)
    assert spans[0] == (0, 10) and spans[-1][1] == 103
    for (s, e), (s2, e2) in zip(spans, spans[1:]):
        assert e - s <= 10 and s < s2 <= e and e - s2 <= 3
    assert (100, 103) in spans or any(s <= 100 and e == 103 for s, e in spans)


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


def test_csv_with_a_field_of_megabytes_is_read(tmp_path):
    field = "word " * 2_000_000  # 10 MB, within the upload limit
    (tmp_path / "big.csv").write_text(f'id,text\n1,"{field}"\n2,short\n')
    docs = load_corpus([tmp_path / "big.csv"], id_column="id").documents
    assert docs["doc_id"].tolist() == ["1", "2"] and len(docs.loc[0, "text"]) == len(field)
    query = "why " * 100_000 + "?"
    (tmp_path / "labels.csv").write_text(f'query,relevant_doc_id\n"{query}",d1\n')
    assert read_qrels_csv(tmp_path / "labels.csv") == ({"q1": query}, {"q1": {"d1": 1}})


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


def test_corpus_shows_hidden_characters_in_names_but_keeps_ids_for_matching(tmp_path, sample_corpus):
    spoof = tmp_path / "invoice\u202eexe.txt"
    spoof.write_text("Pay now.")
    (tmp_path / "empty\u202etxt.md").write_bytes(b"")
    (tmp_path / "dup.jsonl").write_text('{"_id": "x\u202ey", "text": "a"}\n{"_id": "x\u202ey", "text": "b"}\n')
    corpus = load_corpus([spoof, tmp_path / "empty\u202etxt.md", tmp_path / "dup.jsonl"], on_error="skip")
    assert corpus.documents["doc_id"].tolist() == ["invoice\u202eexe.txt", "x\u202ey"]  # as in the files
    assert corpus.sources == ["dup.jsonl", "invoice\\u202eexe.txt"]
    assert corpus.problems == ["empty\\u202etxt.md: the file is empty (0 bytes)",
                               "dup.jsonl: duplicate document id 'x\\u202ey'"]
    with pytest.raises(CorpusError) as info:
        load_corpus([tmp_path / "empty\u202etxt.md"])
    assert "\u202e" not in str(info.value) and "empty\\u202etxt.md" in str(info.value)
    folder = write_dataset(tmp_path / "ds", sample_corpus)  # judgments still match such ids exactly
    with open(folder / "corpus.jsonl", "a") as f:
        f.write(json.dumps({"_id": "doc\u202e1", "text": "spoofed"}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\tdoc\u202e1\t1\n1\tghost\u202e2\t1\n")
    with pytest.raises(QrelsError) as info:
        load_beir(folder)
    assert "'ghost\\u202e2'" in str(info.value) and "\u202e" not in str(info.value)
    assert load_beir(folder, missing="drop").judgments.qrels == {"1": {"doc\u202e1": 1}}


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
