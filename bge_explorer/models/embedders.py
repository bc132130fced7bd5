"""Embedders: a FlagEmbedding model wrapped with its identity, device, precision and a lock.

One class per backend behind :func:`bge_explorer.models.loading.load_embedder`:
:class:`FlagEmbedder` (``FlagModel``, CLS or mean pooling) and :class:`M3Embedder`
(``BGEM3FlagModel``, dense vectors). Both return L2-normalised float32 arrays of shape (n, dim).
"""
from __future__ import annotations

import abc
import contextlib
import dataclasses
import threading
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from bge_explorer.models.catalog import ModelSpec
from bge_explorer.models.devices import autocast

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` while a corpus is embedded."""

BLOCK = 512  # texts per progress step; each block is sorted by length inside FlagEmbedding


class Embedder(abc.ABC):
    """A loaded embedding model. Safe to share between threads (calls are serialised)."""

    def __init__(self, spec: ModelSpec, model, identity: str, device: str, precision: str, batch_size: int):
        self.spec, self.model, self.identity = spec, model, identity
        self.device, self.precision, self.batch_size = device, precision, batch_size
        self.tokenizer = model.tokenizer
        self.dim = spec.dim or int(model.model.config.hidden_size)
        self.corpus_texts_encoded = 0  # how many passages this model has embedded, for "no work twice" checks
        self._lock = threading.Lock()

    @property
    def cache_key(self) -> tuple:
        """What embeddings depend on besides the text: model identity, pooling, max length, precision."""
        return (self.identity, self.spec.pooling, self.spec.max_length, self.precision)

    @abc.abstractmethod
    def _encode(self, texts: list[str]) -> np.ndarray:
        """(n,) texts -> (n, dim) float32 unit vectors, in order."""

    @abc.abstractmethod
    def encode_corpus(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """Embed passages (no instruction), counted in ``corpus_texts_encoded``. (n,) -> (n, dim) float32."""

    def encode_queries(self, queries: Sequence[str], instruction: str = "") -> np.ndarray:
        """Embed queries, each prefixed with ``instruction`` (exact string). (n,) -> (n, dim)."""
        return self._encode([instruction + q for q in queries])

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text under this model's tokenizer, special tokens excluded."""
        with self._lock:
            ids = self.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
        return [len(x) for x in ids]


class FlagEmbedder(Embedder):
    """``FlagModel``: BGE v1.5 and any BERT-like encoder with CLS or mean pooling.

    Loaded by FlagEmbedding and pooled by its ``pooling``; the batching loop is ours: one length
    sort over the whole corpus (least padding), no repeated probe batch, progress per batch.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model.model.to(self.device).eval()

    def encode_corpus(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        vectors = self._forward(list(texts), progress)
        self.corpus_texts_encoded += len(vectors)
        return vectors

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self._forward(texts, None)

    def _forward(self, texts: list[str], progress: Progress | None) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        with self._lock:
            inputs = self.tokenizer(texts, truncation=True, max_length=self.spec.max_length, verbose=False)
            order = np.argsort([-len(ids) for ids in inputs["input_ids"]], kind="stable")
            with torch.inference_mode(), autocast(self.precision, self.device):
                for start in range(0, len(texts), self.batch_size):
                    rows = order[start:start + self.batch_size]
                    batch = self.tokenizer.pad({key: [inputs[key][i] for i in rows] for key in inputs},
                                               padding=True, return_tensors="pt").to(self.device)
                    hidden = self.model.model(**batch, return_dict=True).last_hidden_state
                    pooled = self.model.pooling(hidden, batch["attention_mask"]).float()
                    out[rows] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
                    if progress:
                        progress(min(start + self.batch_size, len(texts)), len(texts))
        return out


@dataclasses.dataclass
class M3Output:
    """What :meth:`M3Embedder.encode_m3` returns for n texts; a field is None when not asked for.

    ``dense``: (n, dim) float32 unit vectors. ``lexical``: per text, FlagEmbedding's lexical weights
    ``{token id as str: weight}`` (max weight per token id; CLS, EOS, PAD and UNK left out; only
    weights > 0). ``colbert``: per text, (n_tokens - 1, colbert_dim) float32 unit rows, one per
    token after CLS (the final EOS/SEP included), as ``BGEM3FlagModel.encode`` returns them.
    """

    dense: np.ndarray | None = None
    lexical: list[dict[str, float]] | None = None
    colbert: list[np.ndarray] | None = None


class M3Embedder(Embedder):
    """``BGEM3FlagModel``: bge-m3's dense vectors; :meth:`encode_m3` adds lexical weights and ColBERT vectors."""

    @property
    def vocab_size(self) -> int:
        """Size of the token id space lexical weights live in."""
        return max(len(self.tokenizer), int(getattr(self.model.model, "vocab_size", 0) or 0))

    @property
    def colbert_dim(self) -> int:
        return int(self.model.model.colbert_linear.out_features)

    @contextlib.contextmanager
    def _float_heads(self) -> Iterator[None]:
        """Cast the sparse and ColBERT heads' outputs to float32 while encoding: under CPU bf16 autocast
        they come out bf16, which FlagEmbedding cannot turn into numpy. A no-op in fp32."""
        inner = self.model.model
        handles = [head.register_forward_hook(lambda _m, _i, out: out.float())
                   for head in (inner.colbert_linear, inner.sparse_linear) if head is not None]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def encode_corpus(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        return self.encode_passages(texts, dense=True, sparse=False, progress=progress).dense

    def encode_passages(self, texts: Sequence[str], *, dense: bool = True, sparse: bool = True, colbert: bool = False,
                        progress: Progress | None = None) -> M3Output:
        """:meth:`encode_m3` for corpus passages: the same, counted in ``corpus_texts_encoded``."""
        out = self.encode_m3(texts, dense=dense, sparse=sparse, colbert=colbert, progress=progress)
        self.corpus_texts_encoded += len(texts)
        return out

    def encode_m3(self, texts: Sequence[str], *, dense: bool = True, sparse: bool = True, colbert: bool = False,
                  progress: Progress | None = None) -> M3Output:
        """Encode texts (no instruction; bge-m3 uses none) with ``BGEM3FlagModel.encode`` in one pass,
        returning the representations asked for. Queries and passages are encoded the same way."""
        texts = list(texts)
        out = M3Output(np.empty((len(texts), self.dim), np.float32) if dense else None,
                       [None] * len(texts) if sparse else None,  # type: ignore[list-item]
                       [None] * len(texts) if colbert else None)  # type: ignore[list-item]
        if not (dense or sparse or colbert):
            raise ValueError("ask for at least one of dense, sparse, colbert")
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), BLOCK):
            idx = order[start:start + BLOCK]
            with self._lock, autocast(self.precision, self.device), self._float_heads():
                got = self.model.encode([texts[i] for i in idx], batch_size=self.batch_size,
                                        max_length=self.spec.max_length, return_dense=dense, return_sparse=sparse,
                                        return_colbert_vecs=colbert)
            if dense:
                out.dense[idx] = np.asarray(got["dense_vecs"], dtype=np.float32).reshape(len(idx), -1)
            for j, i in enumerate(idx):
                if sparse:
                    out.lexical[i] = dict(got["lexical_weights"][j])
                if colbert:
                    out.colbert[i] = np.asarray(got["colbert_vecs"][j], dtype=np.float32)
            if progress:
                progress(min(start + BLOCK, len(texts)), len(texts))
        return out

    def token_ids(self, text: str) -> list[int]:
        """Input ids of ``text`` as the model sees it (special tokens included, truncated to max length)."""
        with self._lock:
            return list(self.tokenizer(text, truncation=True, max_length=self.spec.max_length)["input_ids"])

    def decode_tokens(self, ids: Sequence[int]) -> list[str]:
        """Each token id as text, as ``BGEM3FlagModel.convert_id_to_token`` shows it."""
        with self._lock:
            return [self.tokenizer.decode([int(i)]) for i in ids]

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self.encode_m3(texts, dense=True, sparse=False).dense
