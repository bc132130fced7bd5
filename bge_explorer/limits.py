"""Explicit limits on what one request may ask, settable by environment variables.

Over a limit, :class:`~bge_explorer.errors.LimitError` says which limit and its value.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Sequence

from bge_explorer.errors import LimitError


def _env(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


@dataclasses.dataclass(frozen=True)
class Limits:
    """Upper bounds per request. ``from_env()`` reads BGE_EXPLORER_<FIELD> (e.g. BGE_EXPLORER_MAX_UPLOAD_MB)."""

    max_upload_mb: float = 100.0
    max_files: int = 100
    max_chunks: int = 50_000
    max_query_chars: int = 2_000
    max_k: int = 1_000

    @classmethod
    def from_env(cls) -> Limits:
        return cls(**{field.name: type(field.default)(_env(f"BGE_EXPLORER_{field.name.upper()}", field.default))
                      for field in dataclasses.fields(cls)})

    def describe(self) -> str:
        """One line for the UI: the limits in force."""
        return (f"Limits: {self.max_files} files and {self.max_upload_mb:g} MB per upload, {self.max_chunks:,} chunks, "
                f"queries up to {self.max_query_chars:,} characters, k up to {self.max_k:,}.")

    def check_files(self, paths: Sequence[str | Path]) -> None:
        if len(paths) > self.max_files:
            raise LimitError(f"{len(paths)} files is over the limit of {self.max_files} files per upload "
                             "(BGE_EXPLORER_MAX_FILES)")
        total = sum(os.path.getsize(p) for p in paths)
        if total > self.max_upload_mb * 2**20:
            raise LimitError(f"the upload is {total / 2**20:,.1f} MB, over the limit of {self.max_upload_mb:g} MB "
                             "(BGE_EXPLORER_MAX_UPLOAD_MB)")

    def check_chunks(self, n: int) -> None:
        if n > self.max_chunks:
            raise LimitError(f"{n:,} chunks is over the limit of {self.max_chunks:,} chunks "
                             "(BGE_EXPLORER_MAX_CHUNKS); use larger chunks or fewer documents")

    def check_query(self, query: str, k: int) -> None:
        if len(query) > self.max_query_chars:
            raise LimitError(f"the query has {len(query):,} characters, over the limit of {self.max_query_chars:,} "
                             "(BGE_EXPLORER_MAX_QUERY_CHARS)")
        if not 1 <= k <= self.max_k:
            raise LimitError(f"k must be between 1 and {self.max_k:,} (BGE_EXPLORER_MAX_K); got {k:,}")


def model_concurrency() -> int:
    """How many events that use a model (index builds, searches, comparisons, evaluations) run at once, in all;
    the others wait in the queue. BGE_EXPLORER_MODEL_CONCURRENCY, default 2 on the CPU (compute-bound: more at
    once only shares the same cores and adds activation memory) and 4 on a GPU."""
    value = os.environ.get("BGE_EXPLORER_MODEL_CONCURRENCY")
    if value:
        return max(1, int(value))
    from bge_explorer.models.devices import default_device

    return 4 if default_device().startswith("cuda") else 2


def gradio_max_file_size(limits: Limits | None = None) -> int:
    """Bytes for ``launch(max_file_size=...)``: Gradio refuses a bigger upload while it streams in."""
    return int((limits or Limits.from_env()).max_upload_mb * 2**20)
