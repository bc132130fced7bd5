"""Shareable views: a link's query parameters <-> the page's corpus choice, model, instruction, reranker, mode, query.

``?corpus=sample&model=bge-small-en-v1.5&instruction_mode=custom&instruction=Query:%20&reranker=none&mode=hybrid
&k=10&q=eiffel%20tower`` reopens that view: the sample corpus loaded, the index built with the model, the query run.

Every parameter is checked before it reaches a control (:func:`parse_view`): only known names, each bounded by the
server's limits and restricted to allowed values; a model or reranker must be a catalog name or a Hub id, and a
local path only where the operator set model roots (``BGE_EXPLORER_MODEL_ROOTS``) and the engine's own rules
accept it (:func:`~bge_explorer.models.catalog.resolve_spec`). A parameter that fails is dropped and named in a
note; nothing else happens because of it.
"""
from __future__ import annotations

import dataclasses
import urllib.parse
from typing import Mapping

from bge_explorer import settings
from bge_explorer.app.hybrid import mode_choices
from bge_explorer.errors import ExplorerError
from bge_explorer.models.catalog import CATALOG, EMBEDDERS, HUB_ID, RERANKERS, resolve_spec

CORPORA = ("sample",)  # corpora a link can name: the bundled sample (a Space's bundled corpus)
INSTRUCTION_MODES = {"default": "model default", "custom": "custom", "none": "none"}  # URL value -> the radio's
NO_RERANKER = "none"
PARAMS = ("corpus", "model", "instruction_mode", "instruction", "reranker", "mode", "k", "q")


@dataclasses.dataclass(frozen=True)
class View:
    """A validated view; None: the link did not set it (the control keeps its value)."""

    corpus: str | None = None
    model: str | None = None
    instruction_mode: str | None = None
    instruction: str | None = None
    reranker: str | None = None
    mode: str | None = None
    k: int | None = None
    query: str | None = None

    @property
    def empty(self) -> bool:
        return self == View()


def _model(value: str, kind: str) -> str:
    """A model (or reranker) a link may name, else ExplorerError saying why."""
    if kind == "reranker" and value.lower() == NO_RERANKER:
        return NO_RERANKER
    if value in (RERANKERS if kind == "reranker" else EMBEDDERS):
        return value
    if value in CATALOG:
        raise ExplorerError(f"'{value}' is {'a reranker' if kind == 'model' else 'an embedding model'}")
    local_off = ExplorerError("a link may name a catalog model or a Hub id; a local model only where the server "
                              "sets BGE_EXPLORER_MODEL_ROOTS")
    roots = settings.current().model_roots
    if not roots and not HUB_ID.match(value):  # refused before any look at the file system
        raise local_off
    spec = resolve_spec(value, model_class="reranker" if kind == "reranker" else None)
    if spec.is_local and not roots:
        raise local_off
    return value


def parse_view(params: Mapping[str, str]) -> tuple[View, list[str]]:
    """Query parameters -> (the view they describe, notes naming each parameter that was dropped and why)."""
    limits = settings.current().limits
    view: dict[str, object] = {}
    notes: list[str] = []
    for name in PARAMS:
        raw = params.get(name)
        if raw is None:
            continue
        value = str(raw)
        try:
            if name == "q":
                if len(value) > limits.max_query_chars:
                    raise ExplorerError(f"longer than {limits.max_query_chars:,} characters")
                if value.strip():
                    view["query"] = value.strip()
                continue
            # the instruction is kept exactly (BGE's ends with a space); every other value is trimmed
            value = limits.check_field(value if name == "instruction" else value.strip(), name)
            if name == "corpus":
                if value not in CORPORA:
                    raise ExplorerError(f"choose {', '.join(CORPORA)}")
            elif name in ("model", "reranker"):
                value = _model(value, name)
            elif name == "instruction_mode":
                if value not in INSTRUCTION_MODES:
                    raise ExplorerError(f"choose {', '.join(INSTRUCTION_MODES)}")
                value = INSTRUCTION_MODES[value]
            elif name == "mode":
                if value not in mode_choices():
                    raise ExplorerError(f"choose {', '.join(mode_choices())}")
            elif name == "k":
                if not value.isdigit() or not 1 <= int(value) <= limits.max_k:
                    raise ExplorerError(f"a whole number between 1 and {limits.max_k:,}")
                value = int(value)
            view[name] = value
        except ExplorerError as exc:
            notes.append(f"link parameter '{name}' ignored: {exc}")
    if "instruction" in view and "instruction_mode" not in view:
        view["instruction_mode"] = "custom"
    return View(**view), notes


def view_query(corpus: str | None, model: str, instruction_mode: str, instruction: str, reranker: str, mode: str,
               k: int, query: str) -> str:
    """The query string (``?...``) of a link to this view; the corpus only when a link can name it (the sample)."""
    mode_value = {v: key for key, v in INSTRUCTION_MODES.items()}.get(instruction_mode, "default")
    params = {"corpus": corpus if corpus in CORPORA else None, "model": model, "instruction_mode": mode_value,
              "instruction": instruction if mode_value == "custom" else None, "reranker": reranker or NO_RERANKER,
              "mode": mode, "k": str(int(k)), "q": query}
    return "?" + urllib.parse.urlencode({key: value for key, value in params.items() if value not in (None, "")},
                                        quote_via=urllib.parse.quote)
