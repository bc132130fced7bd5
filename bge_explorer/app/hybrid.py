"""The Search tab's retrieval modes: weight sliders, per-mode columns, opt-in modes (ColBERT), "Why this match".

Plain functions over an engine :class:`~bge_explorer.session.Session` (testable without a browser);
:mod:`bge_explorer.app.explorer` wires them. Modes, their labels and default weights come from the mode
registry, so a new mode shows up here without a change. User text, token strings included (a corpus can
hold ``<script>``), reaches the page only as Dataframe text cells, or as HTML / plotly labels escaped with
:func:`bge_explorer.app.render.esc`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bge_explorer.app.render import esc, label, mib, plot_text
from bge_explorer.errors import ExplorerError
from bge_explorer.retrieval import modes as registry
from bge_explorer.retrieval.explain import explain
from bge_explorer.retrieval.planner import Plan

LEXICAL_COLUMNS = ["token", "in", "query weight", "chunk weight", "contribution"]
COLBERT_COLUMNS = ["query token", "best chunk token", "chunk position", "similarity"]
BM25_COLUMNS = ["term", "contribution"]
OTHER_WEIGHT = 0.2  # slider default of a mode that is not one of BGE-M3's scores


def default_weights() -> dict[str, float]:
    """The weight sliders' defaults: M3's weights for its scores, 0.2 for the others."""
    return {name: mode.m3_weight if mode.m3_weight is not None else OTHER_WEIGHT
            for name, mode in registry.REGISTRY.items()}


def mode_choices() -> list[str]:
    return [*registry.names(), "hybrid"]


def short_label(name: str) -> str:
    return registry.get(name).label.split(" (")[0]


def describe_plan(plan: Plan) -> str:
    """Plain text: "Dense retrieval" or "hybrid, rrf fusion of Dense 1 + BM25 1: rank and score are the fused ones"."""
    if plan.fusion is None:
        return f"{short_label(plan.modes[0])} retrieval"
    mix = " + ".join(f"{short_label(m)} {plan.weights[m]:g}" for m in plan.modes)
    return f"hybrid, {plan.fusion} fusion of {mix}: rank and score are the fused ones"


def mode_columns(table: pd.DataFrame) -> pd.DataFrame:
    """``<mode> score`` / ``<mode> rank`` for each mode scored in ``table``, except for plain dense retrieval."""
    scored = [m for m in registry.names() if f"{m}_score" in table]
    out = pd.DataFrame(index=table.index)
    if scored == ["dense"]:
        return out
    for m in scored:
        out[f"{short_label(m)} score"] = table[f"{m}_score"].astype(float).round(4)
        out[f"{short_label(m)} rank"] = table[f"{m}_rank"].astype(int)
    return out


# ------------------------------------------------------------------------------------------------- opt-in modes

def retrieval_info(session) -> str:
    """HTML: the modes the current index serves, why others are not, memory per built part, and the opt-in
    modes' memory (estimated before they are switched on, in use after)."""
    if session.current is None:
        return ("Build the index to choose a retrieval mode: "
                + ", ".join(short_label(m) for m in registry.names()) + ", or a hybrid of them.")
    state = session.index_state()
    parts = [f"Model <b>{label(state.model_name)}</b> serves: "
             f"{', '.join(short_label(m) for m in state.available_modes())}."]
    for name, mode in registry.REGISTRY.items():
        reason = mode.unavailable(state)
        if reason:
            parts.append(esc(reason) + ".")
    memory = state.memory()
    if memory:
        parts.append("Memory: " + ", ".join(f"{short_label(m)} {mib(v)}" for m, v in memory.items()) + ".")
    for name, mode in registry.REGISTRY.items():
        if mode.in_hybrid or mode.unavailable(state):
            continue
        if state.has(name):
            parts.append(f"{short_label(name)} is <b>on</b>: {mib(memory.get(name, 0))} in use.")
        else:
            parts.append(f"{short_label(name)} is off. Switching it on keeps {esc(mode.description)}: about "
                         f"<b>{mib(state.estimate_bytes(name))}</b>.")
    return " ".join(parts)


def toggle(session, name: str, on: bool, progress=None) -> tuple[bool, str]:
    """Switch an opt-in mode on (build its part) or off (free it). -> (switch value, info HTML)."""
    if session.current is None:
        return False, "Build the index first."
    state = session.index_state()
    reason = registry.get(name).unavailable(state)
    if reason:
        return False, f"{esc(reason)}. " + retrieval_info(session)
    if on:
        estimate = state.estimate_bytes(name)
        state.part(name, progress)
        return True, f"{short_label(name)} on (estimated {mib(estimate)}). " + retrieval_info(session)
    state.drop(name)
    return False, f"{short_label(name)} off: its memory was freed. " + retrieval_info(session)


# ------------------------------------------------------------------------------------------ why this match

def lexical_table(lexical) -> pd.DataFrame:
    """One table: shared tokens (with their contribution to the sparse score) first, then the heaviest tokens
    of the query only and of the chunk only."""
    if lexical is None:
        return pd.DataFrame(columns=LEXICAL_COLUMNS)
    shared = set(lexical.overlap["token_id"])
    rows = [[t, "both", round(q, 4), round(p, 4), round(c, 4)] for t, q, p, c in
            zip(lexical.overlap["token"], lexical.overlap["query_weight"], lexical.overlap["passage_weight"],
                lexical.overlap["contribution"])]
    rows += [[t, "query", round(w, 4), None, None] for i, t, w in
             zip(lexical.query["token_id"], lexical.query["token"], lexical.query["weight"]) if i not in shared]
    rows += [[t, "chunk", None, round(w, 4), None] for i, t, w in
             zip(lexical.passage["token_id"], lexical.passage["token"], lexical.passage["weight"]) if i not in shared]
    return pd.DataFrame(rows, columns=LEXICAL_COLUMNS)


def colbert_table(colbert) -> pd.DataFrame:
    if colbert is None:
        return pd.DataFrame(columns=COLBERT_COLUMNS)
    t = colbert.table()
    return pd.DataFrame({"query token": t["query_token"], "best chunk token": t["best_passage_token"],
                         "chunk position": t["passage_position"].astype(int), "similarity": t["similarity"].round(4)})


def colbert_figure(colbert, max_columns: int = 160):
    """Heat map of query token x chunk token similarities, each query token's best match marked. Token labels
    are escaped and placed by position (repeated tokens stay separate columns)."""
    import plotly.graph_objects as go

    if colbert is None:
        return None
    sims = np.asarray(colbert.similarity, dtype=np.float64)
    n_cols = min(sims.shape[1], max_columns)
    sims = sims[:, :n_cols]
    q_labels = [plot_text(t) for t in colbert.query_tokens]
    p_labels = [plot_text(t) for t in colbert.passage_tokens[:n_cols]]
    hover = [[f"{q_labels[i]} → {p_labels[j]} (#{j}): {sims[i, j]:.3f}" for j in range(n_cols)]
             for i in range(len(q_labels))]
    fig = go.Figure(go.Heatmap(z=sims, x=list(range(n_cols)), y=list(range(len(q_labels))), text=hover,
                               hovertemplate="%{text}<extra></extra>", colorscale="Viridis",
                               colorbar=dict(title=dict(text="similarity"))))
    best = [(i, int(j)) for i, j in enumerate(colbert.best) if j < n_cols]
    fig.add_trace(go.Scatter(x=[j for _, j in best], y=[i for i, _ in best], mode="markers", name="best match",
                             marker=dict(symbol="square-open", size=10, color="#ff4136", line=dict(width=2)),
                             hoverinfo="skip"))
    more = f" (first {n_cols} of {len(colbert.passage_tokens)} chunk tokens)" if n_cols < len(colbert.passage_tokens) \
        else ""
    fig.update_layout(
        title=dict(text=f"ColBERT: query token → chunk token similarity; score {colbert.score:.4f}{more}"),
        xaxis=dict(tickmode="array", tickvals=list(range(n_cols)), ticktext=p_labels, tickangle=-60,
                   title=dict(text="chunk tokens")),
        yaxis=dict(tickmode="array", tickvals=list(range(len(q_labels))), ticktext=q_labels, autorange="reversed",
                   title=dict(text="query tokens")),
        height=max(260, 60 + 22 * len(q_labels) + 80), margin=dict(l=90, r=20, t=50, b=90), showlegend=False)
    return fig


def explain_view(session, ranking, rank: int) -> tuple[str, pd.DataFrame, Any, pd.DataFrame, pd.DataFrame]:
    """"Why this match" for the result at retrieval (fused) ``rank`` of ``ranking``:
    (summary HTML, lexical table, ColBERT heat map or None, ColBERT alignment table, BM25 terms)."""
    if not 1 <= rank <= len(ranking.rows):
        raise ExplorerError(f"Choose a result between 1 and {len(ranking.rows)}.")
    row = int(ranking.rows[rank - 1])
    chunk = session.chunks.table.iloc[row]
    why = explain(session.index_state(), ranking.query, row, instruction=ranking.instruction)
    lexical, colbert, bm25 = why.lexical, why.colbert, why.bm25
    parts = [f"Why <b>{label(chunk['doc_id'])}</b> · chunk {int(chunk['chunk'])} (rank {rank}) matched "
             f"“{esc(ranking.query)}”:"]
    if lexical is not None:
        parts.append(f"M3 lexical (sparse) score {lexical.score:.4f} = sum of the shared tokens' contributions "
                     f"({len(lexical.overlap)} shared);")
        parts.append(f"ColBERT score {colbert.score:.4f} = mean of each query token's best similarity;")
    else:
        parts.append("M3 lexical weights and the ColBERT alignment need a BGE-M3 model (this index: "
                     f"{label(session.index_state().model_name)});")
    parts.append(f"BM25 score {bm25['contribution'].sum():.4f} over {len(bm25)} matching term(s)."
                 if len(bm25) else "BM25: no query term occurs in this chunk.")
    bm25_df = pd.DataFrame({"term": bm25["term"].astype(str), "contribution": bm25["contribution"].round(4)}) \
        if len(bm25) else pd.DataFrame(columns=BM25_COLUMNS)
    return (" ".join(parts), lexical_table(lexical), colbert_figure(colbert), colbert_table(colbert), bm25_df)
