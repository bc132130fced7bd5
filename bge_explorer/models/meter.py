"""Measured model speeds, process-wide: seconds per passage, query or reranked pair of each model, from the work
the models have done in this process. They let an experiment say roughly how long it will take before it runs.
Speeds only, never texts: nothing of one session's data is kept here."""
from __future__ import annotations

import threading

KINDS = ("passage", "query", "pair")
_TOTALS: dict[tuple[str, str], tuple[int, float]] = {}  # (kind, model name) -> (items, seconds)
_LOCK = threading.Lock()


def record(kind: str, model: str, items: int, seconds: float) -> None:
    """``items`` passages / queries / pairs of ``model`` took ``seconds``."""
    if items <= 0:
        return
    with _LOCK:
        done, spent = _TOTALS.get((kind, model), (0, 0.0))
        _TOTALS[(kind, model)] = (done + items, spent + seconds)


def seconds_per_item(kind: str, model: str) -> float | None:
    """The mean seconds per item measured so far; None before the model did any of that work here."""
    with _LOCK:
        done, spent = _TOTALS.get((kind, model), (0, 0.0))
    return spent / done if done else None
