"""A/B comparison of two evaluated configurations on the same queries.

For every metric: the means of A and B, the difference B - A, a two-sided paired randomisation
(sign-flip) test of that difference (exact when at most 16 queries differ, else 10,000 random flips),
a 95% percentile-bootstrap interval of the mean difference, and wins / ties / losses of B against A
per query. Each configuration is compared on what a user would get from it: after reranking when it
has a reranker, else retrieval only.
"""
from __future__ import annotations

import dataclasses
import html
from typing import Sequence

import numpy as np
import pandas as pd

from bge_explorer.errors import ExplorerError
from bge_explorer.evaluation.evaluate import EvaluationResult, StageProgress, evaluate
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.data.qrels import Judgments, Missing
from bge_explorer.session import Session

N_RESAMPLES = 10_000
EXACT_MAX = 16  # up to this many non-zero differences the randomisation test enumerates all sign flips
TIE = 1e-9
KEY_METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@10")


def bootstrap_interval(values: Sequence[float], *, n_resamples: int = N_RESAMPLES, seed: int = 0,
                       rng: np.random.Generator | None = None, level: float = 0.95) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``values`` (n,): resample n values with replacement
    ``n_resamples`` times (from ``rng``, else a generator seeded with ``seed``) and take the
    ((1 - level) / 2, (1 + level) / 2) quantiles of the resampled means."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError("values must be a non-empty 1-D array")
    rng = rng if rng is not None else np.random.default_rng(seed)
    means, done, block = [], 0, max(1, 2_000_000 // len(x))
    while done < n_resamples:
        size = min(block, n_resamples - done)
        means.append(x[rng.integers(0, len(x), size=(size, len(x)))].mean(axis=1))
        done += size
    low, high = np.percentile(np.concatenate(means), [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


@dataclasses.dataclass
class PairedTest:
    mean_a: float
    mean_b: float
    diff: float
    p_value: float
    ci_low: float
    ci_high: float
    wins: int
    ties: int
    losses: int


def paired_test(a: Sequence[float], b: Sequence[float], *, n_resamples: int = N_RESAMPLES,
                seed: int = 0) -> PairedTest:
    """Paired two-sided randomisation test of mean(b - a), with a 95% bootstrap interval.

    p = share of sign flips of the per-query differences whose |mean| reaches the observed |mean|
    (exact enumeration for at most EXACT_MAX non-zero differences, else ``n_resamples`` random flips
    counting the observed one). Identical inputs give p = 1 and the interval [0, 0].
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError("a and b must be non-empty 1-D arrays of the same length")
    d = b - a
    d[np.abs(d) <= TIE] = 0.0
    m = len(d)
    observed = d.mean()
    nonzero = d[d != 0]
    rng = np.random.default_rng(seed)
    threshold = abs(observed) - 1e-12
    if len(nonzero) == 0:
        p = 1.0
    elif len(nonzero) <= EXACT_MAX:
        signs = 1 - 2 * ((np.arange(2 ** len(nonzero))[:, None] >> np.arange(len(nonzero))) & 1)
        p = float(np.mean(np.abs(signs @ nonzero) / m >= threshold))
    else:
        extreme, done, block = 0, 0, max(1, 2_000_000 // m)
        while done < n_resamples:
            size = min(block, n_resamples - done)
            signs = rng.choice(np.array([-1.0, 1.0]), size=(size, m))
            extreme += int(np.sum(np.abs(signs @ d) / m >= threshold))
            done += size
        p = (extreme + 1) / (n_resamples + 1)
    low, high = bootstrap_interval(d, n_resamples=n_resamples, rng=rng)
    return PairedTest(float(a.mean()), float(b.mean()), float(observed), float(min(p, 1.0)), float(low), float(high),
                      int(np.sum(d > 0)), int(np.sum(d == 0)), int(np.sum(d < 0)))


@dataclasses.dataclass
class Comparison:
    """``table``: one row per metric (A, B, diff = B - A, p_value, ci_low, ci_high, wins, ties, losses;
    wins are queries where B beats A). ``per_query``: query id, text, and each metric for A and B."""

    label_a: str
    label_b: str
    table: pd.DataFrame
    per_query: pd.DataFrame

    def differences(self, metric: str = "ndcg@10") -> pd.Series:
        """Per-query B - A for ``metric``, indexed by query id."""
        if f"A {metric}" not in self.per_query:
            raise ExplorerError(f"no metric {metric!r}; choose one of {', '.join(self.table.index)}")
        q = self.per_query.set_index("query_id")
        return q[f"B {metric}"] - q[f"A {metric}"]

    def figure(self, metric: str = "ndcg@10"):
        """A plotly bar chart of per-query B - A for ``metric``, sorted, coloured by which side won."""
        import plotly.graph_objects as go

        diff = self.differences(metric)
        q = self.per_query.set_index("query_id")
        order = np.argsort(-diff.to_numpy(), kind="stable")
        ids = diff.index[order]
        values = diff.to_numpy()[order]
        colours = np.where(values > TIE, "#2e7d32", np.where(values < -TIE, "#c62828", "#9e9e9e"))
        hover = [f"{html.escape(str(qid), quote=False)}: {html.escape(str(q.at[qid, 'query'])[:120], quote=False)}"
                 f"<br>A {q.at[qid, f'A {metric}']:.3f}  B {q.at[qid, f'B {metric}']:.3f}" for qid in ids]
        row = self.table.loc[metric]
        fig = go.Figure(go.Bar(x=np.arange(1, len(values) + 1), y=values, marker_color=colours.tolist(),
                               hovertext=hover, hoverinfo="text"))
        title = (f"{metric}: B - A per query (mean {row['diff']:+.4f}, p = {row['p_value']:.3g}; "
                 f"B better on {row['wins']}, worse on {row['losses']}, tied on {row['ties']})")
        fig.update_layout(
            title=dict(text=title),
            xaxis_title="queries, sorted by difference", yaxis_title=f"{metric} of B minus A",
            margin=dict(l=60, r=20, t=60, b=50), showlegend=False, bargap=0)
        return fig

    def to_dict(self) -> dict:
        return {"a": self.label_a, "b": self.label_b,
                "metrics": {metric: {k: (int(v) if k in ("wins", "ties", "losses") else float(v))
                                     for k, v in row.items()} for metric, row in self.table.iterrows()}}


def compare(a: EvaluationResult, b: EvaluationResult, *, metrics: Sequence[str] | None = None,
            n_resamples: int = N_RESAMPLES, seed: int = 0) -> Comparison:
    """Compare two results on the same queries (what each gives after its reranker, if any)."""
    if a.query_ids != b.query_ids:
        raise ExplorerError("A and B were evaluated on different queries; evaluate both on the same judgments")
    fa, fb = a.final, b.final
    metrics = list(metrics) if metrics is not None else [c for c in fa.columns if c in fb.columns]
    rows = {}
    for metric in metrics:
        rows[metric] = dataclasses.asdict(paired_test(fa[metric].to_numpy(), fb[metric].to_numpy(),
                                                      n_resamples=n_resamples, seed=seed))
    table = pd.DataFrame.from_dict(rows, orient="index").rename(columns={"mean_a": "A", "mean_b": "B"})
    table.index.name = "metric"
    per_query = pd.DataFrame({"query_id": a.query_ids, "query": a.queries})
    for metric in metrics:
        per_query[f"A {metric}"] = fa[metric].to_numpy()
        per_query[f"B {metric}"] = fb[metric].to_numpy()
    return Comparison(a.label or "A", b.label or "B", table, per_query)


@dataclasses.dataclass
class ABResult:
    a: EvaluationResult
    b: EvaluationResult
    comparison: Comparison

    def to_dict(self) -> dict:
        return {"a": self.a.to_dict(), "b": self.b.to_dict(), "comparison": self.comparison.to_dict()}


def without_instruction(config: RetrievalConfig) -> tuple[RetrievalConfig, RetrievalConfig]:
    """The most common question: the same configuration with the model's instruction (A) and without (B)."""
    return config.with_(instruction=None, label=""), config.with_(instruction="", label="")


def run_ab(session: Session, judgments: Judgments, config_a: RetrievalConfig, config_b: RetrievalConfig, *,
           progress: StageProgress | None = None, missing: Missing = "raise", n_resamples: int = N_RESAMPLES,
           seed: int = 0) -> ABResult:
    """Evaluate A and B on the same queries and compare them. Both embed through ``session.cache``, so
    configurations sharing a model (and chunking) embed the corpus once."""

    def tagged(tag: str) -> StageProgress | None:
        return (lambda stage, done, total: progress(f"{tag}: {stage}", done, total)) if progress else None

    a = evaluate(session, judgments, config_a, progress=tagged("A"), missing=missing)
    b = evaluate(session, judgments, config_b, progress=tagged("B"), missing=missing)
    if a.label == b.label:
        a.config["label"], b.config["label"] = f"A: {a.label}", f"B: {b.label}"
    return ABResult(a, b, compare(a, b, n_resamples=n_resamples, seed=seed))
