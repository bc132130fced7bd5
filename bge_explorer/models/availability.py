"""Can a model load here? Answered without downloading anything, before anyone waits on a load.

:func:`availability` says where a catalog name, Hub id or local path would load from (the packaged offline model,
a local directory, the local Hugging Face cache, or the Hub) and, when it cannot load on this machine, why. It
uses the same rules as :func:`~bge_explorer.models.loading.locate`: the spec resolution (model roots, public
deployments), the Hub allow-list, the cache look-up and the Hub reachability probe (at once under HF_HUB_OFFLINE,
remembered for a minute otherwise).
"""
from __future__ import annotations

import dataclasses
from typing import Literal

from bge_explorer import settings
from bge_explorer.errors import ExplorerError
from bge_explorer.models.catalog import CATALOG, OFFLINE_MODEL, ModelClass, resolve_spec
from bge_explorer.models.loading import _cached_snapshot, check_hub_allowed, hub_reachable

Where = Literal["packaged", "local path", "local cache", "hub", "unavailable"]

WHERE_LABELS = {"packaged": "packaged", "local path": "local path", "local cache": "local cache",
                "hub": "downloads from the Hub", "unavailable": "cannot load here"}


@dataclasses.dataclass(frozen=True)
class Availability:
    """``where`` the model would load from; ``reason`` (set when it cannot load) says why, for people."""

    name: str
    where: Where
    reason: str = ""
    needs_hub: bool = False  # it would come from the Hub, which cannot be reached now

    @property
    def can_load(self) -> bool:
        return self.where != "unavailable"

    @property
    def label(self) -> str:
        """Short text for a choice list: "local cache", "needs the Hub (unreachable)", ..."""
        if self.where == "unavailable":
            return "needs the Hub (unreachable)" if self.needs_hub else "cannot load here"
        return WHERE_LABELS[self.where]


def availability(name_or_path: str, model_class: ModelClass | None = None) -> Availability:
    """Where ``name_or_path`` loads from on this machine, or why it cannot; never downloads, never raises for a bad
    name (the reason says what is wrong)."""
    name = (name_or_path or "").strip()
    try:
        spec = resolve_spec(name, model_class=model_class)
    except ExplorerError as exc:
        return Availability(name, "unavailable", str(getattr(exc, "reason", exc)))
    if spec.name == OFFLINE_MODEL and name in (OFFLINE_MODEL, CATALOG[OFFLINE_MODEL].source):
        return Availability(name, "packaged")
    if spec.is_local:
        return Availability(name, "local path")
    try:
        check_hub_allowed(spec, settings.current())
    except ExplorerError as exc:
        return Availability(name, "unavailable", str(getattr(exc, "reason", exc)))
    if _cached_snapshot(spec.source) is not None:
        return Availability(name, "local cache")
    if hub_reachable():
        return Availability(name, "hub")
    return Availability(name, "unavailable", f"'{spec.source}' is not in the local Hugging Face cache and the Hub "
                                             "cannot be reached (offline)", needs_hub=True)


def catalog_availability(kind: Literal["embedders", "rerankers"]) -> list[Availability]:
    """Every catalog embedding model (or reranker), in catalog order, with where it loads from here."""
    rerankers = kind == "rerankers"
    return [availability(name) for name, spec in CATALOG.items() if (spec.model_class == "reranker") == rerankers]
