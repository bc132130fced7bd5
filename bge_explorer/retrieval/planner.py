"""The planner: (configuration, what the index state can serve) -> the modes to run, with readable notes.

Rules, for one configuration:

1. ``hybrid`` resolves to every registered mode the state can serve that is ``in_hybrid`` (ColBERT is not:
   it must be named) and, for M3's weighted sum (and ``auto`` fusion on a BGE-M3 model), is an M3 score.
   ``auto`` fusion is M3's weighted sum when the model is BGE-M3 and every mode is an M3 score, else RRF.
2. Every mode named must be servable (a BGE-M3 model for sparse and ColBERT; a model for dense).
3. First stages find the candidates: each first-stage mode in the plan returns its top k. A plan of
   rescorers only (ColBERT alone) takes the candidates of the rescorer's ``candidates_from`` modes.
4. Every mode in play scores every candidate; with one mode its score ranks them, with more the fusion
   combines them with resolved weights (given, else the fusion's defaults).
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

from bge_explorer.errors import ConfigError
from bge_explorer.retrieval import modes as registry
from bge_explorer.retrieval.config import AUTO, HYBRID, RetrievalConfig
from bge_explorer.retrieval.fusion import FUSIONS, resolve_weights
from bge_explorer.retrieval.state import IndexState

MIB = 2**20


@dataclasses.dataclass(frozen=True)
class Plan:
    """``modes``: ranked or fused; ``stages``: first stages supplying candidates; ``computed``: every mode scored
    (modes and stages, registry order); ``fusion`` None for one mode; ``weights`` resolved; ``notes`` for people."""

    modes: tuple[str, ...]
    stages: tuple[str, ...]
    computed: tuple[str, ...]
    fusion: str | None
    weights: dict[str, float]
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        if self.fusion is None:
            return self.modes[0]
        mix = " + ".join(f"{m} {self.weights[m]:g}" for m in self.modes)
        return f"{self.fusion}: {mix}"


def plan(config: RetrievalConfig, state: IndexState) -> Plan:
    """The plan for ``config`` on ``state``. Raises ConfigError (naming ``modes`` or ``fusion``) for what the
    state cannot do."""
    m3_model = "lexical" in state.produces
    wanted = config.fusion
    if wanted == AUTO and config.modes != (HYBRID,):
        wanted = "m3" if m3_model and all(registry.get(m).m3_weight is not None for m in config.modes) else "rrf"
    elif wanted == AUTO:
        wanted = "m3" if m3_model else "rrf"
    fusion = FUSIONS[wanted]
    notes: list[str] = []
    order = registry.names()
    if config.modes == (HYBRID,):
        modes = tuple(m for m in order if registry.REGISTRY[m].in_hybrid and not registry.REGISTRY[m].unavailable(state)
                      and (not fusion.m3_scores or registry.REGISTRY[m].m3_weight is not None))
        if not modes:
            raise ConfigError("modes", f"hybrid: no mode can run on this index ({state.model_name})")
        notes.append(f"hybrid = {' + '.join(modes)}, the modes of {state.model_name}")
        notes += _opt_in_notes(state, modes)
    else:
        modes = config.modes
    for m in modes:
        reason = registry.get(m).unavailable(state)
        if reason:
            raise ConfigError("modes", reason)
    fused = len(modes) > 1 or config.modes == (HYBRID,)
    if fused and fusion.m3_scores:
        outside = [m for m in modes if registry.get(m).m3_weight is None]
        if outside:
            raise ConfigError("fusion", f"M3's weighted sum combines dense, sparse and colbert only, not "
                                        f"{', '.join(outside)}; use weighted or rrf fusion to mix in {outside[0]}")
    stages = [m for m in modes if registry.get(m).role == registry.FIRST_STAGE]
    if not stages:
        supply = dict.fromkeys(s for m in modes for s in registry.get(m).candidates_from
                               if not registry.get(s).unavailable(state))
        stages = list(supply)
        if not stages:
            raise ConfigError("modes", f"{' + '.join(modes)} only rescores candidates, and no first stage can run here")
        notes.append(f"{' + '.join(modes)} rescores the hits of {' + '.join(stages)}")
    computed = tuple(m for m in order if m in set(modes) | set(stages))
    weights: dict[str, float] = {}
    if fused:
        defaults = {m: registry.get(m).m3_weight for m in modes} if fusion.m3_scores else None
        weights = resolve_weights(modes, config.weight_map, defaults)
    return Plan(tuple(modes), tuple(stages), computed, fusion.name if fused else None, weights, tuple(notes))


def _opt_in_notes(state: IndexState, modes: tuple[str, ...]) -> list[str]:
    """Why a servable mode is left out of the default hybrid, with its memory where it has one."""
    out = []
    for name, mode in registry.REGISTRY.items():
        if name in modes or mode.in_hybrid or mode.unavailable(state):
            continue
        size = "" if state.has(name) else f": it keeps about {state.estimate_bytes(name) / MIB:,.0f} MiB"
        out.append(f"{mode.label} off unless named{size}")
    return out


def select_modes(weights: Mapping[str, float], state: IndexState, fusion: str = AUTO
                 ) -> tuple[tuple[str, ...], list[str], str]:
    """The modes a set of weights picks for a hybrid on ``state`` (the app's weight sliders): weight above 0 and
    servable; opt-in modes (ColBERT) only once built; for M3's weighted sum only M3 scores (``auto`` is M3's sum
    on a BGE-M3 model, as for ``hybrid``, else RRF). -> (modes in registry order, notes on each mode left out and
    why, the fusion). Raises ConfigError when nothing is left."""
    if fusion == AUTO:
        fusion = "m3" if "lexical" in state.produces else "rrf"
    m3 = fusion == "m3"
    modes, notes = [], []
    for name, mode in registry.REGISTRY.items():
        if weights.get(name, 0) <= 0:
            continue
        reason = mode.unavailable(state)
        if reason:
            notes.append(f"{mode.label} left out: {reason}")
        elif not mode.in_hybrid and not state.has(name):
            notes.append(f"{mode.label} left out: switch it on first (its memory is shown)")
        elif m3 and mode.m3_weight is None:
            notes.append(f"{mode.label} left out: M3's weighted sum combines M3 scores only (choose weighted or rrf)")
        else:
            modes.append(name)
    if not modes:
        raise ConfigError("modes", "nothing to fuse: give a weight above 0 to a mode this index can serve ("
                                   + ", ".join(state.available_modes()) + ")" + ("; " + "; ".join(notes) if notes else ""))
    return tuple(modes), notes, fusion
