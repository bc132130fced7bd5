"""Judgments made in place: grades of (query text, document id) that a user gives while searching.

A judged document is judged for every configuration: the key is the query *text* and the document id, not
a ranking. Grades are integers on a scale (:data:`SCALES`: 0-3 graded, or 0-1 binary); relevant means grade
>= 1, as in trec_eval. The store converts to :class:`~bge_explorer.data.qrels.Judgments` for evaluation and
experiments, and round-trips without loss through

- a BEIR zip (``queries.jsonl`` with ids ``q1, q2, ...`` in order of first judgment, ``qrels/test.tsv``), and
- a CSV of ``query,doc_id,grade``.

Both are read back by the loaders of :mod:`bge_explorer.data.qrels`, so an uploaded benchmark's judgments
can be edited the same way.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import threading
import zipfile
from pathlib import Path
from typing import Sequence

from bge_explorer.data.qrels import Judgments, QrelsError, combine, read_beir_judgments, read_qrels_csv
from bge_explorer.errors import ExplorerError
from bge_explorer.pickling import ProcessLocal

SCALES = {
    "graded": ("irrelevant", "related", "relevant", "perfect"),  # 0-3, Quepid's and TREC's four grades
    "binary": ("irrelevant", "relevant"),  # 0-1
}
MAX_JUDGMENTS = 100_000  # per session
SPLIT = "test"


@dataclasses.dataclass(frozen=True)
class QueryCounts:
    """For one query and a ranking's top k: judged and unjudged ("holes") documents, and relevant ones."""

    judged: int
    holes: int
    relevant: int


class JudgmentStore(ProcessLocal):
    """``{query text: {doc id: grade}}`` in order of first judgment, for one session. Thread-safe."""

    def __init__(self, scale: str = "graded") -> None:
        self._grades: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()
        self.scale = self._checked_scale(scale)

    @staticmethod
    def _checked_scale(scale: str) -> str:
        if scale not in SCALES:
            raise ExplorerError(f"the grading scale must be one of {', '.join(SCALES)}, not {scale!r}")
        return scale

    def set_scale(self, scale: str) -> None:
        """Switch the scale; grades above the new top (binary after graded) count as its top grade."""
        self.scale = self._checked_scale(scale)
        top = self.top_grade
        with self._lock:
            for judged in self._grades.values():
                for doc_id, grade in judged.items():
                    judged[doc_id] = min(grade, top)

    @property
    def top_grade(self) -> int:
        return len(SCALES[self.scale]) - 1

    def label(self, grade: int | None) -> str:
        """``"2 relevant"`` on this scale; ``""`` for no judgment."""
        return "" if grade is None else f"{grade} {SCALES[self.scale][min(grade, self.top_grade)]}"

    def __len__(self) -> int:
        with self._lock:
            return sum(len(j) for j in self._grades.values())

    def grade(self, query: str, doc_id: str, grade: int | None) -> None:
        """Judge ``doc_id`` for ``query`` (None: remove the judgment). Raises ExplorerError off the scale."""
        query, doc_id = query.strip(), str(doc_id)
        if not query or not doc_id:
            raise ExplorerError("a judgment needs a query and a document")
        with self._lock:
            if grade is None:
                judged = self._grades.get(query, {})
                judged.pop(doc_id, None)
                if not judged:
                    self._grades.pop(query, None)
                return
            if isinstance(grade, bool) or not isinstance(grade, int) or not 0 <= grade <= self.top_grade:
                raise ExplorerError(f"a grade on the {self.scale} scale is a whole number from 0 to "
                                    f"{self.top_grade} ({', '.join(SCALES[self.scale])})")
            if doc_id not in self._grades.get(query, {}) and sum(len(j) for j in self._grades.values()) >= \
                    MAX_JUDGMENTS:
                raise ExplorerError(f"a session keeps at most {MAX_JUDGMENTS:,} judgments")
            self._grades.setdefault(query, {})[doc_id] = grade

    def get(self, query: str, doc_id: str) -> int | None:
        with self._lock:
            return self._grades.get(query.strip(), {}).get(str(doc_id))

    def grades(self, query: str) -> dict[str, int]:
        """A copy of one query's ``{doc id: grade}``."""
        with self._lock:
            return dict(self._grades.get(query.strip(), {}))

    def queries(self) -> list[str]:
        with self._lock:
            return list(self._grades)

    def counts(self, query: str, doc_ids: Sequence[str]) -> QueryCounts:
        """Judged, unjudged and relevant documents among ``doc_ids`` (a ranking's top k, each once)."""
        judged = self.grades(query)
        seen = list(dict.fromkeys(map(str, doc_ids)))
        done = [d for d in seen if d in judged]
        return QueryCounts(len(done), len(seen) - len(done), sum(1 for d in done if judged[d] >= 1))

    def next_unjudged(self, query: str, doc_ids: Sequence[str], after: int = -1) -> int | None:
        """Position (0-based) in ``doc_ids`` of the first unjudged document after ``after``, wrapping around;
        None when every one is judged."""
        judged = self.grades(query)
        n = len(doc_ids)
        for step in range(1, n + 1):
            i = (after + step) % n
            if str(doc_ids[i]) not in judged:
                return i
        return None

    # -- conversion --------------------------------------------------------------------------------------

    def to_judgments(self) -> Judgments:
        """Judgments for evaluation: query ids ``q1, q2, ...`` in order of first judgment; queries with no
        relevant document are left out (and counted in ``notes``), as for an uploaded qrels file."""
        queries, qrels = self.numbered()
        if not qrels:
            raise ExplorerError("No judgments yet: grade some results in Search first.")
        return combine(queries, qrels, "judgments made in this session")

    def numbered(self) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
        """(queries, qrels) with query ids ``q1, q2, ...`` in order of first judgment (queries with grades only)."""
        with self._lock:
            items = [(q, dict(j)) for q, j in self._grades.items() if j]
        return ({f"q{i}": q for i, (q, _) in enumerate(items, start=1)},
                {f"q{i}": j for i, (_, j) in enumerate(items, start=1)})

    def to_csv(self) -> str:
        """``query,doc_id,grade`` rows with a header (read back by :func:`read_qrels_csv`)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["query", "doc_id", "grade"])
        with self._lock:
            for query, judged in self._grades.items():
                for doc_id, grade in judged.items():
                    writer.writerow([query, doc_id, grade])
        return out.getvalue()

    def to_beir_zip(self, path: str | Path) -> Path:
        """A zip of ``queries.jsonl`` and ``qrels/test.tsv`` (the BEIR layout, without the corpus)."""
        queries, qrels = self.numbered()
        path = Path(path)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("queries.jsonl", "".join(json.dumps({"_id": q, "text": t}, ensure_ascii=False) + "\n"
                                                      for q, t in queries.items()))
            archive.writestr(f"qrels/{SPLIT}.tsv", "query-id\tcorpus-id\tscore\n" + "".join(
                f"{q}\t{d}\t{g}\n" for q, judged in qrels.items() for d, g in judged.items()))
        return path

    def load(self, queries: dict[str, str], qrels: dict[str, dict[str, int]], *, replace: bool = False) -> int:
        """Add (or with ``replace``, set) the judgments of ``qrels`` (query id -> {doc id: grade}) for the query
        texts ``queries`` (query id -> text); returns how many were read. Grades above the scale's top switch a
        binary store to graded; negative grades (some TREC files use -1 or -2 for junk) are read as 0."""
        missing = [q for q in qrels if q not in queries]
        if missing:
            raise QrelsError("qrels", f"{len(missing)} query id(s) without a query text, e.g. {missing[0]!r}")
        if any(g > 1 for judged in qrels.values() for g in judged.values()) and self.scale == "binary":
            self.scale = "graded"
        top = self.top_grade
        if replace:
            with self._lock:
                self._grades.clear()
        n = 0
        for qid, judged in qrels.items():
            for doc_id, grade in judged.items():
                self.grade(queries[qid], doc_id, max(0, min(int(grade), top)))
                n += 1
        return n

    def load_beir(self, path: str | Path, name: str | None = None, *, split: str = SPLIT,
                  replace: bool = False) -> int:
        """Read a BEIR folder or zip's queries and qrels (the export of :meth:`to_beir_zip`, or a benchmark)."""
        queries, qrels = read_beir_judgments(path, split, name=name)
        return self.load(queries, qrels, replace=replace)

    def load_file(self, path: str | Path, name: str | None = None) -> int:
        """A BEIR ``.zip`` (:meth:`load_beir`) or else a ``query,doc_id[,grade]`` CSV (:meth:`load_csv`), by the
        name's suffix (``name``: the uploaded file's name, default the path's)."""
        name = name or Path(path).name
        return self.load_beir(path, name) if name.lower().endswith(".zip") else self.load_csv(path, name)

    def load_csv(self, path: str | Path, name: str | None = None, *, replace: bool = False) -> int:
        """Read a ``query,doc_id[,grade]`` CSV (the export of :meth:`to_csv`)."""
        queries, qrels = read_qrels_csv(path, name)
        return self.load(queries, qrels, replace=replace)

