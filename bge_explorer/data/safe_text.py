"""CSV cells defused against CSV injection (OWASP): a text cell a spreadsheet would read as a formula gets a
leading ``'``.

Minimal version so the CLI and exports import on this branch; the data-security branch (sec-data) brings the
full module (visible/short for labels as well) and supersedes this file on merge.
"""
from __future__ import annotations

import re

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def neutralize_csv_cell(value: object) -> object:
    """A string starting with ``= + - @``, tab or carriage return gets a leading ``'``; plain numbers (also as
    strings) and non-strings are returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with :func:`neutralize_csv_cell` applied to its text columns and column names."""
    out = frame.rename(columns=neutralize_csv_cell)
    for i in range(out.shape[1]):
        column = out.iloc[:, i]
        if column.dtype == object or isinstance(column.dtype, pd.StringDtype):
            out.isetitem(i, column.map(neutralize_csv_cell))
    return out
