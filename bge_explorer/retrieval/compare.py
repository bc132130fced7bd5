"""Comparing two rankings of the same query without judgments: overlap, Jaccard and rank-biased overlap.

- ``overlap@k``: items in both top-k lists; ``jaccard@k`` = overlap / size of the union.
- ``rbo``: extrapolated rank-biased overlap (Webber, Moffat and Zobel 2010, eq. 32) with persistence ``p``
  (0.9: the top 10 carry about 86% of the weight). For lists S (length s) and L (length l >= s), with
  ``X_d`` the overlap of the first d items (for d > s, of S with L's first d)::

      RBO_ext = (1-p)/p * ( sum_{d=1..l} X_d/d p^d + sum_{d=s+1..l} X_s (d-s)/(s d) p^d )
                + ( (X_l - X_s)/l + X_s/s ) p^l

  1 for identical lists, 0 for disjoint ones.
"""
from __future__ import annotations

import dataclasses
from typing import Hashable, Sequence

RBO_P = 0.9


def overlap_at(a: Sequence[Hashable], b: Sequence[Hashable], k: int) -> int:
    return len(set(a[:k]) & set(b[:k]))


def jaccard_at(a: Sequence[Hashable], b: Sequence[Hashable], k: int) -> float:
    union = set(a[:k]) | set(b[:k])
    return len(set(a[:k]) & set(b[:k])) / len(union) if union else 1.0


def rbo(a: Sequence[Hashable], b: Sequence[Hashable], p: float = RBO_P) -> float:
    """Extrapolated RBO of two rankings (duplicates after the first occurrence are ignored)."""
    a, b = list(dict.fromkeys(a)), list(dict.fromkeys(b))
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    s, l = len(short), len(long_)
    if l == 0:
        return 1.0
    if s == 0:
        return 0.0
    seen_s: set = set()
    seen_l: set = set()
    x = 0  # overlap at depth d
    total = 0.0
    x_s = 0
    for d in range(1, l + 1):
        item_l = long_[d - 1]
        if d <= s:
            item_s = short[d - 1]
            if item_s == item_l:
                x += 1
            else:
                x += (item_s in seen_l) + (item_l in seen_s)
            seen_s.add(item_s)
        else:
            x += item_l in seen_s
        seen_l.add(item_l)
        if d == s:
            x_s = x
        total += x / d * p ** d
        if d > s:
            total += x_s * (d - s) / (s * d) * p ** d
    return (1 - p) / p * total + ((x - x_s) / l + x_s / s) * p ** l


@dataclasses.dataclass
class ListComparison:
    """Two ranked lists of ids compared at ``k``; ``rank_in_b[id]`` / ``rank_in_a[id]``: 1-based ranks in the
    other list's top k (absent when not there)."""

    k: int
    overlap: int
    jaccard: float
    rbo: float
    same_rank: int
    rank_in_a: dict
    rank_in_b: dict

    def to_dict(self) -> dict:
        return {"k": self.k, "overlap": self.overlap, "jaccard": self.jaccard, "rbo": self.rbo,
                "same_rank": self.same_rank}


def compare_lists(a: Sequence[Hashable], b: Sequence[Hashable], k: int, p: float = RBO_P) -> ListComparison:
    """Overlap, Jaccard and RBO of the top ``k`` of two rankings, and where each item sits in the other."""
    a, b = list(a)[:k], list(b)[:k]
    rank_a = {item: r for r, item in enumerate(a, start=1)}
    rank_b = {item: r for r, item in enumerate(b, start=1)}
    same = sum(1 for item, r in rank_a.items() if rank_b.get(item) == r)
    return ListComparison(k, overlap_at(a, b, k), jaccard_at(a, b, k), rbo(a, b, p), same, rank_a, rank_b)
