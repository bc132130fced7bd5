"""Training through FlagEmbedding's own fine-tuning module, in process, on the CPU (or one CUDA device).

``FlagEmbedding.finetune.embedder.encoder_only.base`` is a runner over a transformers ``Trainer``: its
``EncoderOnlyEmbedderRunner`` loads the model, its dataset reads our JSONL (one positive and
``group_size - 1`` negatives per query, the query instruction applied from the data arguments), its
``BiEncoderOnlyEmbedderModel`` scores every query against every passage of the batch (in-batch negatives
plus the hard ones) and takes the cross-entropy of ``scores / temperature`` with the positive as the label
(InfoNCE). Nothing of that path needs a GPU: no deepspeed (only used when asked for), no fp16 (off on the CPU),
no flash attention (encoder-only BERT/XLM-R), no torchrun (one process, ``local_rank`` -1). So no fallback is
needed here; see docs/finetune.md for what was checked.

Two things are ours, both thin: LoRA (FlagEmbedding's encoder-only runner has none; a runner subclass wraps
the encoder with ``peft`` and merges the adapters back before saving, so the saved directory is a plain model
FlagModel loads), and a ``TrainerCallback`` that reports ``progress(step, steps, loss)`` and stops the Trainer
(``control.should_training_stop``) when ``cancel()`` says so. The time estimate runs two forward/backward
passes of the model on one real batch (no optimizer step, gradients cleared; ``run`` reseeds) and
multiplies the second one's seconds by the number of steps.
"""
from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from bge_explorer.errors import Cancelled, ConfigError, ExplorerError
from bge_explorer.tuning.dataset import TrainingFile

LossProgress = Callable[[int, int, float | None], None]  # progress(done steps, total steps, latest loss)
CancelCheck = Callable[[], bool]

FULL_LR, LORA_LR = 2e-5, 2e-4  # BGE's recipes use 1e-5 to 3e-5 for full fine-tuning; LoRA wants ~10x more


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
    """How to train. Defaults are for small data (tens to a few thousand queries) on a CPU:

    ``epochs`` 2, ``batch_size`` 8 queries, ``group_size`` 8 passages per query (1 positive + 7 hard negatives,
    the mining default), ``temperature`` 0.02 (FlagEmbedding's and BGE's), ``learning_rate`` None = 2e-5 full
    or 2e-4 with LoRA, warm-up over the first 10% of steps then linear decay, ``query_max_len`` 64 and
    ``passage_max_len`` 256 tokens, LoRA rank 8, alpha 16, dropout 0.1 on peft's default modules for the
    architecture (query and value projections for BERT and XLM-R)."""

    lora: bool = False
    epochs: float = 2
    learning_rate: float | None = None
    batch_size: int = 8
    group_size: int = 8
    temperature: float = 0.02
    warmup: float = 0.1
    weight_decay: float = 0.01
    query_max_len: int = 64
    passage_max_len: int = 256
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    max_steps: int | None = None  # stop after this many steps (tests, smoke runs); None: the epochs decide
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("batch_size", "group_size", "query_max_len", "passage_max_len", "lora_rank", "lora_alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (2 if name == "group_size" else 1):
                raise ConfigError(name, f"must be a whole number of at least {2 if name == 'group_size' else 1}, "
                                        f"not {value!r}")
        for name in ("epochs", "temperature"):
            if not getattr(self, name) > 0:
                raise ConfigError(name, f"must be above 0, not {getattr(self, name)!r}")
        if self.learning_rate is not None and not 0 < self.learning_rate < 1:
            raise ConfigError("learning_rate", f"must be between 0 and 1, not {self.learning_rate!r}")
        if not 0 <= self.warmup < 1 or not 0 <= self.lora_dropout < 1 or self.weight_decay < 0:
            raise ConfigError("warmup", "warmup and lora_dropout are fractions in [0, 1), weight_decay at least 0")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError("max_steps", f"must be at least 1, not {self.max_steps!r}")

    @property
    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else LORA_LR if self.lora else FULL_LR

    def steps(self, examples: int) -> int:
        """Optimizer steps for ``examples`` training lines: ``ceil(examples / batch_size) * epochs`` (at most
        ``max_steps``)."""
        steps = math.ceil(math.ceil(examples / self.batch_size) * self.epochs)
        return min(steps, self.max_steps) if self.max_steps else steps

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "learning_rate": self.lr}


def _callback(progress: LossProgress | None, cancel: CancelCheck | None):
    """A ``TrainerCallback``: the loss of every logged step, ``progress``, and a stop when ``cancel()``."""
    from transformers import TrainerCallback

    class StepReport(TrainerCallback):
        def __init__(self) -> None:
            self.losses: list[tuple[int, float]] = []
            self.cancelled = False

        def on_log(self, args, state, control, logs=None, **kwargs):  # every step: logging_steps is 1
            if logs and "loss" in logs:
                loss = float(logs["loss"])
                self.losses.append((state.global_step, loss))
                if progress:
                    progress(state.global_step, state.max_steps, loss)
                if cancel is not None and cancel():
                    self.cancelled = control.should_training_stop = True
            return control

    return StepReport()


def _runner_class():
    from FlagEmbedding.finetune.embedder.encoder_only.base import EncoderOnlyEmbedderRunner

    class Runner(EncoderOnlyEmbedderRunner):
        """FlagEmbedding's encoder-only runner; with ``lora`` options the encoder is wrapped by peft."""

        def __init__(self, model_args, data_args, training_args, lora: TrainingOptions | None):
            self.lora = lora
            super().__init__(model_args, data_args, training_args)

        def load_tokenizer_and_model(self):
            tokenizer, model = super().load_tokenizer_and_model()
            if self.lora is not None:
                from peft import LoraConfig, get_peft_model

                try:
                    model.model = get_peft_model(model.model, LoraConfig(
                        r=self.lora.lora_rank, lora_alpha=self.lora.lora_alpha, lora_dropout=self.lora.lora_dropout))
                except ValueError as exc:  # peft knows no default modules for this architecture
                    raise ConfigError("lora", f"peft cannot adapt this model: {exc}") from None
            return tokenizer, model

        def merge_lora(self) -> None:
            """Fold the adapters into the weights: the saved model is a plain one of the base architecture."""
            if self.lora is not None:
                self.model.model = self.model.model.merge_and_unload()

    return Runner


@dataclasses.dataclass
class TrainingRun:
    """What a finished training did: optimizer steps, seconds, the logged losses ``(step, loss)``, the device."""

    steps: int
    seconds: float
    losses: list[tuple[int, float]]
    device: str


class Training:
    """One prepared training (model, data and Trainer loaded): :attr:`steps`, :meth:`estimate` and :meth:`run`.

    ``base``: the base model's directory; ``pooling``: ``cls`` or ``mean``, as the base model pools;
    ``out_dir``: where the tuned model is saved (must not hold a model already); ``device``: ``cpu`` (fp32) or
    ``cuda:N`` (fp16)."""

    def __init__(self, data: TrainingFile, base: str, pooling: str, out_dir: str | Path,
                 options: TrainingOptions = TrainingOptions(), *, device: str = "cpu") -> None:
        from FlagEmbedding.finetune.embedder.encoder_only.base import (EncoderOnlyEmbedderDataArguments,
                                                                       EncoderOnlyEmbedderModelArguments,
                                                                       EncoderOnlyEmbedderTrainingArguments)
        from transformers.trainer_callback import PrinterCallback

        self.options, self.device, self.out_dir = options, device, Path(out_dir)
        if (self.out_dir / "config.json").exists():
            raise ConfigError("out", f"{self.out_dir} already holds a model; give a new or empty folder")
        self._cache = tempfile.TemporaryDirectory(prefix="bge-explorer-tuning-")  # datasets' arrow cache
        cuda = device.startswith("cuda")
        model_args = EncoderOnlyEmbedderModelArguments(model_name_or_path=base, token=None)
        data_args = EncoderOnlyEmbedderDataArguments(
            train_data=[str(data.path)], cache_path=self._cache.name, train_group_size=options.group_size,
            query_max_len=options.query_max_len, passage_max_len=options.passage_max_len,
            **data.policy.to_dict())
        training_args = EncoderOnlyEmbedderTrainingArguments(
            output_dir=str(self.out_dir), use_cpu=not cuda, fp16=cuda, num_train_epochs=options.epochs,
            max_steps=options.max_steps or -1, per_device_train_batch_size=options.batch_size,
            learning_rate=options.lr, warmup_steps=options.warmup, weight_decay=options.weight_decay,
            temperature=options.temperature, sentence_pooling_method=pooling, normalize_embeddings=True,
            logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True, dataloader_num_workers=0,
            seed=options.seed, data_seed=options.seed)
        try:
            self.runner = _runner_class()(model_args, data_args, training_args, options if options.lora else None)
        except (OSError, ValueError) as exc:
            raise ExplorerError(f"FlagEmbedding could not prepare the training: {exc}".splitlines()[0][:500]) from exc
        self.runner.trainer.remove_callback(PrinterCallback)  # it prints every log to stdout; we report instead
        self.examples = len(self.runner.train_dataset)
        self.steps = options.steps(self.examples)

    def estimate(self) -> float:
        """Seconds the training should take: :attr:`steps` x the seconds of one forward and backward pass over a
        real batch (the first ``batch_size`` lines; the second of two passes, the first pays one-time costs). The
        weights do not change, and :meth:`run` reseeds the random streams the passes drew from."""
        model, data = self.runner.model, self.runner.train_dataset
        batch = self.runner.data_collator([data[i] for i in range(min(self.options.batch_size, len(data)))])
        model.to(self.runner.training_args.device)
        batch = {k: v.to(model.model.device) if hasattr(v, "to") else v for k, v in batch.items()}
        model.train()
        seconds = []
        for _ in range(2):
            start = time.perf_counter()
            model(**batch).loss.backward()
            seconds.append(time.perf_counter() - start)
            model.zero_grad(set_to_none=True)
        return seconds[-1] * self.steps

    def run(self, progress: LossProgress | None = None, cancel: CancelCheck | None = None) -> TrainingRun:
        """Train, then save the model (LoRA merged) and tokenizer in ``out_dir``. ``progress(step, steps, loss)``
        after every step; ``cancel()`` True stops after the current step and raises Cancelled (nothing saved)."""
        from transformers import set_seed

        report = _callback(progress, cancel)
        trainer = self.runner.trainer
        set_seed(self.options.seed)  # the same seed trains the same weights, whatever ran in between
        trainer.add_callback(report)
        start = time.perf_counter()
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            trainer.train()
            if report.cancelled:
                raise Cancelled(f"Training was stopped at step {trainer.state.global_step} of {self.steps}; "
                                "nothing was saved.")
            self.runner.merge_lora()
            trainer.save_model()
        finally:
            trainer.remove_callback(report)
            self._cache.cleanup()
        _drop_trainer_files(self.out_dir)
        return TrainingRun(trainer.state.global_step, time.perf_counter() - start, report.losses, self.device)


def _drop_trainer_files(out_dir: Path) -> None:
    """The Trainer also pickles its arguments (``training_args.bin``); the card holds them as JSON instead."""
    pickled = out_dir / "training_args.bin"
    if pickled.exists():
        os.remove(pickled)
