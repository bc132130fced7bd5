"""The Workbench's Fine-tune panel: tune the index's embedding model on this session's judgments and prove the
gain on held-out queries.

The engine does the work (:mod:`bge_explorer.tuning`): a seeded split of the judged queries (nothing of a
held-out query is trained on or mined from), hard negatives mined with the current index, FlagEmbedding's
fine-tuning runner on this machine, a model card, and an experiment base vs tuned (and with the reranker) on
the held-out queries. The tuned model lands in the session's own directory, is offered for download and joins
this session's model choices. Off on a public deployment: training takes the shared CPU for minutes.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from bge_explorer import settings
from bge_explorer.app import choices, state as app_state
from bge_explorer.app.render import box, cell, esc, fail, label
from bge_explorer.app.state import AppState
from bge_explorer.app.workbench import results_table
from bge_explorer.errors import Cancelled, ConfigError, ExplorerError
from bge_explorer.tuning.card import CARD_FILE, DATA_FILE
from bge_explorer.tuning.mining import NegativeSampling, mine
from bge_explorer.tuning.split import split_queries
from bge_explorer.tuning.training import TrainingOptions
from bge_explorer.tuning.tune import fine_tune

NO_RERANKER = "none"
PREVIEW_ROWS = 200


def _refuse_public() -> None:
    if settings.current().public:
        raise ExplorerError("Fine-tuning is off on a public deployment: it would hold the shared CPU for minutes. "
                            "Run the app on your own machine (or `python -m bge_explorer finetune`).")


def _inputs(app: AppState, fraction: Any, seed: Any, negatives: str, reranker: str | None, filter_above: Any):
    """The panel's fields, checked -> (split, sampling, reranker or None, threshold or None). Raises ConfigError
    naming the field."""
    if app.session.current is None:
        raise ExplorerError("Build the index first (Model & index tab): its model is the one tuned, and its "
                            "configuration mines the negatives.")
    try:
        fraction, seed = float(fraction), int(seed)
    except (TypeError, ValueError):
        raise ConfigError("held-out fraction / seed", "must be numbers") from None
    split = split_queries(app.session.judgments, fraction, seed)
    sampling = NegativeSampling.parse((negatives or "").strip() or str(NegativeSampling()))
    name = (reranker or "").strip()
    rerank = None if not name or name.lower() == NO_RERANKER else name
    threshold = None
    if filter_above not in (None, "") and float(filter_above) > 0:
        threshold = float(filter_above)
    return split, sampling, rerank, threshold


def preview_training_data(fraction: float = 0.3, seed: float = 0, negatives: str = "10-100:7",
                          reranker: str = NO_RERANKER, filter_above: float = 0, state: Any = None):
    """Mine the training data without training: per training query its positives and the hard negatives mined
    from its ranking (dropped and suspicious ones flagged). -> (summary, table, state)."""
    app = app_state.get(state)
    try:
        _refuse_public()
        split, sampling, rerank, threshold = _inputs(app, fraction, seed, negatives, reranker, filter_above)
        mined = mine(app.session, app.session.judgments.to_judgments(), split, app.session.config,
                     sampling=sampling, seed=int(seed), reranker=rerank, filter_above=threshold)
    except ExplorerError as exc:
        raise fail(exc) from None
    table = mined.preview()
    flagged = int((table["flag"] != "").sum())
    shown = table.head(PREVIEW_ROWS).assign(query=lambda t: t["query"].map(cell), doc_id=lambda t: t["doc_id"].map(cell))
    notes = "".join(f" {esc(n)}." for n in mined.notes)
    return (box("info", f"{len(split.train)} training and {len(split.held_out)} held-out queries (seed {int(seed)}); "
                        f"{len(mined.queries)} training queries with negatives from positions "
                        f"{sampling.low}-{sampling.high - 1}, {int((table['role'] == 'negative').sum())} negatives, "
                        f"{flagged} flagged.{notes}"
                        + (f" Showing the first {PREVIEW_ROWS} rows." if len(table) > PREVIEW_ROWS else "")),
            shown, app)


def _loss_figure(losses: list[tuple[int, float]]):
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[s for s, _ in losses], y=[v for _, v in losses], mode="lines+markers"))
    fig.update_layout(title=dict(text="Training loss"), xaxis_title="step", yaxis_title="loss",
                      margin=dict(l=60, r=20, t=60, b=50))
    return fig


def _download(model_dir: Path, app: AppState) -> list[str]:
    """The card, README and training data, and the whole model directory zipped, in the session's directory."""
    archive = shutil.make_archive(str(Path(app.ensure_workdir()) / model_dir.name), "zip", model_dir)
    return [str(model_dir / name) for name in (CARD_FILE, "README.md", DATA_FILE)] + [archive]


def fine_tune_model(fraction: float = 0.3, seed: float = 0, negatives: str = "10-100:7", epochs: float = 2,
                    lora: bool = False, temperature: float = 0.02, learning_rate: float = 0, batch_size: float = 8,
                    group_size: float = 8, reranker: str = NO_RERANKER, filter_above: float = 0, state: Any = None,
                    progress=gr.Progress(), request: gr.Request = None):
    """Fine-tune the index's embedding model on this session's judgments and compare base and tuned on the
    held-out queries. -> (summary, loss chart, comparison table, downloads, model choices, state).

    Args:
        fraction: the share of judged queries held out (0-1).
        seed: the seed of the split and of the negatives' sampling.
        negatives: LOW-HIGH[:COUNT], the rank window negatives are mined from and how many per query.
        epochs: passes over the training queries.
        lora: train LoRA adapters (merged into the saved model) instead of every weight.
        temperature: of the contrastive loss (FlagEmbedding's default 0.02 suits BGE; 0.05 suits MiniLM).
        learning_rate: 0 for the default (2e-5 full, 2e-4 LoRA).
        batch_size: training queries per step.
        group_size: passages per query in a step (1 positive + group_size - 1 negatives).
        reranker: scores the mined negatives (flags, and with filter_above drops, likely false negatives).
        filter_above: drop negatives whose reranker sigmoid is above this (0: keep all).
    """
    app = app_state.get(state)
    estimate: dict[str, float] = {}

    def report(done: int, total: int, loss: float | None) -> None:
        what = "mining negatives" if loss is None else f"training step, loss {loss:.4f}"
        eta = f", estimate {estimate['seconds']:.0f} s for {estimate['steps']} steps" if estimate else ""
        progress(done / max(total, 1), desc=f"{what} {done}/{total}{eta}")

    try:
        _refuse_public()
        split, sampling, rerank, threshold = _inputs(app, fraction, seed, negatives, reranker, filter_above)
        options = TrainingOptions(lora=bool(lora), epochs=float(epochs), temperature=float(temperature),
                                  learning_rate=float(learning_rate) if learning_rate else None,
                                  batch_size=int(batch_size), group_size=int(group_size), seed=int(seed))
        out_dir = Path(app.ensure_workdir()) / f"tuned-{time.strftime('%Y%m%d-%H%M%S')}"
        with app_state.running(app, request):
            result = fine_tune(app.session, app.session.judgments, split, app.session.config, out_dir,
                               sampling=sampling, options=options, reranker=rerank, filter_above=threshold,
                               progress=report, cancel=lambda: app.cancelled,
                               on_estimate=lambda s, n: estimate.update(seconds=s, steps=n))
    except Cancelled:
        return "Stopped; nothing was saved.", gr.skip(), gr.skip(), gr.skip(), gr.skip(), app
    except (ExplorerError, TypeError, ValueError) as exc:
        raise fail(exc) from None
    comparison = result.comparison
    table = results_table(comparison) if comparison is not None else pd.DataFrame()
    verdict = ""
    if comparison is not None:
        t = comparison.table("ndcg@10")
        names = list(comparison.results)
        base, tuned = names[0], next(n for n in names if n.startswith("tuned"))
        verdict = (f" Held-out nDCG@10: {label(base)} {t.at[base, 'mean']:.4f}, {label(tuned)} "
                   f"{t.at[tuned, 'mean']:.4f} ({t.at[tuned, 'mean'] - t.at[base, 'mean']:+.4f}, Holm p = "
                   f"{t.at[tuned, 'p_holm']:.4f}).")
    model = str(result.model_dir)
    app.tuned_models.append(model)
    run = result.training
    summary = (f"Tuned {label(result.card.base['name'])} in {run.seconds:.0f} s ({run.steps} steps on {run.device}; "
               f"estimated {result.estimate_s:.0f} s) on {len(split.train)} queries, {len(split.held_out)} held out."
               f"{verdict} Saved as {model}: it is in this session's model choices (Model & index tab).")
    dropdown = gr.update(choices=[*choices.choices("model"), *((os.path.basename(m) + " (tuned here)", m)
                                                               for m in app.tuned_models)])
    return summary, _loss_figure(run.losses), table, _download(result.model_dir, app), dropdown, app


def build_tuning_panel(page) -> None:
    """Lay out the Fine-tune accordion inside the Workbench tab and wire it (``page``: the page's state, model
    dropdown and event options)."""
    state = page.state
    with gr.Accordion("Fine-tune on my judgments", open=False):
        gr.Markdown("Tunes the index's embedding model with FlagEmbedding's fine-tuning runner on your judged "
                    "queries, with hard negatives mined from the current index, and compares base and tuned on "
                    "held-out queries (nothing of those is trained on). Preview the mined data first: a flagged "
                    "negative may be a relevant document nobody judged. Details: docs/finetune.md.")
        with gr.Row():
            fraction = gr.Number(0.3, label="Held-out share of the judged queries", minimum=0.05, maximum=0.95)
            seed = gr.Number(0, label="Seed", precision=0)
            negatives = gr.Textbox("10-100:7", label="Negatives: rank window and count (LOW-HIGH:COUNT)")
            epochs = gr.Number(2, label="Epochs", minimum=0.1, maximum=20)
        with gr.Row():
            lora = gr.Checkbox(False, label="LoRA (adapters merged into the saved model)")
            temperature = gr.Number(0.02, label="Temperature", minimum=0.001, maximum=1)
            learning_rate = gr.Number(0, label="Learning rate (0: 2e-5 full, 2e-4 LoRA)", minimum=0, maximum=0.1)
            batch_size = gr.Number(8, label="Batch size (queries a step)", precision=0, minimum=1, maximum=256)
            group_size = gr.Number(8, label="Group size (1 positive + negatives)", precision=0, minimum=2,
                                   maximum=64)
        with gr.Row():
            reranker = gr.Dropdown(choices.choices("reranker"), value=NO_RERANKER, allow_custom_value=True,
                                   label="Reranker for the negatives (flags false negatives)")
            filter_above = gr.Number(0, label="Drop negatives whose reranker sigmoid is above (0: keep)",
                                     minimum=0, maximum=1)
        with gr.Row():
            preview_btn = gr.Button("Preview the training data")
            tune_btn = gr.Button("Fine-tune", variant="primary")
            stop = gr.Button("Stop", size="sm")
        status = gr.HTML(box("info", "Judge at least a few queries (grades 1-3 mark positives), build the index, "
                                     "then preview and fine-tune."), elem_id="tune-status")
        preview = gr.Dataframe(label="Training data: positives, mined negatives, dropped candidates", wrap=True,
                               interactive=False, visible=False, max_height=420)
        losses = gr.Plot(label="Training loss", visible=False)
        compared = gr.Dataframe(label="Held-out queries: base vs tuned", interactive=False, visible=False)
        files = gr.File(label="The tuned model (zip), its card and training data", file_count="multiple",
                        interactive=False, visible=False)
    fields = [fraction, seed, negatives]
    preview_btn.click(preview_training_data, [*fields, reranker, filter_above, state], [status, preview, state],
                      api_name="preview_training_data", **page.models).success(
        lambda: gr.update(visible=True), None, preview, api_visibility="private")
    event = tune_btn.click(fine_tune_model, [*fields, epochs, lora, temperature, learning_rate, batch_size,
                                             group_size, reranker, filter_above, state],
                           [status, losses, compared, files, page.controls.model, state], api_name="fine_tune",
                           **page.builds)
    event.success(lambda: (gr.update(visible=True),) * 3, None, [losses, compared, files], api_visibility="private")
    stop.click(lambda s: app_state.get(s).cancel(), [state], None, cancels=[event], queue=False,
               api_visibility="private")
