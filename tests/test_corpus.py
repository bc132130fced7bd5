"""Reading every corpus format, and clear errors (file and line) for broken files."""
from __future__ import annotations

import json

import pytest
from pypdf import PdfReader, PdfWriter

from bge_explorer.data.corpus import MAX_METADATA_COLUMNS, METADATA_CHARS, load_corpus
from bge_explorer.errors import CorpusError
from pdf_maker import write_pdf


def test_txt_and_md_are_one_document_each(tmp_path):
    (tmp_path / "a.txt").write_text("Plain text about rivers.\nSecond line.")
    (tmp_path / "b.md").write_text("# Heading\n\nMarkdown about mountains.")
    docs = load_corpus([tmp_path / "a.txt", tmp_path / "b.md"]).documents
    assert docs["doc_id"].tolist() == ["a.txt", "b.md"]
    assert docs.loc[0, "text"] == "Plain text about rivers.\nSecond line."
    assert docs["source"].tolist() == ["a.txt", "b.md"]


def test_csv_with_chosen_columns(tmp_path):
    path = tmp_path / "faq.csv"
    path.write_text('id,question,answer\nq1,"How, exactly?","Like this, with a comma"\nq2,Why,Because\n')
    docs = load_corpus([path], text_column="answer", id_column="id", title_column="question").documents
    assert docs[["doc_id", "title", "text"]].values.tolist() == [
        ["q1", "How, exactly?", "Like this, with a comma"], ["q2", "Why", "Because"]]


def test_other_csv_columns_and_json_fields_are_kept_as_metadata(tmp_path):
    path = tmp_path / "faq.csv"
    path.write_text('id,text,team,year\nq1,first,"Ops, EU",2019\nq2,second,,2021\n')
    corpus = load_corpus([path], id_column="id")
    assert corpus.metadata.to_dict("list") == {"team": ["Ops, EU", None], "year": ["2019", "2021"]}
    records = [{"_id": "a", "title": "A", "text": "x", "lang": "en", "score": 3, "tags": ["no", "lists"],
                "metadata": {"url": "http://a"}}, {"_id": "b", "text": "y", "lang": "de\u202e"}]
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))
    corpus = load_corpus([path, jsonl], id_column=None)  # rows in documents' order, across files
    assert corpus.documents["doc_id"].tolist() == ["faq.csv#2", "faq.csv#3", "a", "b"]
    assert corpus.metadata["lang"].tolist() == [None, None, "en", "de\\u202e"]  # hidden characters made visible
    assert corpus.metadata["score"].tolist() == [None, None, "3", None] and "tags" not in corpus.metadata
    assert corpus.metadata["url"].tolist()[2] == "http://a" and "id" in corpus.metadata  # the CSV's id: not chosen


def test_metadata_is_bounded_in_columns_and_characters(tmp_path):
    path = tmp_path / "wide.csv"
    header = ["text"] + [f"c{i}" for i in range(MAX_METADATA_COLUMNS + 5)]
    path.write_text(",".join(header) + "\n" + ",".join(["t"] + ["v" * 500] * (len(header) - 1)) + "\n")
    metadata = load_corpus([path]).metadata
    assert list(metadata.columns) == header[1:MAX_METADATA_COLUMNS + 1]
    assert len(metadata.iloc[0, 0]) == METADATA_CHARS + 1 and metadata.iloc[0, 0].endswith("…")


def test_tsv_defaults_to_text_column(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("text\tother\nfirst row\tx\nsecond row\ty\n")
    docs = load_corpus([path]).documents
    assert docs["text"].tolist() == ["first row", "second row"]
    assert docs["doc_id"].tolist() == ["d.tsv#2", "d.tsv#3"]  # file and line when there is no id column


def test_csv_without_the_chosen_column_names_file_and_columns(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("title,body\na,b\n")
    with pytest.raises(CorpusError, match=r"x\.csv: no column 'text'.*title, body"):
        load_corpus([path], text_column="text")
    with pytest.raises(CorpusError, match=r"x\.csv: choose the text column; the columns are: title, body"):
        load_corpus([path])


def test_ragged_csv_row_names_the_line(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("id,text\n1,fine\n2,too,many\n3,fine again\n")
    with pytest.raises(CorpusError, match=r"r\.csv, line 3: 3 fields where the header has 2"):
        load_corpus([path])
    corpus = load_corpus([path], on_error="skip")
    assert corpus.documents["text"].tolist() == ["fine", "fine again"]
    assert corpus.problems == ["r.csv, line 3: 3 fields where the header has 2"]


def test_beir_jsonl_read_as_is(tmp_path):
    path = tmp_path / "corpus.jsonl"
    rows = [{"_id": "4983", "title": "Microstructural development", "text": "Alterations of the architecture.",
             "metadata": {}}, {"_id": "5836", "title": "", "text": "Second abstract."}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    docs = load_corpus([path]).documents
    assert docs[["doc_id", "title", "text"]].values.tolist() == [
        ["4983", "Microstructural development", "Alterations of the architecture."], ["5836", "", "Second abstract."]]


def test_malformed_jsonl_line_is_named_or_skipped(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": "1", "text": "good"}\n{"_id": "2", "text": bad}\n{"_id": "3", "text": "also good"}\n')
    with pytest.raises(CorpusError, match=r"c\.jsonl, line 2: not valid JSON"):
        load_corpus([path])
    corpus = load_corpus([path], on_error="skip")
    assert corpus.documents["doc_id"].tolist() == ["1", "3"]
    assert corpus.problems[0].startswith("c.jsonl, line 2: not valid JSON")


def test_jsonl_record_without_text_field(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": "1", "body": "x"}\n')
    with pytest.raises(CorpusError, match=r"c\.jsonl, line 1: no 'text' field"):
        load_corpus([path])


def test_json_array_and_mapping(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([{"_id": "x", "title": "T", "text": "one"}, {"text": "two"}]))
    (tmp_path / "b.json").write_text(json.dumps({"k1": {"title": "K", "text": "three"}, "k2": "four"}))
    docs = load_corpus([tmp_path / "a.json", tmp_path / "b.json"]).documents
    assert docs[["doc_id", "text"]].values.tolist() == [["x", "one"], ["a.json#2", "two"], ["k1", "three"],
                                                         ["k2", "four"]]


def test_deeply_nested_json_is_a_clear_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 10_000 + "]" * 10_000)
    with pytest.raises(CorpusError, match=r"deep\.json: .*(nested too deeply|expected)"):
        load_corpus([path])


def test_pdf_keeps_pages(tmp_path):
    path = write_pdf(tmp_path / "paper.pdf", ["Introduction to rivers", "Methods for mountains"])
    doc = load_corpus([path]).documents.iloc[0]
    assert "Introduction to rivers" in doc.text and "Methods for mountains" in doc.text
    assert doc.text[doc.page_starts[1]:].startswith("Methods for mountains")


def test_encrypted_pdf_and_pdf_without_text(tmp_path):
    source = write_pdf(tmp_path / "plain.pdf", ["Secret text"])
    writer = PdfWriter(clone_from=PdfReader(source))
    writer.encrypt("a password")
    with open(tmp_path / "locked.pdf", "wb") as f:
        writer.write(f)
    with pytest.raises(CorpusError, match=r"locked\.pdf: the PDF is encrypted"):
        load_corpus([tmp_path / "locked.pdf"])
    blank = PdfWriter()
    blank.add_blank_page(612, 792)
    with open(tmp_path / "scan.pdf", "wb") as f:
        blank.write(f)
    with pytest.raises(CorpusError, match=r"scan\.pdf: the PDF has no text layer"):
        load_corpus([tmp_path / "scan.pdf"])


def test_bad_encodings(tmp_path):
    (tmp_path / "latin.txt").write_bytes("Café crème à la française, naïve façade.".encode("cp1252"))
    corpus = load_corpus([tmp_path / "latin.txt"])
    assert corpus.documents.loc[0, "text"] == "Café crème à la française, naïve façade."
    assert "not UTF-8; decoded as" in corpus.notes[0]


@pytest.mark.parametrize("name, data, message", [
    ("binary.txt", bytes(range(256)) * 4, r"binary\.txt: this looks like a binary file"),
    ("empty.txt", b"", r"empty\.txt: the file is empty"),
    ("x.docx", b"PK", r"x\.docx: unsupported file type '\.docx'"),
    ("broken.pdf", b"%PDF-1.4\nthis is not a pdf", r"broken\.pdf: not a readable PDF"),
])
def test_unreadable_files_are_named_with_the_problem(tmp_path, name, data, message):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(CorpusError, match=message):
        load_corpus([tmp_path / name])


def test_skip_mode_keeps_the_good_files(tmp_path):
    (tmp_path / "good.txt").write_text("Good text.")
    (tmp_path / "empty.txt").write_bytes(b"")
    corpus = load_corpus([tmp_path / "good.txt", tmp_path / "empty.txt"], on_error="skip")
    assert corpus.documents["doc_id"].tolist() == ["good.txt"]
    assert corpus.problems == ["empty.txt: the file is empty (0 bytes)"]


def test_duplicate_ids(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": "1", "text": "a"}\n{"_id": "1", "text": "b"}\n')
    with pytest.raises(CorpusError, match="duplicate document id '1'"):
        load_corpus([path])
