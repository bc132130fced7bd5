"""The Search tab's hybrid retrieval: mode and fusion, per-mode columns, the ColBERT switch, "Why this match".

Plain functions over a :class:`bge_explorer.app.explorer.UISession` (testable without a browser); ``ui.py`` wires them.
User text, token strings included (a corpus can hold ``<script>``), reaches the page only as Dataframe text
cells, or as HTML / plotly labels escaped with :func:`bge_explorer.app.explorer.esc`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bge_explorer.errors import ExplorerError
from bge_explorer.retrieval.fusion import M3_DEFAULT_WEIGHTS, M3_MODES, MODES as FUSED

RETRIEVAL_MODES = ["dense", "sparse", "colbert", "bm25", "hybrid"]
FUSIONS = ["m3", "weighted", "rrf"]
DEFAULT_WEIGHTS = {**M3_DEFAULT_WEIGHTS, "bm25": 0.2}
MODE_LABELS = {"dense": "dense", "sparse": "sparse", "colbert": "ColBERT", "bm25": "BM25"}
LEXICAL_COLUMNS = ["token", "in", "query weight", "chunk weight", "contribution"]
COLBERT_COLUMNS = ["query token", "best chunk token", "chunk position", "similarity"]
BM25_COLUMNS = ["term", "contribution"]


def esc(text: object) -> str:
    from bge_explorer.app.explorer import esc as ui_esc

    return ui_esc(text)


def plot_text(text: object) -> str:
    """Escaped for plotly labels: plotly reads a little HTML in text, and decodes numeric entities."""
    return esc(text).replace("&quot;", "&#34;")


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**17 else f"{n / 1024:.0f} KiB"


# ---------------------------------------------------------------------------------------------------- planning

def weights_of(w_dense: float | None, w_sparse: float | None, w_colbert: float | None,
               w_bm25: float | None) -> dict[str, float]:
    values = {"dense": w_dense, "sparse": w_sparse, "colbert": w_colbert, "bm25": w_bm25}
    return {m: float(DEFAULT_WEIGHTS[m] if v is None else v) for m, v in values.items()}


def plan(session, mode: str, fusion: str, weights: dict[str, float]) -> tuple[list[str], list[str]]:
    """(components to fuse, notes on the modes left out and why) for the hybrid mode: every mode with a weight
    above 0 that this index can serve. Raises ExplorerError when nothing is left, or a single mode is unusable."""
    hybrid = session.hybrid()
    available = hybrid.available_modes()
    why = {"sparse": "needs a BGE-M3 model (model class m3)", "colbert": "needs a BGE-M3 model (model class m3)",
           "dense": "needs the dense index"}
    if mode != "hybrid":
        if mode not in available:
            raise ExplorerError(f"{MODE_LABELS.get(mode, mode)} retrieval {why.get(mode, 'is not available')}; "
                                f"the index was built with {session.embedder.spec.name if session.embedder else 'no model'}. "
                                "Build the index with bge-m3 (or a model of class m3), or choose dense, bm25 or hybrid.")
        return [mode], []
    components, notes = [], []
    for m in FUSED:
        if weights.get(m, 0) <= 0:
            continue
        if m not in available:
            notes.append(f"{MODE_LABELS[m]} left out: {why[m]}")
        elif m == "colbert" and not hybrid.colbert_enabled:
            notes.append("ColBERT left out: switch ColBERT on (its memory is shown first)")
        elif fusion == "m3" and m not in M3_MODES:
            notes.append("BM25 left out: M3's weighted sum combines dense, sparse and ColBERT only "
                         "(choose weighted or rrf fusion to mix in BM25)")
        else:
            components.append(m)
    if not components:
        raise ExplorerError("Nothing to fuse: give a weight above 0 to a mode this index can serve ("
                            + ", ".join(m for m in available if m != "hybrid") + "). " + "; ".join(notes))
    return components, notes


def run_search(session, query: str, mode: str, fusion: str, weights: dict[str, float], instruction: str, k: int,
               reranker, top_n: int):
    """Session search in any mode -> (HybridResults, summary HTML fragment about the mode)."""
    mode = mode if mode in RETRIEVAL_MODES else "dense"
    fusion = fusion if fusion in FUSIONS else "m3"
    components, notes = plan(session, mode, fusion, weights)
    try:
        results = session.hybrid_search(query, mode, instruction=instruction if mode != "bm25" else "", k=k,
                                        reranker=reranker, top_n=top_n, fusion=fusion,
                                        weights={m: weights[m] for m in components} if mode == "hybrid" else None,
                                        components=components if mode == "hybrid" else None)
    except ValueError as exc:
        raise ExplorerError(str(exc)) from None
    if mode == "hybrid":
        mix = " + ".join(f"{MODE_LABELS[m]} {results.weights[m]:g}" for m in results.components)
        text = f"Hybrid, {esc(fusion)} fusion of {esc(mix)}: rank and score are the fused ones"
    else:
        text = f"{esc(MODE_LABELS.get(mode, mode))} retrieval"
    for note in notes:
        text += f"; {esc(note)}"
    return results, text


def mode_columns(table: pd.DataFrame) -> pd.DataFrame:
    """``<mode> score`` / ``<mode> rank`` for each mode scored in ``table`` (a results table slice)."""
    out = pd.DataFrame(index=table.index)
    for m in FUSED:
        if f"{m}_score" in table:
            out[f"{MODE_LABELS[m]} score"] = table[f"{m}_score"].astype(float).round(4)
            out[f"{MODE_LABELS[m]} rank"] = table[f"{m}_rank"].astype(int)
    return out


# ------------------------------------------------------------------------------------------------- ColBERT

def retrieval_info(session) -> str:
    """HTML: the modes the current index serves, why others are not, memory per built part, and ColBERT's
    memory (estimated before it is switched on, in use after)."""
    if session.chunks is None or session.index is None:
        return "Build the index to choose a retrieval mode: dense, sparse and ColBERT (BGE-M3), BM25, hybrid."
    hybrid = session.hybrid()
    name = session.embedder.spec.name if session.embedder else "no model"
    parts = [f"Model <b>{esc(name)}</b> serves: {', '.join(MODE_LABELS.get(m, m) for m in hybrid.available_modes())}."]
    if not hybrid.is_m3:
        parts.append("Sparse and ColBERT need a BGE-M3 model (build the index with bge-m3, or model class m3).")
    memory = hybrid.memory()
    if memory:
        parts.append("Memory: " + ", ".join(f"{MODE_LABELS.get(m, m)} {mib(v)}" for m, v in memory.items()) + ".")
    if hybrid.is_m3:
        if hybrid.colbert_enabled:
            parts.append(f"ColBERT is <b>on</b>: {mib(memory.get('colbert', 0))} of token vectors in use.")
        else:
            parts.append(f"ColBERT is off. Switching it on keeps one vector per token of every chunk: about "
                         f"<b>{mib(hybrid.colbert_estimate_bytes())}</b> ({hybrid.colbert_dtype}).")
    return " ".join(parts)


def toggle_colbert(session, on: bool, progress=None) -> tuple[bool, str]:
    """Switch ColBERT on (build its token vectors) or off (free them). -> (switch value, info HTML)."""
    if session.chunks is None or session.index is None:
        return False, "Build the index first."
    hybrid = session.hybrid()
    if not hybrid.is_m3:
        return False, ("ColBERT needs a BGE-M3 model: the index was built with "
                       f"<b>{esc(session.embedder.spec.name)}</b>. " + retrieval_info(session))
    if on:
        estimate = hybrid.colbert_estimate_bytes()
        hybrid.enable_colbert(progress)
        return True, f"ColBERT on (estimated {mib(estimate)}). " + retrieval_info(session)
    hybrid.disable_colbert()
    return False, "ColBERT off: its memory was freed. " + retrieval_info(session)


# ------------------------------------------------------------------------------------------ why this match

def explain_row(session, query: str, row: int, instruction: str = "", top: int = 20):
    """Why chunk ``row`` matched (:meth:`HybridIndex.explain`): -> (lexical, colbert, bm25)."""
    explanation = session.hybrid().explain(query, row, instruction=instruction, top=top)
    return explanation.lexical, explanation.colbert, explanation.bm25


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


def explain_view(session, results, rank: int) -> tuple[str, pd.DataFrame, Any, pd.DataFrame, pd.DataFrame]:
    """"Why this match" for the result at retrieval (fused) ``rank`` of ``results``:
    (summary HTML, lexical table, ColBERT heat map or None, ColBERT alignment table, BM25 terms)."""
    if not 1 <= rank <= len(results.row_ids):
        raise ExplorerError(f"Choose a result between 1 and {len(results.row_ids)}.")
    row = int(results.row_ids[rank - 1])
    chunk = session.chunks.table.iloc[row]
    lexical, colbert, bm25 = explain_row(session, results.query, row, results.instruction)
    parts = [f"Why <b>{esc(chunk['doc_id'])}</b> · chunk {int(chunk['chunk'])} (rank {rank}) matched "
             f"“{esc(results.query)}”:"]
    if lexical is not None:
        parts.append(f"M3 lexical (sparse) score {lexical.score:.4f} = sum of the shared tokens' contributions "
                     f"({len(lexical.overlap)} shared);")
        parts.append(f"ColBERT score {colbert.score:.4f} = mean of each query token's best similarity;")
    else:
        parts.append("M3 lexical weights and the ColBERT alignment need a BGE-M3 model (this index: "
                     f"{esc(session.embedder.spec.name)});")
    parts.append(f"BM25 score {bm25['contribution'].sum():.4f} over {len(bm25)} matching term(s)."
                 if len(bm25) else "BM25: no query term occurs in this chunk.")
    bm25_df = pd.DataFrame({"term": bm25["term"].astype(str), "contribution": bm25["contribution"].round(4)}) \
        if len(bm25) else pd.DataFrame(columns=BM25_COLUMNS)
    return (" ".join(parts), lexical_table(lexical), colbert_figure(colbert), colbert_table(colbert), bm25_df)
