"""Held-out split: which judged queries train the model and which prove it.

The unit is the *query*, never the (query, document) pair: a held-out query contributes nothing to training
(not its text, not its judged documents as positives or negatives), so the comparison on held-out queries
measures what the model learnt, not what it memorised. The split is seeded and deterministic: the same
judgments, fraction and seed give the same split on every machine (NumPy's PCG64 permutation of the query ids
in their file order). A user's own train/test qrels (two BEIR splits) are used as they are instead.

The split is stored in the tuned model's card (:meth:`HeldOutSplit.to_dict`) so the proof can be re-run.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from bge_explorer.data.judging import JudgmentStore
from bge_explorer.data.qrels import Judgments
from bge_explorer.errors import ConfigError, ExplorerError

DEFAULT_FRACTION = 0.3
DEFAULT_SEED = 0
RANDOM, GIVEN = "random", "given"  # how a split was made: seeded sampling, or the user's own qrels splits


@dataclasses.dataclass(frozen=True)
class HeldOutSplit:
    """Query ids for training (``train``) and for the proof (``held_out``), disjoint, each in judgment order.

    ``method``: ``random`` (``fraction`` of the queries held out with ``seed``) or ``given`` (two qrels splits,
    named in ``source``)."""

    train: tuple[str, ...]
    held_out: tuple[str, ...]
    method: str = RANDOM
    fraction: float | None = DEFAULT_FRACTION
    seed: int | None = DEFAULT_SEED
    source: str = ""

    def __post_init__(self) -> None:
        both = set(self.train) & set(self.held_out)
        if both:
            raise ExplorerError(f"{len(both)} quer(y/ies) are both in training and held out, e.g. {sorted(both)[0]!r}")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["train"], out["held_out"] = list(self.train), list(self.held_out)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeldOutSplit:
        try:
            return cls(tuple(map(str, data["train"])), tuple(map(str, data["held_out"])), str(data["method"]),
                       data.get("fraction"), data.get("seed"), str(data.get("source", "")))
        except (KeyError, TypeError) as exc:
            raise ConfigError("split", f"needs train, held_out and method ({exc})") from None


def split_queries(judgments: Judgments | JudgmentStore, fraction: float = DEFAULT_FRACTION,
                  seed: int = DEFAULT_SEED) -> HeldOutSplit:
    """Hold out ``round(fraction * n)`` of the n judged queries (at least one, leaving at least one to train on),
    chosen by a seeded permutation; both sides keep the judgments' query order. A JudgmentStore is read with
    ``to_judgments()`` (ids ``q1, q2, ...``; queries without a relevant grade left out)."""
    if isinstance(judgments, JudgmentStore):
        judgments = judgments.to_judgments()
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ConfigError("holdout_fraction", f"must be a number between 0 and 1 (exclusive), not {fraction!r}")
    ids = list(judgments.queries)
    if len(ids) < 2:
        raise ExplorerError(f"a held-out split needs at least 2 judged queries; there are {len(ids)}")
    n_held = min(len(ids) - 1, max(1, round(fraction * len(ids))))
    chosen = set(np.random.default_rng(seed).permutation(len(ids))[:n_held].tolist())
    return HeldOutSplit(tuple(q for i, q in enumerate(ids) if i not in chosen),
                        tuple(q for i, q in enumerate(ids) if i in chosen), RANDOM, float(fraction), int(seed),
                        judgments.source)


def given_split(train: Judgments, held_out: Judgments) -> tuple[HeldOutSplit, Judgments]:
    """The user's own splits (say BEIR ``train`` and ``test``) as a split, and one :class:`Judgments` holding
    both. A training query whose id or text is also held out is dropped from training (said in the notes)."""
    held_texts = {t.strip() for t in held_out.queries.values()}
    clash = [q for q, t in train.queries.items() if q in held_out.queries or t.strip() in held_texts]
    train_ids = tuple(q for q in train.queries if q not in set(clash))
    if not train_ids:
        raise ExplorerError("every training query is also a held-out query: nothing is left to train on")
    notes = [*train.notes, *held_out.notes]
    if clash:
        notes.append(f"{len(clash)} training quer(y/ies) also held out (same id or text) were left out of training")
    merged = Judgments({**{q: train.queries[q] for q in train_ids}, **held_out.queries},
                       {**{q: train.qrels[q] for q in train_ids}, **held_out.qrels},
                       f"{train.source} + {held_out.source}", notes)
    split = HeldOutSplit(train_ids, tuple(held_out.queries), GIVEN, None, None,
                         f"train: {train.source}; held out: {held_out.source}")
    return split, merged


def subset(judgments: Judgments, query_ids: tuple[str, ...] | list[str], label: str) -> Judgments:
    """The judgments of ``query_ids`` only (in that order), tagged ``label`` in the source."""
    missing = [q for q in query_ids if q not in judgments.queries]
    if missing:
        raise ExplorerError(f"{len(missing)} quer(y/ies) of the split are not among the judgments, e.g. {missing[0]!r}")
    return Judgments({q: judgments.queries[q] for q in query_ids}, {q: judgments.qrels[q] for q in query_ids},
                     f"{judgments.source} ({label})".strip(), list(judgments.notes))
