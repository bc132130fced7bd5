"""Text from uploads made safe to show: hidden characters made visible, long values cut, CSV cells defused.

:func:`visible` is for short labels (file names, ids, titles, messages), not for document text: it
escapes the characters a reader cannot see (bidi controls such as U+202E, which turn
``invoice\\u202etxt.exe`` into what looks like ``invoiceexe.txt``; zero-width and other format
characters; control characters, newlines included), as ``\\u202e``. Letters of every script, emoji,
and the joiners emoji and Indic or Arabic scripts need (U+200C, U+200D) are kept.

:func:`neutralize_csv_cell` and :func:`safe_csv_frame` defuse CSV injection (OWASP): a text cell
that a spreadsheet would read as a formula gets a leading ``'``.
"""
from __future__ import annotations

import re
import unicodedata

import pandas as pd

SHORT = 40  # characters of a value echoed in a message
HIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}  # controls, format (bidi, zero-width), surrogates, separators
JOINERS = {"\u200c", "\u200d"}  # ZWNJ, ZWJ: part of emoji sequences and of Indic and Arabic spelling
FLAG_TAGS = re.compile("\U0001F3F4[\U000E0020-\U000E007E]+\U000E007F")  # subdivision flags (Scotland, Wales)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _hidden(ch: str) -> bool:
    return unicodedata.category(ch) in HIDDEN_CATEGORIES and ch not in JOINERS


def visible(text: str) -> str:
    """``text`` with each hidden character replaced by its escape: ``"a\\u202eb"`` -> ``"a\\\\u202eb"``."""
    if text.isprintable():  # fast path: nothing hidden (isprintable is False for every hidden category)
        return text
    kept = [m.span() for m in FLAG_TAGS.finditer(text)]
    out, last = [], 0
    for start, end in kept + [(len(text), len(text))]:
        out.append("".join(_escape(ch) if _hidden(ch) else ch for ch in text[last:start]))
        out.append(text[start:end])
        last = end
    return "".join(out)


def short(value: object, limit: int = SHORT) -> str:
    """``visible(str(value))`` cut to ``limit`` characters, the cut marked with an ellipsis."""
    text = str(value)
    return visible(text) if len(text) <= limit else visible(text[:limit]) + "…"


def neutralize_csv_cell(value: object) -> object:
    """A cell for a CSV export: a string starting with ``= + - @``, tab or carriage return gets a leading
    ``'`` (OWASP); plain numbers (``-1.5``, also as strings) and non-strings are returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` (any shape) with :func:`neutralize_csv_cell` applied to its text columns and column
    names; numeric columns are unchanged."""
    out = frame.rename(columns=neutralize_csv_cell)
    for i in range(out.shape[1]):
        column = out.iloc[:, i]
        if column.dtype == object or isinstance(column.dtype, pd.StringDtype):
            out.isetitem(i, column.map(neutralize_csv_cell))
    return out
