"""Retrieval modes: one module per mode, one registry entry each.

A :class:`Mode` declares its name and label, what it needs from the embedding model (an output such as
``"dense"``, ``"lexical"`` or ``"multivector"``, or nothing: text only), its role (a first stage that
finds candidates in the whole corpus, or a rescorer that scores the candidates of others), its weight in
BGE-M3's weighted sum (if it is one of M3's scores), whether the default hybrid includes it, and how to
build its index part over a chunk table and estimate that part's memory.

The planner (:mod:`bge_explorer.retrieval.planner`), the CLI's ``--modes``, the app's mode list and
evaluation all read :data:`REGISTRY`; adding a mode is one module that calls :func:`register`.
"""
from __future__ import annotations

from bge_explorer.retrieval.modes.base import (FIRST_STAGE, REGISTRY, RESCORER, FirstStagePart, Mode, Part, QueryInput,
                                               get, names, register, unregister)
# Each module registers itself; the import order is the registry order, i.e. the order of score columns, of fusion
# and of positional --weights: dense, sparse, colbert, bm25 (keep it; do not sort these imports).
from bge_explorer.retrieval.modes import dense, sparse, colbert, bm25  # noqa: E402,F401,I001

__all__ = ["FIRST_STAGE", "RESCORER", "REGISTRY", "FirstStagePart", "Mode", "Part", "QueryInput", "get", "names", "register",
           "unregister"]
