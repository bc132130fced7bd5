"""Honest model and reranker lists: each choice says where it loads from here, or that it cannot.

The answer comes from the engine (:mod:`bge_explorer.models.availability`); this module only words it.
"""
from __future__ import annotations

from typing import Literal

from bge_explorer.app.render import box, label
from bge_explorer.models.availability import Availability, availability, catalog_availability
from bge_explorer.models.catalog import CATALOG, OFFLINE_MODEL

Kind = Literal["model", "reranker"]
NO_RERANKER = "none"


def _falls_back(found: Availability, kind: Kind) -> bool:
    """A catalog embedding model the Hub cannot give: the app loads the packaged offline model instead."""
    return kind == "model" and found.needs_hub and found.name in CATALOG


def choice_label(found: Availability, kind: Kind) -> str:
    if _falls_back(found, kind):
        return f"{found.name} · needs the Hub (offline: {OFFLINE_MODEL} loads instead)"
    return f"{found.name} · {found.label}"


def choices(kind: Kind) -> list[tuple[str, str]]:
    """(label, value) pairs for a dropdown: the catalog's models (or rerankers) with where each loads from."""
    found = catalog_availability("rerankers" if kind == "reranker" else "embedders")
    pairs = [(choice_label(a, kind), a.name) for a in found]
    return [("none", NO_RERANKER), *pairs] if kind == "reranker" else pairs


def availability_html(name: str, kind: Kind) -> str:
    """One line under the dropdown: where the picked model loads from, or why it cannot load here."""
    name = (name or "").strip()
    if not name or (kind == "reranker" and name.lower() == NO_RERANKER):
        return ""
    found = availability(name, "reranker" if kind == "reranker" else None)
    what = "reranker" if kind == "reranker" else "model"
    if _falls_back(found, kind):
        return box("warn", f"<b>{label(name)}</b> cannot load here: {label(found.reason)}. Building the index uses "
                           f"the packaged {OFFLINE_MODEL} instead, and says so.")
    if not found.can_load:
        return box("warn", f"This {what} cannot load here: {label(found.reason)}.")
    return box("ok", f"<b>{label(name)}</b> loads from: {label(found.label)}.")
