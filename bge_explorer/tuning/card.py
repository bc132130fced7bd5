"""The tuned model's card: what it is, what it came from, and how to search with it.

A tuned model directory holds the model (``config.json``, ``model.safetensors``, tokenizer files, loadable
by path through :func:`bge_explorer.models.loading.load_embedder` like any local model), the training data
it saw (``train.jsonl``), :data:`CARD_FILE` (JSON, read back by :meth:`ModelCard.load`) and a short
``README.md`` for people. The card holds:

- ``identity``: the SHA-256 of the weights file (``model.safetensors``): two cards with the same identity
  describe the same weights;
- ``base``: the base model's name, path, identity (as :func:`~bge_explorer.models.loading.locate` reports
  it), pooling and class;
- ``data``: the training file's name, SHA-256, line count and the query instruction policy;
- ``mining``, ``training`` (arguments, steps, seconds, losses), ``split`` (the held-out split) and
  ``created`` (UTC, ISO 8601).

:meth:`ModelCard.config` turns it into the :class:`~bge_explorer.retrieval.config.RetrievalConfig` that
searches with the tuned model the way it was trained (its pooling and instruction), so every other feature
(search, evaluate, experiments, the app) can use it.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path
from typing import Any, Mapping

from bge_explorer.errors import ConfigError
from bge_explorer.models.catalog import TUNED_CARD
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.tuning.dataset import INSTRUCTION_FORMAT, file_sha256

CARD_FILE = TUNED_CARD  # read by the model catalog too: a tuned directory loads with its pooling and instruction
WEIGHTS_FILE = "model.safetensors"
DATA_FILE = "train.jsonl"


@dataclasses.dataclass(frozen=True)
class ModelCard:
    """See the module docstring; every field is JSON-ready."""

    identity: str
    base: dict[str, Any]
    data: dict[str, Any]
    mining: dict[str, Any]
    training: dict[str, Any]
    split: dict[str, Any]
    created: str = dataclasses.field(
        default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))

    @property
    def instruction(self) -> str:
        """The query instruction the model was trained with ("" for none)."""
        return self.data.get("query_instruction_for_retrieval") or ""

    def config(self, directory: str | Path, base: RetrievalConfig | None = None) -> RetrievalConfig:
        """``base`` (default: the defaults, whole documents) with the tuned model: its path, pooling, the
        instruction it was trained with and the identity of its files, labelled ``tuned``."""
        from bge_explorer.models.loading import directory_identity

        path = str(Path(directory).resolve())
        return (base or RetrievalConfig(chunk_size=None)).with_(
            model=path, pooling=self.base["pooling"], model_class="encoder", revision=directory_identity(path),
            instruction=self.instruction, label="tuned")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = fields - set(data) - {"created"}
        if missing:
            raise ConfigError(CARD_FILE, f"misses {', '.join(sorted(missing))}")
        return cls(**{k: v for k, v in data.items() if k in fields})

    def save(self, directory: str | Path) -> Path:
        """Write :data:`CARD_FILE` and ``README.md`` into ``directory``; returns the card's path."""
        directory = Path(directory)
        path = directory / CARD_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False), encoding="utf-8")
        (directory / "README.md").write_text(self.readme(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> ModelCard:
        path = Path(directory) / CARD_FILE
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(str(path), f"is not a tuned model's card ({exc})") from None

    def readme(self) -> str:
        """A short model card in Markdown: identity, base, data, training and how to load it."""
        t, d, s = self.training, self.data, self.split
        instruction = repr(self.instruction) if self.instruction else "none"
        return "\n".join([
            "# Fine-tuned embedding model (BGE Explorer)", "",
            f"- identity (SHA-256 of {WEIGHTS_FILE}): `{self.identity}`",
            f"- base model: {self.base['name']} (`{self.base['identity']}`), pooling {self.base['pooling']}",
            f"- training data: {d['file']}, {d['examples']} queries, SHA-256 `{d['sha256']}`",
            f"- query instruction: {instruction} (format `{d.get('query_instruction_format', INSTRUCTION_FORMAT)}`)",
            f"- negatives: {self.mining['negatives']} from configuration {self.mining['config_id']}",
            f"- training: {'LoRA (merged)' if t['options']['lora'] else 'full fine-tuning'}, {t['steps']} steps, "
            f"{t['seconds']:.1f} s on {t['device']}, learning rate {t['options']['learning_rate']:g}, "
            f"temperature {t['options']['temperature']:g}",
            f"- held out: {len(s['held_out'])} queries ({s['method']}), trained on {len(s['train'])}",
            f"- created: {self.created}", "",
            "Load it with FlagEmbedding:", "",
            "```python",
            "from FlagEmbedding import FlagModel",
            f"model = FlagModel(PATH, pooling_method={self.base['pooling']!r}, normalize_embeddings=True,",
            f"                  query_instruction_for_retrieval={self.instruction or None!r}, devices='cpu')",
            "```", ""])


def weights_identity(directory: str | Path) -> str:
    """The SHA-256 (hex) of the directory's weights file."""
    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise ConfigError(str(directory), f"holds no {WEIGHTS_FILE}")
    return file_sha256(path)
