"""FlagEmbedding's training format: one JSON object per line, ``{"query": str, "pos": [str], "neg": [str]}``.

Texts, not ids: a document reads as ``title + " " + text`` (as the index embeds it). The query is written as
the user typed it; the query instruction is *not* baked into the file but recorded as FlagEmbedding's data
arguments ``query_instruction_for_retrieval`` (None: no instruction) and ``query_instruction_format``
(``"{}{}"``: instruction then query, the separator inside the instruction), which its dataset applies when it
reads each line. The same policy goes into the model card, so the tuned model is searched with the
instruction it was trained with. The file's SHA-256 identifies the training data in the card.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from bge_explorer.tuning.mining import MinedSet

INSTRUCTION_FORMAT = "{}{}"  # FlagEmbedding's default query_instruction_format


@dataclasses.dataclass(frozen=True)
class InstructionPolicy:
    """How queries are prefixed in training (and so in search): FlagEmbedding's two data arguments."""

    query_instruction_for_retrieval: str | None = None
    query_instruction_format: str = INSTRUCTION_FORMAT

    @classmethod
    def of(cls, instruction: str | None) -> InstructionPolicy:
        """The policy for a configuration's resolved instruction ("" or None: no instruction)."""
        return cls(instruction or None)

    @property
    def instruction(self) -> str:
        """The instruction as a :class:`~bge_explorer.retrieval.config.RetrievalConfig` field ("" for none)."""
        return self.query_instruction_for_retrieval or ""

    def apply(self, query: str) -> str:
        """What the model reads for ``query`` (FlagEmbedding's dataset and ``encode_queries`` do the same)."""
        if self.query_instruction_for_retrieval is None:
            return query
        return self.query_instruction_format.format(self.query_instruction_for_retrieval, query)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class TrainingFile:
    """A written JSONL: its path, SHA-256 (hex), number of lines and the instruction policy to train it with."""

    path: Path
    sha256: str
    examples: int
    policy: InstructionPolicy

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.path.name, "sha256": self.sha256, "examples": self.examples, **self.policy.to_dict()}


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_training_file(mined: MinedSet, texts: Mapping[str, str], path: str | Path,
                        policy: InstructionPolicy) -> TrainingFile:
    """One line per mined query, in training order: ``{"query", "pos", "neg"}`` with document texts."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for q in mined.queries:
            line = {"query": q.query, "pos": [texts[d] for d in q.positives], "neg": [texts[d] for d in q.negatives]}
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    return TrainingFile(path, file_sha256(path), len(mined.queries), policy)
