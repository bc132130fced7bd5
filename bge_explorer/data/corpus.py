"""Reading corpus files into a table of documents.

Formats: ``.txt`` and ``.md`` (one document per file), ``.csv``/``.tsv`` (one per row; the user
names the text column, optional id and title columns), ``.jsonl``/``.json`` (BEIR records with
``_id``, ``title``, ``text``), ``.pdf`` (text layer; page start offsets kept).

The result is a :class:`Corpus` whose ``documents`` DataFrame has the columns
``doc_id, title, text, source, page_starts``; a CSV's other columns and JSON records' other scalar fields are
kept apart in ``Corpus.metadata`` (the map colours by them). With ``on_error="raise"`` the first problem
raises :class:`~bge_explorer.errors.CorpusError` naming the file and line; with ``"skip"`` bad files and
bad lines are left out and listed in ``Corpus.problems``, and the rest loads.

The text read is bounded (:class:`TextBudget`): past what the chunk limit can hold, LimitError, before a
file too big is read or parsed. ``doc_id`` and ``title`` are kept as in the file (ids must match the
judgments); ``source``, ``problems`` and ``notes`` are for display, hidden characters escaped
(:func:`~bge_explorer.data.safe_text.visible`) and echoed values cut short.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from pathlib import Path
from typing import Iterator, Literal, Sequence

import pandas as pd

from bge_explorer import settings
from bge_explorer.data.safe_text import short, visible
from bge_explorer.errors import CorpusError, LimitError

OnError = Literal["raise", "skip"]
FORMATS = (".txt", ".md", ".csv", ".tsv", ".jsonl", ".json", ".pdf")
PREFERRED = ["cp1252", "latin_1", "iso8859_15", "cp1250", "cp1251"]
WESTERN = ["cp1252", "latin_1", "iso8859_15"]
LATIN_LOOKALIKES = {"cp1257", "cp1250", "iso8859_2", "iso8859_4", "iso8859_10", "iso8859_13", "iso8859_16", "cp775",
                    "mac_latin2"}
COLUMNS = ["doc_id", "title", "text", "source", "page_starts"]
CHARS_PER_CHUNK = 2_048  # generous: a 256-token chunk of English is about 1,200 characters
MAX_BYTES_PER_CHAR = 4  # UTF-8's longest; UTF-16 and the legacy encodings take fewer
SHOWN_COLUMNS = 20  # column names listed in a message
MAX_METADATA_COLUMNS = 16  # metadata columns kept (the first seen), for colouring the map
METADATA_CHARS = 80  # a metadata value is kept to this many characters (hidden ones made visible)


@dataclasses.dataclass
class Corpus:
    """Documents loaded from files, with the problems met on the way (``on_error="skip"``)."""

    documents: pd.DataFrame
    problems: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    metadata: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    """(n documents, m columns) strings or None, rows in ``documents``' order: a CSV's other columns, JSON records'
    other scalar fields (at most MAX_METADATA_COLUMNS, values cut to METADATA_CHARS); no columns when none."""

    @property
    def sources(self) -> list[str]:
        return sorted(set(self.documents["source"]))


class TextBudget:
    """The characters of text a corpus may still hold: ``max_chunks`` (default: the settings' chunk limit) x
    CHARS_PER_CHUNK at first, spent file by file. Past it, LimitError naming the chunk limit; a file whose size
    alone is past it is refused before it is read, so memory stays within a few times the budget."""

    def __init__(self, max_chunks: int | None = None):
        self.max_chunks = settings.current().limits.max_chunks if max_chunks is None else max_chunks
        self.left = self.max_chunks * CHARS_PER_CHUNK

    def read(self, path: str | Path, name: str) -> bytes:
        """The file's bytes; LimitError when it has too many bytes to fit (OSError when unreadable)."""
        if os.path.getsize(path) > MAX_BYTES_PER_CHAR * self.left + 4:  # + 4: a byte order mark
            raise self.error(name)
        return Path(path).read_bytes()

    def spend(self, text: str, name: str) -> str:
        """``text``, counted against the budget; LimitError when it does not fit."""
        if len(text) > self.left:
            raise self.error(name)
        self.left -= len(text)
        return text

    def error(self, name: str) -> LimitError:
        return LimitError(f"{short(name)}: the text is over {self.max_chunks * CHARS_PER_CHUNK:,} characters, more "
                          f"than {self.max_chunks:,} chunks can hold (the chunk limit, BGE_EXPLORER_MAX_CHUNKS, at "
                          f"{CHARS_PER_CHUNK:,} characters a chunk); load fewer or smaller files")


def allow_long_csv_fields() -> None:
    """Let a CSV field be as long as an upload may be (the csv module's default, 128 KiB, would call a file
    with a longer field malformed). Process-wide; never lowered."""
    limit = min(int(settings.current().limits.max_upload_mb * 2**20), 2**31 - 1)
    csv.field_size_limit(max(csv.field_size_limit(), limit))


def decode(data: bytes, name: str, notes: list[str] | None = None) -> str:
    """Bytes of a text file -> str. UTF-8 (BOM allowed) first, then a detected encoding, named in ``notes``.

    Raises CorpusError for an empty file, a binary file or an undetectable encoding.
    """
    if not data:
        raise CorpusError(name, "the file is empty (0 bytes)")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise CorpusError(name, f"not valid UTF-16 (the file starts with a UTF-16 byte order mark): "
                                    f"{exc.reason} at byte {exc.start:,}") from None
    if b"\x00" in data[:8192]:
        raise CorpusError(name, "this looks like a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data))
    least_chaos = min((m.chaos for m in matches), default=0.0)
    tied = [m for m in matches if m.chaos <= least_chaos + 0.01]
    # Equally plausible single-byte guesses: prefer the Western ones, by far the most common.
    best = min(tied, key=lambda m: (-m.coherence, PREFERRED.index(m.encoding) if m.encoding in PREFERRED else 99),
               default=None)
    if best is not None and best.encoding in LATIN_LOOKALIKES:
        # Central European / Baltic code pages read Western text with almost no "chaos" but turn è into č and à
        # into ą: a Western code page nearly as plausible wins.
        western = [m for m in matches if m.encoding in WESTERN and m.chaos <= best.chaos + 0.15]
        if western:
            best = min(western, key=lambda m: WESTERN.index(m.encoding))
    if best is None or best.encoding in ("utf_8", "utf-8"):
        line = data[:first_bad].count(b"\n") + 1
        raise CorpusError(name, "not valid UTF-8 and its encoding could not be detected", line)
    if notes is not None:
        notes.append(f"{name}: not UTF-8; decoded as {best.encoding}")
    return str(best)


def _record(doc_id: str, text: str, source: str, title: str = "", page_starts: list[int] | None = None,
            metadata: dict[str, object] | None = None) -> dict:
    """One document; ``source``, the file's name, is for display (hidden characters made visible);
    ``metadata``: its other columns or fields, values cut short for display."""
    kept = {short(k, 40): short(v, METADATA_CHARS) for k, v in (metadata or {}).items()
            if isinstance(v, (str, int, float, bool)) and str(v).strip()}
    return dict(doc_id=str(doc_id), title=str(title or ""), text=str(text), source=visible(source),
                page_starts=page_starts, metadata=kept)


def _read_plain(text: str, name: str) -> Iterator[dict]:
    if not text.strip():
        raise CorpusError(name, "the file holds only whitespace: no text to index")
    yield _record(name, text, name)


def _columns(header: list[str]) -> str:
    shown = ", ".join(short(h) for h in header[:SHOWN_COLUMNS])
    return shown + (f" and {len(header) - SHOWN_COLUMNS} more" if len(header) > SHOWN_COLUMNS else "")


def _read_delimited(text: str, name: str, problems: list[str] | None, text_column: str | None,
                    id_column: str | None, title_column: str | None) -> Iterator[dict]:
    sep = "\t" if name.lower().endswith(".tsv") else ","
    allow_long_csv_fields()
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise CorpusError(name, "the file has no header row") from None
    except csv.Error as exc:
        raise CorpusError(name, f"malformed CSV: {exc}", reader.line_num) from None
    text_column = text_column or ("text" if "text" in header else None)
    if text_column is None:
        raise CorpusError(name, f"choose the text column; the columns are: {_columns(header)}")
    for wanted in (text_column, id_column, title_column):
        if wanted and wanted not in header:
            raise CorpusError(name, f"no column '{short(wanted)}'; the columns are: {_columns(header)}")
    position = {column: i for i, column in enumerate(header)}
    used = {text_column, id_column, title_column}
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                _problem(problems, CorpusError(name, f"{len(row)} fields where the header has {len(header)}",
                                               reader.line_num))
                continue
            yield _record(row[position[id_column]] if id_column else f"{name}#{reader.line_num}",
                          row[position[text_column]], name, row[position[title_column]] if title_column else "",
                          metadata={c: row[i] for c, i in position.items() if c not in used})
    except csv.Error as exc:
        raise CorpusError(name, f"malformed CSV: {exc}", reader.line_num) from None


def _json_record(obj, name: str, line: int | None, text_column: str | None, id_column: str | None,
                 title_column: str | None, fallback_id: str) -> dict:
    if not isinstance(obj, dict):
        raise CorpusError(name, f"expected an object with a text field, got {type(obj).__name__}", line)
    text_key = text_column or "text"
    if text_key not in obj:
        raise CorpusError(name, f"no '{short(text_key)}' field in this record", line)
    id_key = id_column or next((k for k in ("_id", "id", "doc_id") if k in obj), None)
    title_key = title_column or "title"
    return _record(obj[id_key] if id_key else fallback_id, obj[text_key] or "", name, obj.get(title_key) or "",
                   metadata={k: v for k, v in obj.items() if k not in (text_key, id_key, title_key, "metadata")}
                   | (obj["metadata"] if isinstance(obj.get("metadata"), dict) else {}))


def _read_jsonl(text: str, name: str, problems: list[str] | None, text_column: str | None,
                id_column: str | None, title_column: str | None) -> Iterator[dict]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            _problem(problems, CorpusError(name, f"not valid JSON ({str(exc)[:80]})", number))
            continue
        try:
            yield _json_record(obj, name, number, text_column, id_column, title_column, f"{name}#{number}")
        except CorpusError as exc:
            _problem(problems, exc)


def _read_json(text: str, name: str, problems: list[str] | None, text_column: str | None,
               id_column: str | None, title_column: str | None) -> Iterator[dict]:
    try:
        obj = json.loads(text)
    except RecursionError:
        raise CorpusError(name, "JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise CorpusError(name, f"not valid JSON: {exc.msg}", exc.lineno) from None
    if isinstance(obj, dict):  # {"id": {"title": ..., "text": ...}} or {"id": "text"}
        items = [(str(key), value if isinstance(value, dict) else {"text": value}) for key, value in obj.items()]
    elif isinstance(obj, list):
        items = [(f"{name}#{i + 1}", value) for i, value in enumerate(obj)]
    else:
        raise CorpusError(name, "expected a JSON array of records or an object of id -> record")
    for fallback_id, value in items:
        try:
            record = _json_record(value, name, None, text_column, id_column, title_column, fallback_id)
        except CorpusError as exc:
            _problem(problems, CorpusError(name, f"record '{short(fallback_id)}': {exc.reason}"))
            continue
        if isinstance(obj, dict):
            record["doc_id"] = fallback_id
        yield record


def _read_pdf(data: bytes, name: str, budget: TextBudget) -> Iterator[dict]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if not data:
        raise CorpusError(name, "the file is empty (0 bytes)")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise CorpusError(name, "the PDF is encrypted; give a copy without a password")
        pages = [budget.spend(page.extract_text() or "", name) for page in reader.pages]
    except CorpusError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        raise CorpusError(name, f"not a readable PDF ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not any(page.strip() for page in pages):
        raise CorpusError(name, "the PDF has no text layer (a scanned document?); run OCR on it first")
    starts, offset = [], 0
    for page in pages:
        starts.append(offset)
        offset += len(page) + 2
    yield _record(name, "\n\n".join(pages), name, page_starts=starts)


def _problem(problems: list[str] | None, error: CorpusError) -> None:
    """Raise the error, or (skip mode) record it and go on; hidden characters in it made visible."""
    error = CorpusError(visible(error.file), visible(error.reason), error.line)
    if problems is None:
        raise error
    problems.append(str(error))


def read_file(path: str | Path, *, name: str | None = None, text_column: str | None = None,
              id_column: str | None = None, title_column: str | None = None,
              problems: list[str] | None = None, notes: list[str] | None = None,
              budget: TextBudget | None = None) -> list[dict]:
    """Records (dicts with the COLUMNS keys and ``metadata``) from one file. ``problems`` given: bad lines go there.
    ``budget`` (default: a fresh one) bounds the text read; past it, LimitError."""
    name = name or os.path.basename(str(path))
    suffix = Path(name).suffix.lower()
    if suffix not in FORMATS:
        raise CorpusError(name, f"unsupported file type '{short(suffix or name)}'; use one of {', '.join(FORMATS)}")
    budget = budget or TextBudget()
    try:
        data = budget.read(path, name)
    except OSError as exc:
        raise CorpusError(name, f"cannot read the file ({exc.strerror})") from None
    columns = dict(text_column=text_column, id_column=id_column, title_column=title_column)
    if suffix == ".pdf":
        records = _read_pdf(data, name, budget)
    else:
        text = budget.spend(decode(data, name, notes), name)
        if suffix in (".txt", ".md"):
            records = _read_plain(text, name)
        elif suffix in (".csv", ".tsv"):
            records = _read_delimited(text, name, problems, **columns)
        elif suffix == ".jsonl":
            records = _read_jsonl(text, name, problems, **columns)
        else:
            records = _read_json(text, name, problems, **columns)
    out = list(records)
    if not out:
        raise CorpusError(name, "no documents found in the file")
    return out


def load_corpus(paths: Sequence[str | Path], *, names: Sequence[str] | None = None, text_column: str | None = None,
                id_column: str | None = None, title_column: str | None = None,
                on_error: OnError = "raise", max_chunks: int | None = None) -> Corpus:
    """Read files into one :class:`Corpus`. ``names`` are display names (default: the base names).

    Document ids must be unique across the corpus. Raises CorpusError on the first problem
    (``on_error="raise"``), or when nothing at all could be loaded; LimitError, whatever ``on_error``, once
    the text is past what ``max_chunks`` chunks can hold (default: the settings' limit; see :class:`TextBudget`).
    """
    if not paths:
        raise CorpusError("corpus", "no files given")
    names = list(names) if names is not None else [os.path.basename(str(p)) for p in paths]
    problems: list[str] | None = [] if on_error == "skip" else None
    notes: list[str] = []
    records: list[dict] = []
    seen: set[str] = set()
    budget = TextBudget(max_chunks)
    for path, name in zip(paths, names):
        try:
            file_records = read_file(path, name=name, text_column=text_column, id_column=id_column,
                                     title_column=title_column, problems=problems, notes=notes, budget=budget)
        except CorpusError as exc:
            _problem(problems, exc)
            continue
        for record in file_records:
            if record["doc_id"] in seen:
                _problem(problems, CorpusError(name, f"duplicate document id '{short(record['doc_id'])}'"))
                continue
            seen.add(record["doc_id"])
            records.append(record)
    if not records:
        raise CorpusError(visible(", ".join(names)), "no documents could be loaded" +
                          (": " + "; ".join(problems[:3]) if problems else ""))
    return Corpus(pd.DataFrame.from_records(records, columns=COLUMNS), problems or [], [visible(n) for n in notes],
                  metadata_table([r["metadata"] for r in records]))


def metadata_table(rows: Sequence[dict[str, str]]) -> pd.DataFrame:
    """The documents' metadata (one dict per document) -> (n, m) table of the first MAX_METADATA_COLUMNS
    columns seen, None where a document has no value."""
    names = list(dict.fromkeys(k for row in rows for k in row))[:MAX_METADATA_COLUMNS]
    return pd.DataFrame({c: [row.get(c) for row in rows] for c in names}, index=pd.RangeIndex(len(rows)),
                        dtype=object)
