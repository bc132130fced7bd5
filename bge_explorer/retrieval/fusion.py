"""Combining the scores of several retrieval modes for one query's candidate set.

Three ways, each taking ``{mode: (n,) array}`` aligned over the same n candidates:

- :func:`m3_weighted_sum`: BGE-M3's own ``compute_score`` combination of raw scores,
  ``sum_m w_m * s_m / sum_m w_m`` (weights for dense, sparse, colbert; [0.4, 0.2, 0.4] by default).
  Only meaningful for M3's three modes, whose raw scores share a scale.
- :func:`normalized_weighted_sum`: each mode's scores min-max normalised over the candidates of
  this query, ``(s - min) / (max - min)`` (all equal -> 0), then ``sum_m w_m * norm_m / sum_m w_m``.
  Works for any mix, BM25 included.
- :func:`rrf`: reciprocal rank fusion, ``sum_m w_m / (k + rank_m)`` with k = 60 (Cormack et al. 2009).
- The normalisation x combination grid of OpenSearch's hybrid search (and its Search Relevance Workbench
  optimiser), :func:`normalized_mean`: each mode's scores normalised (:data:`NORMALIZATIONS`: min-max;
  L2, ``s / ||s||_2``; rank, ``(k + 1) / (k + rank)``), then a weighted arithmetic, geometric or harmonic
  mean (:data:`COMBINATIONS`). Registered as ``{normalisation}-{combination}`` (``l2-harmonic``); min-max
  with the arithmetic mean is ``weighted`` and rank with the arithmetic mean orders like ``rrf``, so those
  two keep their names.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np

from bge_explorer.errors import ConfigError

M3_MODES = ("dense", "sparse", "colbert")
M3_DEFAULT_WEIGHTS = {"dense": 0.4, "sparse": 0.2, "colbert": 0.4}
RRF_K = 60


def resolve_weights(modes, weights: Mapping[str, float] | None, default: Mapping[str, float] | None = None) -> dict:
    """``{mode: weight}`` for ``modes``: given weights, else ``default``, else 1. Raises ConfigError (field
    ``weights``) for a negative weight or when all are 0."""
    out = {}
    for m in modes:
        w = (weights or {}).get(m, (default or {}).get(m, 1.0))
        if w < 0:
            raise ConfigError("weights", f"the weight of {m} must be >= 0, got {w:g}")
        out[m] = float(w)
    if sum(out.values()) <= 0:
        raise ConfigError("weights", "at least one weight must be > 0")
    return out


def m3_weighted_sum(scores: Mapping[str, np.ndarray], weights: Mapping[str, float] | None = None) -> np.ndarray:
    """BGE-M3's ``compute_score`` fusion: ``sum(w_m * s_m) / sum(w_m)`` over the modes given (dense, sparse,
    colbert). Missing weights default to [0.4, 0.2, 0.4]. With all three modes this is
    ``compute_score(...)['colbert+sparse+dense']``; with dense and sparse, ``['sparse+dense']``."""
    unknown = set(scores) - set(M3_MODES)
    if unknown:
        raise ConfigError("fusion", f"M3's weighted sum combines dense, sparse and colbert only, not "
                                    f"{', '.join(sorted(unknown))}; use weighted or rrf fusion to mix them in")
    w = resolve_weights(scores, weights, M3_DEFAULT_WEIGHTS)
    total = sum(w.values())
    return sum(np.asarray(scores[m], np.float64) * w[m] for m in scores) / total


def min_max(scores: np.ndarray) -> np.ndarray:
    """``(s - min) / (max - min)`` over one query's candidates; all zeros when every score is equal."""
    scores = np.asarray(scores, np.float64)
    if len(scores) == 0:
        return scores
    low, high = scores.min(), scores.max()
    if high - low <= 0:
        return np.zeros_like(scores)
    return (scores - low) / (high - low)


def normalized_weighted_sum(scores: Mapping[str, np.ndarray], weights: Mapping[str, float] | None = None
                            ) -> np.ndarray:
    """``sum_m w_m * min_max(s_m) / sum_m w_m``, in [0, 1]. Missing weights are 1."""
    w = resolve_weights(scores, weights)
    return sum(min_max(scores[m]) * w[m] for m in scores) / sum(w.values())


def ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of each score, best first; tied scores share the best rank among them ("min" ranking)."""
    scores = np.asarray(scores, np.float64)
    ordered = np.sort(-scores)
    return (np.searchsorted(ordered, -scores, side="left") + 1).astype(np.int64)


def rrf(rank_lists: Mapping[str, np.ndarray], k: int = RRF_K, weights: Mapping[str, float] | None = None
        ) -> np.ndarray:
    """Reciprocal rank fusion of 1-based ranks ``{mode: (n,) ranks}``: ``sum_m w_m / (k + rank_m)``.
    A rank of 0 or less (or NaN) means "not ranked by this mode" and adds nothing. Missing weights are 1."""
    w = resolve_weights(rank_lists, weights)
    total = None
    for m, r in rank_lists.items():
        r = np.asarray(r, np.float64)
        part = np.where(np.isfinite(r) & (r > 0), w[m] / (k + np.where(np.isfinite(r), r, 0.0)), 0.0)
        total = part if total is None else total + part
    return total


def l2(scores: np.ndarray) -> np.ndarray:
    """``s / sqrt(sum s^2)`` over one query's candidates (OpenSearch's L2 normalisation); zeros when all are 0."""
    scores = np.asarray(scores, np.float64)
    norm = float(np.sqrt(np.sum(scores ** 2)))
    return scores / norm if norm > 0 else np.zeros_like(scores)


def rank_scale(rank_list: np.ndarray, k: int = RRF_K) -> np.ndarray:
    """1-based ranks -> ``(k + 1) / (k + rank)``: 1 for the first, falling like RRF's terms; 0 for a candidate the
    mode did not rank (rank <= 0 or NaN)."""
    r = np.asarray(rank_list, np.float64)
    ranked = np.isfinite(r) & (r > 0)
    return np.where(ranked, (k + 1) / (k + np.where(ranked, r, 1.0)), 0.0)


NORMALIZATIONS: dict[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]] = {
    "minmax": lambda s, r, k: min_max(s),
    "l2": lambda s, r, k: l2(s),
    "rank": lambda s, r, k: rank_scale(r, k),
}


def _arithmetic(parts: np.ndarray, w: np.ndarray) -> np.ndarray:
    return parts.T @ w / w.sum()


def _geometric(parts: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``prod_m s_m^(w_m / sum w)``; 0 when a weighted mode scores 0 (OpenSearch skips non-positive scores in the
    log; a candidate one mode puts last, or never found, then ranks below every candidate all modes found)."""
    with np.errstate(divide="ignore"):
        logs = np.where(parts > 0, np.log(np.where(parts > 0, parts, 1.0)), -np.inf)
    used = w > 0
    return np.exp(logs[used].T @ w[used] / w.sum())


def _harmonic(parts: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``sum w / sum_m (w_m / s_m)`` over the weighted modes; 0 when a weighted mode scores 0."""
    used = w > 0
    p = parts[used]
    with np.errstate(divide="ignore"):
        inverse = np.where(p > 0, w[used][:, None] / np.where(p > 0, p, 1.0), np.inf)
    return w.sum() / inverse.sum(axis=0)


COMBINATIONS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "arithmetic": _arithmetic, "geometric": _geometric, "harmonic": _harmonic}


def normalized_mean(scores: Mapping[str, np.ndarray], rank_lists: Mapping[str, np.ndarray],
                    weights: Mapping[str, float] | None = None, *, normalization: str = "minmax",
                    combination: str = "arithmetic", k: int = RRF_K) -> np.ndarray:
    """Normalise each mode's (n,) scores (or its 1-based ranks, for ``rank``), then combine them with a
    weighted mean -> (n,) fused scores in [0, 1], higher better. Missing weights are 1; a weight of 0 leaves the
    mode out of the mean.

    arithmetic: ``sum_m w_m x_m / sum w``; geometric: ``exp(sum_m w_m log x_m / sum w)``; harmonic:
    ``sum w / sum_m (w_m / x_m)``; with ``x_m`` the normalised score.
    """
    w = resolve_weights(scores, weights)
    modes = list(scores)
    parts = np.stack([NORMALIZATIONS[normalization](scores[m], rank_lists.get(m), k) for m in modes])
    return COMBINATIONS[combination](parts, np.array([w[m] for m in modes]))


@dataclasses.dataclass(frozen=True)
class Fusion:
    """A way to combine modes. ``combine(scores, ranks, weights, rrf_k)`` takes ``{mode: (n,)}`` raw scores and
    1-based ranks over one query's candidates and resolved weights; returns (n,) fused scores, higher better.
    ``m3_scores``: combines only modes that are BGE-M3 scores, with their M3 weights as defaults (each mode's
    ``m3_weight`` in the registry); other fusions take any mode, weight 1 by default."""

    name: str
    label: str
    combine: Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray], Mapping[str, float], int], np.ndarray]
    m3_scores: bool = False


FUSIONS: dict[str, Fusion] = {f.name: f for f in (
    Fusion("rrf", "reciprocal rank fusion (k = 60)", lambda s, r, w, k: rrf(r, k, w)),
    Fusion("weighted", "weighted sum of min-max normalised scores",
           lambda s, r, w, k: normalized_weighted_sum(s, w)),
    Fusion("m3", "BGE-M3's weighted sum of raw scores", lambda s, r, w, k: m3_weighted_sum(s, w), m3_scores=True),
    *(Fusion(f"{n}-{c}", f"{c} mean of {n} normalised scores",
             lambda s, r, w, k, _n=n, _c=c: normalized_mean(s, r, w, normalization=_n, combination=_c, k=k))
      for n in NORMALIZATIONS for c in COMBINATIONS if (n, c) not in (("minmax", "arithmetic"), ("rank", "arithmetic"))),
)}
GRID = tuple(name for name, f in FUSIONS.items() if not f.m3_scores)
"""The normalisation x combination grid of OpenSearch's hybrid optimiser (with RRF), as fusion names: ``fusion:
grid`` in a configuration file sweeps it."""
