"""The proof: base against tuned on the held-out queries only, through the experiment runner.

An :class:`~bge_explorer.evaluation.experiment.ExperimentPlan` of ``base`` (the baseline) and ``tuned`` (the
same configuration with the tuned model, its pooling and trained instruction), and with a reranker also
``base + reranker`` and ``tuned + reranker``; :func:`~bge_explorer.evaluation.experiment.run_experiment` gives
per configuration and metric the mean with its 95% bootstrap interval, and against the baseline the paired
randomisation test's p and Holm's adjusted p. The held-out queries were never seen in training (see
:mod:`bge_explorer.tuning.split`), so a gain there is a gain on new queries of the same kind.
"""
from __future__ import annotations

from bge_explorer.data.qrels import Judgments
from bge_explorer.evaluation.experiment import METRICS, ExperimentPlan, ExperimentResult, run_experiment
from bge_explorer.evaluation.evaluate import StageProgress
from bge_explorer.evaluation.significance import N_RESAMPLES
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.tuning.split import HeldOutSplit, subset

BASE, TUNED = "base", "tuned"


def comparison_plan(base: RetrievalConfig, tuned: RetrievalConfig, reranker: str | None = None) -> ExperimentPlan:
    """``base`` vs ``tuned`` (labels :data:`BASE`, :data:`TUNED`), each also reranked by ``reranker`` when given."""
    configurations = [base.with_(label=BASE, reranker=None), tuned.with_(label=TUNED, reranker=None)]
    if reranker:
        configurations += [c.with_(label=f"{c.label} + reranker", reranker=reranker) for c in configurations]
    return ExperimentPlan(configurations, BASE).checked()


def held_out_judgments(judgments: Judgments, split: HeldOutSplit) -> Judgments:
    return subset(judgments, split.held_out, "held out")


def prove(session, judgments: Judgments, split: HeldOutSplit, plan: ExperimentPlan, *,
          progress: StageProgress | None = None, n_resamples: int = N_RESAMPLES, seed: int = 0) -> ExperimentResult:
    """Run ``plan`` on the held-out queries of ``split`` over the session's corpus."""
    return run_experiment(session, held_out_judgments(judgments, split), plan, metrics=METRICS, progress=progress,
                          n_resamples=n_resamples, seed=seed)
