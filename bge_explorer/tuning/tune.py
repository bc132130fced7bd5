"""Fine-tuning end to end: mine, write, estimate, train, card, prove.

:func:`fine_tune` runs the steps of :mod:`bge_explorer.tuning` on one session's corpus and judgments, with one
``progress(done, total, loss)`` callback (``loss`` None while mining, then the training loss per step),
one ``cancel()`` check (between mining batches and after every training step) and ``on_estimate(seconds,
steps)`` before the training starts. Each step is a function of its own module too, for a face that shows
them one at a time (a preview of the mined negatives, the estimate, a confirm button).
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any, Callable

from bge_explorer.data.judging import JudgmentStore
from bge_explorer.data.qrels import Judgments
from bge_explorer.errors import ConfigError, ExplorerError
from bge_explorer.evaluation.experiment import ExperimentResult
from bge_explorer.evaluation.significance import N_RESAMPLES
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.tuning.card import DATA_FILE, ModelCard, weights_identity
from bge_explorer.tuning.dataset import InstructionPolicy, write_training_file
from bge_explorer.tuning.mining import MinedSet, NegativeSampling, document_texts, mine
from bge_explorer.tuning.proof import comparison_plan, prove
from bge_explorer.tuning.split import HeldOutSplit
from bge_explorer.tuning.training import CancelCheck, LossProgress, Training, TrainingOptions, TrainingRun


@dataclasses.dataclass
class FineTuneResult:
    """The tuned model's directory and card, the mined set, the training run and its estimate, and the held-out
    comparison (None when not asked for)."""

    model_dir: Path
    card: ModelCard
    mined: MinedSet
    training: TrainingRun
    estimate_s: float
    comparison: ExperimentResult | None

    @property
    def config(self) -> RetrievalConfig:
        """How to search with the tuned model (its pooling and trained instruction)."""
        return self.card.config(self.model_dir)

    def to_dict(self) -> dict[str, Any]:
        return {"model_dir": str(self.model_dir), "card": self.card.to_dict(), "estimate_s": round(self.estimate_s, 2),
                "comparison": self.comparison.to_dict() if self.comparison is not None else None}


def base_model_of(session, config: RetrievalConfig) -> tuple[str, dict[str, Any], str]:
    """(directory, the card's ``base`` entry, resolved query instruction) of the configuration's model, which
    must be an encoder (BGE v1.5, MiniLM...): FlagEmbedding's encoder-only runner trains the dense output only."""
    from bge_explorer.models.loading import locate

    embedder = session.embedder_for(config.with_(modes=("dense",))) if config.model else None
    if embedder is None:
        raise ConfigError("model", "name the embedding model to fine-tune")
    if embedder.spec.model_class != "encoder":
        raise ConfigError("model", f"{embedder.spec.name} is a {embedder.spec.model_class} model; fine-tuning "
                                   "takes an encoder model (BGE v1.5, MiniLM): the encoder-only runner would drop "
                                   "BGE-M3's sparse and ColBERT heads")
    path, identity = locate(embedder.spec)
    instruction = config.instruction if config.instruction is not None else embedder.spec.instruction
    base = {"name": embedder.spec.name, "path": path, "identity": identity, "pooling": embedder.spec.pooling,
            "model_class": embedder.spec.model_class}
    return path, base, instruction


def fine_tune(session, judgments: Judgments | JudgmentStore, split: HeldOutSplit, config: RetrievalConfig | None,
              out_dir: str | Path, *,
              mining_config: RetrievalConfig | None = None, sampling: NegativeSampling = NegativeSampling(),
              options: TrainingOptions = TrainingOptions(), relevance: int = 1, reranker: str | None = None,
              filter_above: float | None = None, compare: bool = True, n_resamples: int = N_RESAMPLES,
              progress: LossProgress | None = None, cancel: CancelCheck | None = None,
              on_estimate: Callable[[float, int], None] | None = None) -> FineTuneResult:
    """Tune ``config``'s model on the training queries of ``split`` and save it in ``out_dir``.

    Negatives are mined with ``mining_config`` (default ``config``: the index being searched); the held-out
    comparison evaluates ``config`` with the base and the tuned model (and ``reranker`` on top when given).
    ``judgments``: Judgments, or a session's JudgmentStore (read with ``to_judgments()``: ids ``q1, q2, ...`` in
    order of first judgment, the ids :func:`~bge_explorer.tuning.split.split_queries` saw if nothing was judged
    since). ``config`` None (no index built yet) is refused. ``out_dir`` must be new or empty. Raises ConfigError
    naming the field at fault, Cancelled when stopped."""
    if config is None:
        raise ExplorerError("Build the index first: its configuration mines the negatives and names the model.")
    if isinstance(judgments, JudgmentStore):
        judgments = judgments.to_judgments()
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError("out", f"{out_dir} is not empty; give a new or empty folder for the tuned model")
    path, base, instruction = base_model_of(session, config)
    mining = (lambda done, total: progress(done, total, None)) if progress else None
    mined = mine(session, judgments, split, mining_config or config, sampling=sampling, seed=options.seed,
                 relevance=relevance, reranker=reranker, filter_above=filter_above, progress=mining, cancel=cancel)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        data = write_training_file(mined, document_texts(session), out_dir / DATA_FILE,
                                   InstructionPolicy.of(instruction))
        training = Training(data, path, base["pooling"], out_dir, options)
        estimate = training.estimate()
        if on_estimate:
            on_estimate(estimate, training.steps)
        run = training.run(progress, cancel)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)  # a stopped or failed run leaves no half-written model
        raise
    card = ModelCard(weights_identity(out_dir), base, data.to_dict(), mined.to_dict(),
                     {"options": options.to_dict(), "steps": run.steps, "seconds": round(run.seconds, 2),
                      "estimate_s": round(estimate, 2), "device": run.device, "losses": run.losses,
                      "runner": "FlagEmbedding.finetune.embedder.encoder_only.base"},
                     split.to_dict())
    card.save(out_dir)
    comparison = None
    if compare:
        plan = comparison_plan(config, card.config(out_dir, base=config), reranker)
        comparison = prove(session, judgments, split, plan, n_resamples=n_resamples, seed=options.seed)
    return FineTuneResult(out_dir, card, mined, run, estimate, comparison)
