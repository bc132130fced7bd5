"""Experiments: many named configurations over one set of judged queries, with intervals and significance.

Every configuration runs through :func:`~bge_explorer.evaluation.evaluate.evaluate` on one session, so
configurations sharing a model, chunking and precision encode the corpus once (the session's cache), an
instruction change re-encodes only the queries, and reranker scores are reused across top n.

Per configuration and metric (what a user gets: after its reranker when it has one):

- ``mean`` and a 95% percentile-bootstrap interval of the mean over queries (``ci_low``, ``ci_high``; seeded);
- ``judged@10``: the share of the top 10 documents that have a judgment (any grade), averaged over queries:
  how far the figures can be trusted when the judgments are sparse;
- ``ndcg_condensed@10``: nDCG@10 of the condensed list, unjudged documents removed (Sakai 2007), which does
  not punish a configuration for finding documents nobody judged;
- against the baseline: the queries it wins, ties and loses (``wins``, ``ties``, ``losses``), the paired
  randomisation test's ``p_value``
  (:func:`~bge_explorer.evaluation.significance.paired_test`) and ``p_holm``, Holm-Bonferroni adjusted over
  all configurations compared with the baseline on that metric.

A configuration file (YAML or JSON) lists named configurations; a list value on a field expands into one
configuration per value (a grid over every listed field). ``modes`` takes a list of names as one value;
a list of lists (or of ``a+b`` strings) is a sweep. ``weights`` sweeps over a list of mappings::

    baseline: minilm
    configurations:
      - name: minilm
        model: all-MiniLM-L6-v2
        instruction: ""
      - name: minilm-instruction
        model: all-MiniLM-L6-v2
        instruction: ["Represent this sentence for searching relevant passages: ", "query: "]
      - name: bm25
        model: null
        modes: [bm25]
      - name: hybrid
        modes: [dense, bm25]
        fusion: grid          # every normalisation x combination (and RRF): fusion.GRID
        weights: {step: 0.1}  # (0, 1), (0.1, 0.9), ..., (1, 0)

Fusion and weight sweeps cost no encodes (each re-scores the candidates), so a plan may hold up to
:data:`MAX_SWEEP` configurations when no more than :data:`MAX_CONFIGURATIONS` differ in anything else.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from bge_explorer.data.qrels import Judgments, Missing
from bge_explorer.errors import ConfigError, ExplorerError
from bge_explorer.evaluation.evaluate import EvaluationResult, StageProgress, evaluate
from bge_explorer.evaluation.metrics import score_rankings
from bge_explorer.evaluation.significance import N_RESAMPLES, bootstrap_interval, paired_test
from bge_explorer.retrieval.config import HYBRID, RetrievalConfig
from bge_explorer.retrieval.fusion import GRID
from bge_explorer.session import Session

METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100")
MAX_CONFIGURATIONS = 12  # configurations that differ in more than their fusion and weights
MAX_SWEEP = 120  # configurations in all, when the rest differ only in fusion and weights (each re-scores candidates)
WEIGHT_STEPS = 20  # at most 1 / step in a weight grid
JUDGED_K = 10


# -- statistics ---------------------------------------------------------------------------------------------

def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order: with p sorted ascending, the i-th (1-based) of m
    gets ``max over j <= i of min(1, (m - j + 1) * p_(j))``."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()


def judged_at(rankings: Sequence[Sequence[str]], qrels: Sequence[Mapping[str, int]], k: int = JUDGED_K
              ) -> np.ndarray:
    """(queries,) share of each ranking's first k documents that have a judgment of any grade (missing ranks
    count as unjudged)."""
    return np.array([sum(d in judged for d in list(ranked)[:k]) / k for ranked, judged in zip(rankings, qrels)])


def wins_ties_losses(values: np.ndarray, baseline: np.ndarray, tie: float = 1e-9) -> tuple[int, int, int]:
    """(queries,) per-query scores of a configuration and of the baseline -> how many queries it wins (higher by
    more than ``tie``), ties and loses."""
    delta = np.asarray(values, np.float64) - np.asarray(baseline, np.float64)
    return int((delta > tie).sum()), int((np.abs(delta) <= tie).sum()), int((delta < -tie).sum())


def condensed_ndcg(rankings: Sequence[Sequence[str]], qrels: Sequence[Mapping[str, int]], k: int = 10
                   ) -> np.ndarray:
    """(queries,) nDCG@k of the condensed rankings: unjudged documents removed, the judged ones kept in order."""
    condensed = [[d for d in ranked if d in judged] for ranked, judged in zip(rankings, qrels)]
    return score_rankings(condensed, qrels, [k])[f"ndcg@{k}"].to_numpy()


# -- configurations -------------------------------------------------------------------------------------------

def _sweeps(field: str, value: Any) -> bool:
    """Whether a field's value in a configuration file is a list of alternatives (a sweep)."""
    if not isinstance(value, list):
        return False
    if field == "modes":
        return any(isinstance(v, (list, tuple)) or (isinstance(v, str) and "+" in v) for v in value)
    return True


def _value_label(field: str, value: Any) -> str:
    """How a swept value shows in a configuration's name: instructions quoted (they end in spaces), lists joined."""
    if isinstance(value, (list, tuple)):
        return "+".join(map(str, value))
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return json.dumps(value, ensure_ascii=False) if field == "instruction" else str(value)


def weight_grid(modes: Sequence[str], step: float, where: str = "weights") -> list[dict[str, float]]:
    """Every ``{mode: w}`` with each w a multiple of ``step`` and the weights summing to 1 (the simplex grid):
    for two modes and step 0.1 the 11 pairs (0, 1), (0.1, 0.9), ..., (1, 0) that OpenSearch's hybrid optimiser
    tries. A weight of 0 leaves a mode out of the fusion."""
    try:
        step = float(step)
    except (TypeError, ValueError):
        raise ConfigError(where, f"step must be a number, not {step!r}") from None
    n = round(1 / step) if step > 0 else 0
    if not 1 <= n <= WEIGHT_STEPS or abs(n * step - 1) > 1e-9:
        raise ConfigError(where, f"step must divide 1 into at most {WEIGHT_STEPS} parts (0.1, 0.25, 0.5), "
                                 f"not {step:g}")
    if len(modes) < 2:
        raise ConfigError(where, "a weight grid needs two or more modes, e.g. modes: [dense, bm25]")
    return [{m: round(i / n, 10) for m, i in zip(modes, parts)}
            for parts in itertools.product(range(n + 1), repeat=len(modes)) if sum(parts) == n]


def _grids(fields: dict[str, Any], defaults: Mapping[str, Any], at: str) -> dict[str, Any]:
    """Shorthands for the hybrid optimiser's sweep: ``fusion: grid`` is every fusion of
    :data:`~bge_explorer.retrieval.fusion.GRID`; ``weights: {step: 0.1}`` is :func:`weight_grid` over the
    entry's modes (which must be named)."""
    if fields.get("fusion") == "grid":
        fields["fusion"] = list(GRID)
    weights = fields.get("weights")
    if isinstance(weights, Mapping) and set(weights) == {"step"}:
        modes = fields.get("modes", defaults["modes"])
        if _sweeps("modes", modes) or not isinstance(modes, list) or HYBRID in modes:
            raise ConfigError(f"{at}.weights", "a weight grid needs one list of named modes, e.g. "
                                               "modes: [dense, bm25]")
        fields["weights"] = weight_grid(modes, weights["step"], f"{at}.weights")
    return fields


def expand(entries: Sequence[Mapping[str, Any]], *, where: str = "configurations",
           base: RetrievalConfig | None = None) -> list[RetrievalConfig]:
    """Named configuration entries -> configurations, grids expanded; each gets its ``name`` as label (a swept
    one ``name[field=value,...]``). Fields an entry leaves out come from ``base`` (default: the defaults).
    Raises ConfigError naming the entry and field at fault."""
    defaults = (base or RetrievalConfig()).to_dict()
    if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)) or not entries:
        raise ConfigError(where, "must be a non-empty list of configurations")
    out: list[RetrievalConfig] = []
    for i, entry in enumerate(entries):
        at = f"{where}[{i}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(at, f"must be a mapping of fields, not {type(entry).__name__}")
        fields = _grids(dict(entry), defaults, at)
        name = str(fields.pop("name", "") or fields.get("label", "") or f"config {i + 1}")
        fields.pop("label", None)
        swept = [f for f, v in fields.items() if _sweeps(f, v)]
        for values in itertools.product(*(fields[f] for f in swept)):
            one = {**fields, **dict(zip(swept, values))}
            suffix = ",".join(f"{f}={_value_label(f, v)}" for f, v in zip(swept, values))
            label = f"{name}[{suffix}]" if suffix else name
            try:
                out.append(RetrievalConfig.from_dict({**defaults, **one, "label": label}, where=at))
            except ConfigError as exc:
                raise ConfigError(f"{at}.{exc.field}" if exc.field != at else at, exc.reason) from None
    labels = [c.label for c in out]
    doubled = sorted({label for label in labels if labels.count(label) > 1})
    if doubled:
        raise ConfigError(where, f"names must be unique; repeated: {', '.join(doubled)}")
    return out


@dataclasses.dataclass
class ExperimentPlan:
    """What an experiment runs: the configurations and the name of the baseline (default: the first)."""

    configurations: list[RetrievalConfig]
    baseline: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "experiment",
                  base: RetrievalConfig | None = None) -> ExperimentPlan:
        if not isinstance(data, Mapping):
            raise ConfigError(where, "must be a mapping with a 'configurations' list")
        unknown = set(data) - {"configurations", "baseline"}
        if unknown:
            raise ConfigError(where, f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                                     "the keys are configurations, baseline")
        configurations = expand(data.get("configurations") or [], where="configurations", base=base)
        baseline = data.get("baseline") or configurations[0].label
        return cls(configurations, str(baseline)).checked()

    @classmethod
    def load(cls, path: str | Path, *, base: RetrievalConfig | None = None) -> ExperimentPlan:
        """From a YAML or JSON file (JSON is YAML)."""
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(path.name, f"is not valid YAML or JSON: {str(exc)[:200]}") from None
        return cls.from_dict(data, where=path.name, base=base)

    def workload(self, queries: int) -> dict[str, int]:
        """What running the plan costs, before it runs: configurations, corpus encodes (one per distinct model,
        chunking and precision; the session's cache may hold some already), query encodes, and at most how many
        (query, chunk) pairs the cross-encoders score (the cache removes pairs scored before)."""
        encodes = {(c.model, c.chunk_size, c.overlap, c.precision) for c in self.configurations if c.needs_model}
        reranked: dict[str, int] = {}
        for c in self.configurations:
            if c.reranker:
                reranked[c.reranker] = max(reranked.get(c.reranker, 0), c.top_n)
        return {"configurations": len(self.configurations), "corpus_encodes": len(encodes),
                "query_encodes": queries * sum(1 for c in self.configurations if c.needs_model),
                "reranked_pairs_at_most": queries * sum(reranked.values())}

    def seconds(self, queries: int, chunks: int) -> tuple[float, list[str]]:
        """Roughly how long the plan takes, from the speeds the models measured in this process
        (:mod:`~bge_explorer.models.meter`): corpus encodes of ``chunks`` passages (counted as if nothing were
        cached), query encodes and reranked pairs. -> (seconds, names of models with no speed measured yet)."""
        from bge_explorer.models import meter

        unknown: list[str] = []

        def cost(kind: str, model: str, items: int) -> float:
            rate = meter.seconds_per_item(kind, model)
            if rate is None:
                unknown.append(model)
                return 0.0
            return rate * items

        total = sum(cost("passage", model, chunks) for model, *_ in
                    {(c.model, c.chunk_size, c.overlap, c.precision) for c in self.configurations if c.needs_model})
        total += sum(cost("query", c.model, queries) for c in self.configurations if c.needs_model)
        reranked: dict[str, int] = {}
        for c in self.configurations:
            if c.reranker:
                reranked[c.reranker] = max(reranked.get(c.reranker, 0), c.top_n)
        total += sum(cost("pair", name, queries * n) for name, n in reranked.items())
        return total, sorted(set(unknown))

    def checked(self, max_configurations: int = MAX_CONFIGURATIONS, max_sweep: int = MAX_SWEEP) -> ExperimentPlan:
        """Raises ConfigError when the baseline is not a configuration, when more than ``max_configurations``
        differ in more than fusion and weights, or when there are more than ``max_sweep`` in all."""
        names = [c.label for c in self.configurations]
        if self.baseline not in names:
            raise ConfigError("baseline", f"{self.baseline!r} is not one of the configurations: {', '.join(names)}")
        costly = {json.dumps({f: v for f, v in c.to_dict().items() if f not in ("fusion", "weights", "label")},
                             sort_keys=True, default=str) for c in self.configurations}
        if len(costly) > max_configurations:
            raise ConfigError("configurations", f"{len(costly)} configurations that differ in more than fusion and "
                                                f"weights after expanding the grids, over the limit of "
                                                f"{max_configurations}")
        if len(self.configurations) > max_sweep:
            raise ConfigError("configurations", f"{len(self.configurations)} configurations after expanding the "
                                                f"grids, over the limit of {max_sweep}")
        return self


# -- running ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class ExperimentResult:
    """``results``: name -> :class:`EvaluationResult`, in plan order. ``summary``: one row per (configuration,
    metric) with mean, ci_low, ci_high, p_value and p_holm against the baseline (NaN for the baseline)."""

    plan: ExperimentPlan
    results: dict[str, EvaluationResult]
    summary: pd.DataFrame
    extras: dict[str, dict[str, float]]  # name -> judged@10, ndcg_condensed@10
    metrics: tuple[str, ...]

    def table(self, metric: str = "ndcg@10") -> pd.DataFrame:
        """One row per configuration: mean with its interval, p and Holm p against the baseline, the queries it
        wins, ties and loses against the baseline, judged@10."""
        rows = self.summary[self.summary["metric"] == metric].set_index("name")
        out = rows[["mean", "ci_low", "ci_high", "p_value", "p_holm", "wins", "ties", "losses"]].copy()
        out["judged@10"] = [self.extras[n]["judged@10"] for n in out.index]
        out["ndcg_condensed@10"] = [self.extras[n]["ndcg_condensed@10"] for n in out.index]
        return out

    def best(self, metric: str = "ndcg@10") -> tuple[str, float, float]:
        """(name, margin over the baseline, Holm-adjusted p) of the configuration with the highest mean."""
        table = self.table(metric)
        name = str(table["mean"].idxmax())
        margin = float(table.at[name, "mean"] - table.at[self.plan.baseline, "mean"])
        return name, margin, float(table.at[name, "p_holm"]) if name != self.plan.baseline else float("nan")

    def per_query(self) -> pd.DataFrame:
        """One row per (configuration, query): name, query id, text, and the metrics."""
        frames = []
        for name, result in self.results.items():
            frame = result.final[list(self.metrics)].reset_index()
            frame.insert(0, "name", name)
            frame.insert(2, "query", result.queries)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def to_dict(self) -> dict:
        """The JSON of ``experiment``: baseline and, per configuration, name, config, metrics (mean, ci_low,
        ci_high), judged@10, ndcg_condensed@10 and vs_baseline (p_value, p_holm per metric)."""
        configurations = []
        for name, result in self.results.items():
            rows = self.summary[self.summary["name"] == name].set_index("metric")
            entry = {
                "name": name, "config": result.config["retrieval_config"], "resolved": result.config,
                "metrics": {m: {k: float(rows.at[m, k]) for k in ("mean", "ci_low", "ci_high")}
                            for m in self.metrics},
                **self.extras[name],
                "vs_baseline": None if name == self.plan.baseline else {
                    m: {"p_value": float(rows.at[m, "p_value"]), "p_holm": float(rows.at[m, "p_holm"]),
                        **{k: int(rows.at[m, k]) for k in ("wins", "ties", "losses")}}
                    for m in self.metrics},
                "timings": result.timings, "notes": result.notes,
            }
            configurations.append(entry)
        return {"baseline": self.plan.baseline, "queries": len(next(iter(self.results.values())).query_ids),
                "metrics": list(self.metrics), "configurations": configurations}


def run_experiment(session: Session, judgments: Judgments, plan: ExperimentPlan, *,
                   metrics: Sequence[str] = METRICS, progress: StageProgress | None = None,
                   missing: Missing = "raise", n_resamples: int = N_RESAMPLES, seed: int = 0,
                   on_result: Callable[[str, EvaluationResult], None] | None = None) -> ExperimentResult:
    """Evaluate every configuration of ``plan`` on ``judgments`` over the session's corpus, then summarise.

    ``progress(stage, done, total)`` gets stages tagged with the configuration's name; ``on_result`` is
    called as each configuration finishes."""
    results: dict[str, EvaluationResult] = {}
    for config in plan.configurations:
        tagged = ((lambda stage, done, total, _n=config.label: progress(f"{_n}: {stage}", done, total))
                  if progress else None)
        result = evaluate(session, judgments, config, progress=tagged, missing=missing)
        missing_metrics = [m for m in metrics if m not in result.final.columns]
        if missing_metrics:
            raise ExplorerError(f"no metric {', '.join(missing_metrics)}; the metrics are "
                                f"{', '.join(result.final.columns)}")
        results[config.label] = result
        if on_result:
            on_result(config.label, result)
    return summarise(plan, results, judgments, metrics, n_resamples=n_resamples, seed=seed)


def summarise(plan: ExperimentPlan, results: Mapping[str, EvaluationResult], judgments: Judgments,
              metrics: Sequence[str] = METRICS, *, n_resamples: int = N_RESAMPLES, seed: int = 0
              ) -> ExperimentResult:
    """Intervals, judged@10, condensed nDCG and Holm-adjusted tests against the baseline."""
    base = results[plan.baseline]
    rows, extras = [], {}
    for name, result in results.items():
        if result.query_ids != base.query_ids:
            raise ExplorerError(f"{name} was evaluated on other queries than the baseline {plan.baseline}")
        final_rankings = result.reranked_rankings or result.rankings
        qrels = [judgments.qrels[q] for q in result.query_ids]
        extras[name] = {"judged@10": float(judged_at(final_rankings, qrels).mean()),
                        "ndcg_condensed@10": float(condensed_ndcg(final_rankings, qrels).mean())}
        for metric in metrics:
            values = result.final[metric].to_numpy()
            low, high = bootstrap_interval(values, n_resamples=n_resamples, seed=seed)
            p = (float("nan") if name == plan.baseline else
                 paired_test(base.final[metric].to_numpy(), values, n_resamples=n_resamples, seed=seed).p_value)
            wins, ties, losses = wins_ties_losses(values, base.final[metric].to_numpy())
            rows.append({"name": name, "metric": metric, "mean": float(values.mean()), "ci_low": low,
                         "ci_high": high, "p_value": p, "wins": wins, "ties": ties, "losses": losses})
    summary = pd.DataFrame(rows)
    summary["p_holm"] = np.nan
    for metric in metrics:
        tested = (summary["metric"] == metric) & (summary["name"] != plan.baseline)
        if tested.any():
            summary.loc[tested, "p_holm"] = holm(summary.loc[tested, "p_value"].tolist())
    return ExperimentResult(plan, dict(results), summary, extras, tuple(metrics))
