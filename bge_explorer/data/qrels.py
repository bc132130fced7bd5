"""Labelled queries: reading queries and relevance judgments (qrels) for evaluation.

Formats:

- BEIR: ``queries.jsonl`` (``_id``, ``text``) and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``,
  ``score``; a header row; any line endings);
- a BEIR folder or a ``.zip`` of one (``corpus.jsonl``, ``queries.jsonl``, ``qrels/``), possibly inside
  one top-level folder; a zip is checked (no absolute or ``..`` paths, no links, a member count and an
  uncompressed size cap) and extracted into a temporary directory that is removed after reading. A split
  is the name of one of the folder's own ``qrels/*.tsv``, and every file read must lie inside the folder
  (symbolic links resolved), so a dataset can only show its own content;
- a CSV of ``query,relevant_doc_id[,score]`` (query text, not an id; an optional header row).

Judgments refer to document ids. A score of 1 or more means relevant (trec_eval's default level);
the score is the graded gain in nDCG; 0 and negative scores are judged non-relevant.

Problems raise :class:`QrelsError` naming the file and line: a non-numeric score, a duplicate query
id or (query, document) pair, a missing column. Values echoed in messages are cut short, their hidden
characters escaped (:func:`~bge_explorer.data.safe_text.short`); files are read within the corpus text
budget (:class:`~bge_explorer.data.corpus.TextBudget`). Queries without judgments are skipped and counted
in ``Judgments.notes``; judgments whose documents are not in the corpus are reported (count and a
few ids) by :meth:`Judgments.check_corpus`.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Literal

from bge_explorer import settings
from bge_explorer.data.corpus import Corpus, TextBudget, allow_long_csv_fields, decode, load_corpus
from bge_explorer.data.safe_text import short, visible
from bge_explorer.errors import CorpusError, LimitError, QrelsError

MAX_ZIP_MEMBERS = 10_000
SHOWN = 5  # ids shown in a message listing problems
SPLIT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")  # a split's name: qrels/<split>.tsv, no path, no leading dot
Missing = Literal["raise", "drop"]


def _few(ids: Iterable[str], total: int) -> str:
    shown = [f"'{short(i)}'" for i in list(ids)[:SHOWN]]
    return ", ".join(shown) + (f" and {total - len(shown)} more" if total > len(shown) else "")


@dataclasses.dataclass
class Judgments:
    """Judged queries and their qrels.

    ``queries``: query id -> text, only queries with at least one relevant judgment, in file order.
    ``qrels``: query id -> {document id: score}, the same keys. ``notes``: what was skipped, and why.
    """

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    source: str = ""
    notes: list[str] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.queries)

    @property
    def doc_ids(self) -> set[str]:
        return {d for judged in self.qrels.values() for d in judged}

    def check_corpus(self, doc_ids: Iterable[str], missing: Missing = "raise") -> "Judgments":
        """Judgments whose documents are all in the corpus.

        ``missing="raise"``: raise QrelsError counting the unknown document ids and showing a few;
        ``"drop"``: leave those judgments out (queries left with no relevant document are skipped),
        and say so in ``notes``.
        """
        known = set(doc_ids)
        unknown = sorted(self.doc_ids - known)
        if not unknown:
            return self
        pairs = sum(1 for judged in self.qrels.values() for d in judged if d not in known)
        message = (f"{len(unknown)} document id(s) in the judgments are not in the corpus "
                   f"({pairs} judgment(s)): {_few(unknown, len(unknown))}")
        if missing == "raise":
            raise QrelsError(self.source or "qrels", message + ". Check that the judgments belong to this corpus "
                             "(ids are compared as exact strings), or drop those judgments.")
        qrels = {q: {d: s for d, s in judged.items() if d in known} for q, judged in self.qrels.items()}
        kept = {q: judged for q, judged in qrels.items() if any(s >= 1 for s in judged.values())}
        notes = self.notes + [f"{message}; those judgments were dropped"]
        if len(kept) < len(qrels):
            notes.append(f"{len(qrels) - len(kept)} quer(y/ies) left without a relevant document in the corpus "
                         "were skipped")
        if not kept:
            raise QrelsError(self.source or "qrels", "no judged query has a relevant document in the corpus")
        return Judgments({q: self.queries[q] for q in kept}, kept, self.source, notes)


@dataclasses.dataclass
class Benchmark:
    """A BEIR dataset: the corpus and the judged queries of one split."""

    corpus: Corpus
    judgments: Judgments
    name: str = ""
    split: str = "test"


# ---------------------------------------------------------------------------------------------------------
# Reading files


def _text(path: str | Path, name: str) -> str:
    """The decoded file, within the corpus text budget (LimitError past it)."""
    budget = TextBudget()
    try:
        data = budget.read(path, name)
    except OSError as exc:
        raise QrelsError(name, f"cannot read the file ({exc.strerror})") from None
    try:
        return budget.spend(decode(data, name), name)
    except CorpusError as exc:
        raise QrelsError(name, exc.reason, exc.line) from None


def _score(cell: str, name: str, line: int) -> int:
    """A judgment score: an integer ("2", "1.0"); anything else raises QrelsError."""
    try:
        value = float(cell.strip())
    except ValueError:
        raise QrelsError(name, f"the score '{short(cell.strip())}' is not a number", line) from None
    if not math.isfinite(value) or value != int(value):
        raise QrelsError(name, f"the score '{short(cell.strip())}' is not a whole number (relevance grades are "
                               "integers: 0 not relevant, 1 relevant, 2 highly relevant...)", line)
    return int(value)


HEADER_QID = {"query-id", "query_id", "qid", "query", "queryid", "query id"}
HEADER_SCORE = {"score", "relevance", "rel", "label", "grade"}
HEADER_QUERY = {"query", "question", "query_text", "query-text", "text"}


def read_queries(path: str | Path, name: str | None = None) -> dict[str, str]:
    """BEIR ``queries.jsonl`` (one ``{"_id": ..., "text": ...}`` per line) -> {query id: text}.

    Raises QrelsError for bad JSON, a missing field or a duplicate id (naming the line).
    """
    name = visible(name or os.path.basename(str(path)))
    queries: dict[str, str] = {}
    for number, line in enumerate(_text(path, name).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise QrelsError(name, f"not valid JSON ({str(exc)[:80]})", number) from None
        if not isinstance(obj, dict):
            raise QrelsError(name, f"expected an object with '_id' and 'text', got {type(obj).__name__}", number)
        qid = next((obj[k] for k in ("_id", "id", "query-id", "query_id") if k in obj), None)
        if qid is None or "text" not in obj:
            raise QrelsError(name, "each line needs '_id' and 'text' fields", number)
        qid = str(qid)
        if qid in queries:
            raise QrelsError(name, f"duplicate query id '{short(qid)}'", number)
        queries[qid] = str(obj["text"] or "")
    if not queries:
        raise QrelsError(name, "no queries found in the file")
    return queries


MAX_QUERY_SET = 5_000  # queries in one query set (a file or a pasted list)


def parse_query_set(text: str, name: str = "queries") -> list[str]:
    """One query per non-empty line (pasted or a .txt file), stripped, first occurrence of each kept.
    QrelsError when there is none or more than MAX_QUERY_SET."""
    queries = list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
    return _bounded(queries, name)


def _bounded(queries: list[str], name: str) -> list[str]:
    if not queries:
        raise QrelsError(name, "no queries found")
    if len(queries) > MAX_QUERY_SET:
        raise QrelsError(name, f"{len(queries):,} queries, over the limit of {MAX_QUERY_SET:,} per query set")
    return queries


def read_query_set(path: str | Path, name: str | None = None) -> list[str]:
    """A query set from a file: BEIR ``queries.jsonl`` (the texts), a CSV/TSV (the column named query,
    question or text, else the first), or plain text with one query per line."""
    name = visible(name or os.path.basename(str(path)))
    suffix = Path(name).suffix.lower()
    if suffix == ".jsonl":
        return _bounded(list(dict.fromkeys(t.strip() for t in read_queries(path, name).values() if t.strip())), name)
    if suffix in (".csv", ".tsv"):
        try:
            rows = list(_rows(_text(path, name), "\t" if suffix == ".tsv" else ","))
        except ValueError as exc:
            raise QrelsError(name, str(exc)) from None
        if not rows:
            raise QrelsError(name, "the file is empty")
        header = [c.strip().lower() for c in rows[0][1]]
        column = next((i for i, c in enumerate(header) if c in HEADER_QUERY), None)
        body = rows[1:] if column is not None else rows
        column = column or 0
        return _bounded(list(dict.fromkeys(r[column].strip() for _, r in body if len(r) > column and r[column].strip())),
                        name)
    return parse_query_set(_text(path, name), name)


def _rows(text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    allow_long_csv_fields()
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                yield reader.line_num, [cell.strip() for cell in row]
    except csv.Error as exc:
        raise ValueError(f"malformed line {reader.line_num}: {exc}") from None


def read_qrels_tsv(path: str | Path, name: str | None = None) -> dict[str, dict[str, int]]:
    """BEIR ``qrels/*.tsv`` (``query-id  corpus-id  score`` with a header row) -> {query id: {doc id: score}}.

    A header is recognised by its names (``query-id``, ``score``...) on the first line. Raises QrelsError for a
    line without three columns, a non-numeric score or a judgment given twice.
    """
    name = visible(name or os.path.basename(str(path)))
    qrels: dict[str, dict[str, int]] = {}
    text = _text(path, name)
    delimiter = "\t" if "\t" in text.split("\n", 1)[0] else ("," if name.lower().endswith(".csv") else "\t")
    try:
        rows = list(_rows(text, delimiter))
    except ValueError as exc:
        raise QrelsError(name, str(exc)) from None
    if not rows:
        raise QrelsError(name, "no judgments found in the file")
    for i, (number, row) in enumerate(rows):
        if len(row) != 3:
            raise QrelsError(name, f"expected 3 tab-separated columns (query-id, corpus-id, score), found {len(row)}",
                             number)
        if i == 0 and (row[0].lower() in HEADER_QID or row[2].lower() in HEADER_SCORE):
            continue  # the header row
        qid, doc_id, score = row[0], row[1], _score(row[2], name, number)
        judged = qrels.setdefault(qid, {})
        if doc_id in judged:
            raise QrelsError(name, f"duplicate judgment for query '{short(qid)}' and document '{short(doc_id)}'",
                             number)
        judged[doc_id] = score
    if not qrels:
        raise QrelsError(name, "no judgments found in the file (only a header row)")
    return qrels


def read_qrels_csv(path: str | Path, name: str | None = None) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """CSV of ``query,relevant_doc_id[,score]`` (query *text*; score 1 when absent; optional header row)
    -> ({query id: text}, qrels). Rows with the same query text belong to one query, ids ``q1, q2, ...``
    in order of first appearance."""
    name = visible(name or os.path.basename(str(path)))
    text = _text(path, name)
    delimiter = "\t" if name.lower().endswith(".tsv") else ","
    try:
        rows = list(_rows(text, delimiter))
    except ValueError as exc:
        raise QrelsError(name, str(exc)) from None
    if rows and rows[0][1][0].lower() in HEADER_QUERY:
        rows = rows[1:]
    if not rows:
        raise QrelsError(name, "no judgments found in the file")
    ids: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for number, row in rows:
        if len(row) not in (2, 3):
            raise QrelsError(name, f"expected 2 or 3 columns (query, relevant_doc_id[, score]), found {len(row)}",
                             number)
        query, doc_id = row[0], row[1]
        if not query or not doc_id:
            raise QrelsError(name, "empty query or document id", number)
        score = _score(row[2], name, number) if len(row) == 3 and row[2] != "" else 1
        qid = ids.setdefault(query, f"q{len(ids) + 1}")
        judged = qrels.setdefault(qid, {})
        if doc_id in judged:
            raise QrelsError(name, f"duplicate judgment for query '{short(query)}' and document '{short(doc_id)}'",
                             number)
        judged[doc_id] = score
    return {qid: query for query, qid in ids.items()}, qrels


def combine(queries: dict[str, str], qrels: dict[str, dict[str, int]], source: str = "") -> Judgments:
    """Queries + qrels -> :class:`Judgments` of the queries having a relevant (score >= 1) document.

    Queries without judgments, or with only non-relevant ones, are skipped and counted in ``notes``.
    Judgments for query ids that are not among the queries raise QrelsError (count and a few ids).
    """
    source = visible(source)
    unknown = [q for q in qrels if q not in queries]
    if unknown:
        raise QrelsError(source or "qrels", f"{len(unknown)} query id(s) in the judgments are not in the queries "
                                            f"file: {_few(unknown, len(unknown))}")
    notes = []
    unjudged = [q for q in queries if q not in qrels]
    if unjudged:
        notes.append(f"{len(unjudged)} of {len(queries)} queries have no judgments and were skipped "
                     f"(e.g. {_few(unjudged, len(unjudged))})")
    no_relevant = [q for q in queries if q in qrels and not any(s >= 1 for s in qrels[q].values())]
    if no_relevant:
        notes.append(f"{len(no_relevant)} queries have no relevant document (every score below 1) and were "
                     f"skipped (e.g. {_few(no_relevant, len(no_relevant))})")
    keep = [q for q in queries if q in qrels and q not in set(no_relevant)]
    if not keep:
        raise QrelsError(source or "qrels", "no query has a relevant judgment (score 1 or more)")
    return Judgments({q: queries[q] for q in keep}, {q: qrels[q] for q in keep}, source, notes)


def load_judgments(qrels_path: str | Path, queries_path: str | Path | None = None, *,
                   names: tuple[str | None, str | None] = (None, None)) -> Judgments:
    """Judgments from a BEIR qrels TSV plus ``queries.jsonl``, or from a ``query,relevant_doc_id[,score]``
    CSV alone (``queries_path`` None). ``names``: display names of (qrels, queries)."""
    qrels_name = visible(names[0] or os.path.basename(str(qrels_path)))
    if queries_path is None:
        if not qrels_name.lower().endswith((".csv", ".tsv")):
            raise QrelsError(qrels_name, "give a CSV of query,relevant_doc_id[,score], or a qrels TSV together with "
                                         "queries.jsonl")
        if qrels_name.lower().endswith(".tsv") and _looks_like_beir_qrels(qrels_path, qrels_name):
            raise QrelsError(qrels_name, "this is a BEIR qrels file (query ids, not query text): give queries.jsonl "
                                         "with it")
        queries, qrels = read_qrels_csv(qrels_path, qrels_name)
    else:
        queries = read_queries(queries_path, names[1])
        qrels = read_qrels_tsv(qrels_path, qrels_name)
    return combine(queries, qrels, qrels_name)


def _looks_like_beir_qrels(path: str | Path, name: str) -> bool:
    first = _text(path, name).split("\n", 1)[0].lower()
    return "query-id" in first or "corpus-id" in first


# ---------------------------------------------------------------------------------------------------------
# BEIR folders and zips


def splits(folder: str | Path) -> list[str]:
    """The qrels splits a BEIR folder holds (``qrels/test.tsv`` -> ``test``; names matching SPLIT only)."""
    qrels_dir = Path(folder) / "qrels"
    return sorted(p.stem for p in qrels_dir.glob("*.tsv") if SPLIT.fullmatch(p.stem)) if qrels_dir.is_dir() else []


def _inside(folder: Path, path: Path, name: str) -> Path:
    """``path``, refused (QrelsError) when, symbolic links resolved, it lies outside ``folder``."""
    if not path.resolve().is_relative_to(folder.resolve()):
        raise QrelsError(name, f"{path.relative_to(folder).as_posix()} leads outside the dataset folder "
                               "(a symbolic link?); only the dataset's own files are read")
    return path


def _qrels_path(folder: Path, root: Path, split: str, name: str) -> Path:
    """``root/qrels/<split>.tsv`` for a split among :func:`splits`; QrelsError (naming the splits there) or
    LimitError (a split longer than max_field_chars) otherwise."""
    settings.current().limits.check_field(split, "the split")
    available = splits(root)
    there = f"; the splits here are: {', '.join(map(short, available))}" if available else "; there is no qrels folder"
    if not SPLIT.fullmatch(split):
        raise QrelsError(name, f"'{short(split)}' is not a split name (letters, digits, '_', '-' and '.', not "
                               f"starting with '.'){there}")
    if split not in available:
        raise QrelsError(name, f"no qrels/{short(split)}.tsv{there}")
    return _inside(folder, root / "qrels" / f"{split}.tsv", name)


def _beir_root(folder: Path) -> Path:
    """The folder holding ``queries.jsonl``: the folder itself or its single subfolder (zips often nest)."""
    if (folder / "queries.jsonl").is_file():
        return folder
    found = [p.parent for p in folder.rglob("queries.jsonl") if "__MACOSX" not in p.parts]
    if len(found) == 1:
        return found[0]
    if not found:
        raise QrelsError(folder.name, "not a BEIR dataset: no queries.jsonl (expected corpus.jsonl, queries.jsonl "
                                      "and qrels/<split>.tsv)")
    raise QrelsError(folder.name, f"{len(found)} queries.jsonl files found; give one dataset at a time")


def load_beir_folder(folder: str | Path, split: str = "test", *, need_corpus: bool = True,
                     name: str | None = None, missing: Missing = "raise") -> Benchmark:
    """A BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) -> :class:`Benchmark`.

    Judgments are checked against the corpus: unknown document ids raise QrelsError, or are dropped
    with a note when ``missing="drop"``.
    ``need_corpus=False`` allows a folder without ``corpus.jsonl`` (the corpus is then None).
    ``split``: one of :func:`splits` (at most max_field_chars characters); every file read lies inside ``folder``.
    """
    folder = Path(folder)
    name = visible(name or folder.name)
    if not folder.is_dir():
        raise QrelsError(visible(str(folder)), "no such folder")
    root = _beir_root(folder)
    qrels_path = _qrels_path(folder, root, split, name)
    queries_path = _inside(folder, root / "queries.jsonl", name)
    judgments = load_judgments(qrels_path, queries_path, names=(f"qrels/{split}.tsv", "queries.jsonl"))
    corpus_path = root / "corpus.jsonl"
    corpus = None
    if corpus_path.is_file():
        corpus = load_corpus([_inside(folder, corpus_path, name)])
        judgments = judgments.check_corpus(corpus.documents["doc_id"], missing)
    elif need_corpus:
        raise QrelsError(name, "no corpus.jsonl in the dataset")
    return Benchmark(corpus, judgments, name, split)  # type: ignore[arg-type]


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    path = info.filename
    if "\x00" in path:
        return "a NUL character in the name"
    if path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":"):
        return "an absolute path"
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if ".." in parts:
        return "a '..' path component"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return None


def safe_extract(zip_path: str | Path, dest: str | Path, *, max_bytes: int | None = None,
                 max_members: int = MAX_ZIP_MEMBERS, name: str | None = None) -> None:
    """Extract ``zip_path`` into ``dest``, refusing unsafe archives before writing anything.

    Refused: members with absolute or ``..`` paths, links, more than ``max_members`` members, more
    than ``max_bytes`` uncompressed in total (checked against the declared sizes, then again while
    writing, so a lying header cannot get past it). Raises QrelsError or LimitError.
    """
    max_bytes = int(settings.current().limits.max_zip_mb * 2**20) if max_bytes is None else max_bytes
    name = name or os.path.basename(str(zip_path))
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise QrelsError(name, f"not a readable zip file ({exc})") from None
    with archive:
        members = archive.infolist()
        if len(members) > max_members:
            raise LimitError(f"{name}: {len(members)} files in the zip, more than the limit of {max_members}")
        for info in members:
            problem = _member_problem(info)
            if problem:
                raise QrelsError(name, f"unsafe zip member {info.filename[:120]!r}: {problem}")
        declared = sum(info.file_size for info in members)
        if declared > max_bytes:
            raise LimitError(f"{name}: {declared / 2**20:.0f} MiB uncompressed, more than the limit of "
                             f"{max_bytes / 2**20:.0f} MiB")
        dest = Path(dest).resolve()
        written = 0
        for info in members:
            target = (dest / info.filename.replace("\\", "/")).resolve()
            if dest not in target.parents and target != dest:
                raise QrelsError(name, f"unsafe zip member {info.filename[:120]!r}: outside the target folder")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(info) as src, open(target, "wb") as out:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        written += len(block)
                        if written > max_bytes:
                            raise LimitError(f"{name}: more than {max_bytes / 2**20:.0f} MiB uncompressed")
                        out.write(block)
            # zipfile raises NotImplementedError for a compression method it lacks, RuntimeError for encryption
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError) as exc:
                raise QrelsError(name, f"cannot extract {info.filename[:120]!r} ({exc})") from None


@contextlib.contextmanager
def extracted(zip_path: str | Path, **limits) -> Iterator[Path]:
    """A temporary directory holding the safely extracted zip; removed on exit."""
    tmp = tempfile.mkdtemp(prefix="bge-explorer-zip-")
    try:
        safe_extract(zip_path, tmp, **limits)
        yield Path(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_beir(path: str | Path, split: str = "test", *, need_corpus: bool = True, name: str | None = None,
              missing: Missing = "raise", **limits) -> Benchmark:
    """A BEIR dataset from a folder or a ``.zip`` of one (see :func:`load_beir_folder`, :func:`safe_extract`)."""
    path = Path(path)
    name = visible(name or path.name)
    if path.is_dir():
        return load_beir_folder(path, split, need_corpus=need_corpus, name=name, missing=missing)
    if not path.is_file():
        raise QrelsError(visible(str(path)), "no such file or folder")
    if not zipfile.is_zipfile(path):
        raise QrelsError(name, "expected a BEIR folder or a .zip of one")
    with extracted(path, name=name, **limits) as folder:
        return load_beir_folder(folder, split, need_corpus=need_corpus, name=name, missing=missing)


def read_beir_judgments(path: str | Path, split: str = "test", *, name: str | None = None, **limits
                        ) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """Every query and judgment of a BEIR folder or zip (``queries.jsonl``, ``qrels/<split>.tsv``; the corpus
    is not read), as they are: queries without a relevant document kept, grades 0 kept -> (queries, qrels)."""
    path = Path(path)
    name = visible(name or path.name)

    def read(folder: Path) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
        root = _beir_root(folder)
        return (read_queries(_inside(folder, root / "queries.jsonl", name), f"{name}/queries.jsonl"),
                read_qrels_tsv(_qrels_path(folder, root, split, name), f"{name}/qrels/{split}.tsv"))

    if path.is_dir():
        return read(path)
    if not zipfile.is_zipfile(path):
        raise QrelsError(name, "expected a BEIR folder or a .zip of one")
    with extracted(path, name=name, **limits) as folder:
        return read(folder)
