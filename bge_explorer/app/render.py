"""Turning engine values into safe page content: escaping, highlighting, status boxes, error toasts.

User text (corpus, queries, file names, model paths, error messages) reaches the page only as Dataframe
text cells, Textbox values, or HTML that went through :func:`esc` first.
"""
from __future__ import annotations

import html
import re

import gradio as gr

from bge_explorer.data.safe_text import visible

TEXT_PREVIEW = 300
STOPWORDS = set("a an the of and or to in on at for by with is are was were be been it its this that what which who "
                "how when where why do does did from as".split())


def esc(text: object) -> str:
    """Escape user text for gr.HTML: HTML special characters and ``$`` (HTML templates use ``${}``)."""
    return html.escape(str(text), quote=True).replace("$", "&#36;").replace("`", "&#96;")


def label(text: object) -> str:
    """A short label (file name, id, title, model, message) for gr.HTML: escaped, and the characters a reader cannot
    see (bidi controls such as U+202E, zero-width and control characters) shown as escapes like ``\\u202e``."""
    return esc(visible(str(text)))


def cell(text: object) -> str:
    """A short label for a Dataframe text cell (shown literally, so not HTML-escaped): hidden characters visible."""
    return visible(str(text))


def plot_text(text: object) -> str:
    """Escaped for plotly labels: plotly reads a little HTML in text, and decodes numeric entities."""
    return esc(text).replace("&quot;", "&#34;")


def query_terms(query: str) -> list[str]:
    """Words of the query worth highlighting: alphanumeric, 2+ characters, not stopwords; longest first."""
    words = {w.lower() for w in re.findall(r"\w+", query or "") if len(w) >= 2 and w.lower() not in STOPWORDS}
    return sorted(words, key=lambda w: (-len(w), w))


def highlight(text: str, query: str) -> str:
    """HTML of ``text`` with the query's words in <mark>: matches are found in the raw text and every
    piece is escaped on its own, so nothing in the text can become markup."""
    terms = query_terms(query)
    if not terms:
        return esc(text)
    pattern = re.compile(r"\b(" + "|".join(re.escape(t) for t in terms) + r")\w*", re.IGNORECASE)
    out, last = [], 0
    for match in pattern.finditer(text):
        out.append(esc(text[last:match.start()]))
        out.append(f"<mark>{esc(match.group(0))}</mark>")
        last = match.end()
    out.append(esc(text[last:]))
    return "".join(out)


def snippet(text: str, limit: int = TEXT_PREVIEW) -> str:
    text = " ".join(str(text).split()) if len(str(text)) <= 20 * limit else " ".join(str(text)[:20 * limit].split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def fail(exc: Exception) -> gr.Error:
    """An engine error -> a gr.Error the page shows as a toast (the app keeps serving)."""
    return gr.Error(label(exc), print_exception=False)


def box(kind: str, body: str) -> str:
    """A status panel; ``body`` must already be safe HTML."""
    return f'<div class="bx-box bx-{kind}">{body}</div>'


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**17 else f"{n / 1024:.0f} KiB"
