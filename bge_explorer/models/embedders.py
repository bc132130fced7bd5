"""Embedders: a FlagEmbedding model wrapped with its identity, device, backend, precision and a lock.

One class per model family behind :func:`bge_explorer.models.loading.load_embedder`:
:class:`FlagEmbedder` (``FlagModel``, CLS or mean pooling) and :class:`M3Embedder` (``BGEM3FlagModel``), run
by torch; their OpenVINO counterparts (:mod:`bge_explorer.models.openvino_backend`) override only the
per-batch forward pass (``_forward``), so tokenisation, batching and post-processing are shared.
Each declares what it :attr:`~Embedder.produces`, and :meth:`~Embedder.encode` returns those outputs:

- ``"dense"``: (n, dim) float32 L2-normalised vectors;
- ``"lexical"``: per text, ``{token id as str: weight}`` (BGE-M3's sparse head);
- ``"multivector"``: per text, (tokens, dim) float32 unit rows (BGE-M3's ColBERT head).

The shared model is held per batch, not per call: a query or a small build is served between the
batches of another session's large build.
"""
from __future__ import annotations

import abc
import contextlib
import threading
import time
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from bge_explorer.models import meter
from bge_explorer.models.catalog import ModelSpec
from bge_explorer.models.devices import autocast

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` while a corpus is embedded; it may raise to stop the work."""

DENSE, LEXICAL, MULTIVECTOR = "dense", "lexical", "multivector"
OUTPUTS = (DENSE, LEXICAL, MULTIVECTOR)
Encoded = dict  # {output: (n, dim) array for "dense", a list of n items for the others}
TOKENIZE_BLOCK = 256  # texts tokenized per hold of the shared tokenizer


class Embedder(abc.ABC):
    """A loaded embedding model. Safe to share between threads (each batch holds the model alone)."""

    produces: frozenset[str] = frozenset({DENSE})
    backend = "torch"

    def __init__(self, spec: ModelSpec, model, identity: str, device: str, precision: str, batch_size: int):
        self.spec, self.model, self.identity = spec, model, identity
        self.device, self.precision, self.batch_size = device, precision, batch_size
        self.tokenizer = model.tokenizer
        self.dim = spec.dim or self._hidden_size(model)
        self.corpus_texts_encoded = 0  # how many passages this model has embedded, for "no work twice" checks
        self.path_note = f"{self.backend} {precision}"  # which path runs and why; the loader says more
        self._lock = threading.Lock()
        self._place()

    @staticmethod
    def _hidden_size(model) -> int:
        return int(model.model.config.hidden_size)

    @property
    def versions(self) -> str:
        """The versions of what runs the model, e.g. ``torch 2.13.0``."""
        return f"torch {torch.__version__.split('+')[0]}"

    def _place(self) -> None:
        """Put the torch module on the device, in eval mode."""
        self.model.model.to(self.device).eval()

    @property
    def cache_key(self) -> tuple:
        """What embeddings depend on besides the text: model identity, pooling, max length, backend, precision."""
        return (self.identity, self.spec.pooling, self.spec.max_length, self.backend, self.precision)

    def _pad(self, features: dict[str, list]) -> dict:
        """Unpadded token ids of one batch -> padded ``(b, L)`` arrays: torch tensors on the device here."""
        return self.tokenizer.pad(features, padding=True, return_tensors="pt").to(self.device)

    @abc.abstractmethod
    def encode(self, texts: Sequence[str], outputs: Sequence[str] = (DENSE,), progress: Progress | None = None
               ) -> Encoded:
        """(n,) texts as given (any instruction already applied) -> ``{output: value}`` for each output asked
        for, all from one pass over the model. Raises ValueError for an output this model does not produce."""

    def encode_passages(self, texts: Sequence[str], outputs: Sequence[str] = (DENSE,),
                        progress: Progress | None = None) -> Encoded:
        """:meth:`encode` for corpus passages (no instruction), counted in ``corpus_texts_encoded``."""
        start = time.perf_counter()
        out = self.encode(texts, outputs, progress)
        meter.record("passage", self.spec.name, len(texts), time.perf_counter() - start)
        self.corpus_texts_encoded += len(texts)
        return out

    def encode_corpus(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        """Dense vectors of passages (no instruction). (n,) -> (n, dim) float32."""
        return self.encode_passages(texts, (DENSE,), progress)[DENSE]

    def encode_queries(self, queries: Sequence[str], instruction: str = "") -> np.ndarray:
        """Dense vectors of queries, each prefixed with ``instruction`` (exact string). (n,) -> (n, dim)."""
        start = time.perf_counter()
        out = self.encode([instruction + q for q in queries], (DENSE,))[DENSE]
        meter.record("query", self.spec.name, len(queries), time.perf_counter() - start)
        return out

    def _tokenize(self, texts: list[str]) -> dict[str, list]:
        """Token ids (truncated, unpadded) of every text, :data:`TOKENIZE_BLOCK` texts at a time: the tokenizer is
        shared too, so it is held per block and other sessions' queries get in between."""
        inputs: dict[str, list] = {}
        for start in range(0, len(texts), TOKENIZE_BLOCK):
            with self._lock:
                got = self.tokenizer(texts[start:start + TOKENIZE_BLOCK], truncation=True,
                                     max_length=self.spec.max_length, verbose=False)
            for key, values in got.items():
                inputs.setdefault(key, []).extend(values)
        return inputs

    def _check_outputs(self, outputs: Sequence[str]) -> None:
        unknown = [o for o in outputs if o not in self.produces]
        if unknown or not outputs:
            raise ValueError(f"{self.spec.name} produces {', '.join(sorted(self.produces))}, "
                             f"not {', '.join(unknown) or 'nothing'}")

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

    def encode(self, texts: Sequence[str], outputs: Sequence[str] = (DENSE,), progress: Progress | None = None
               ) -> Encoded:
        self._check_outputs(outputs)
        texts = list(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return {DENSE: out}
        inputs = self._tokenize(texts)
        order = np.argsort([-len(ids) for ids in inputs["input_ids"]], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            rows = order[start:start + self.batch_size]
            with self._lock:
                out[rows] = self._forward(self._pad({key: [inputs[key][i] for i in rows] for key in inputs}))
            if progress:
                progress(min(start + self.batch_size, len(texts)), len(texts))
        return {DENSE: out}

    def _forward(self, batch: dict) -> np.ndarray:
        """One padded batch -> (b, dim) float32 unit vectors: FlagEmbedding's pooling, then L2 normalisation."""
        with torch.inference_mode(), autocast(self.precision, self.device):
            hidden = self.model.model(**batch, return_dict=True).last_hidden_state
            pooled = self.model.pooling(hidden, batch["attention_mask"]).float()
            return torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()


class M3Embedder(Embedder):
    """``BGEM3FlagModel``: bge-m3's dense vectors, lexical weights and ColBERT vectors, in one pass.

    ``lexical``: FlagEmbedding's lexical weights (max weight per token id; CLS, EOS, PAD and UNK left out;
    only weights > 0). ``multivector``: (n_tokens - 1, colbert_dim) rows, one per token after CLS (the final
    EOS/SEP included), as ``BGEM3FlagModel.encode`` returns them.
    """

    produces = frozenset({DENSE, LEXICAL, MULTIVECTOR})

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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        special = ("cls_token", "eos_token", "pad_token", "unk_token")
        self._unused_ids = {self.tokenizer.convert_tokens_to_ids(self.tokenizer.special_tokens_map[name])
                            for name in special if name in self.tokenizer.special_tokens_map}

    def encode(self, texts: Sequence[str], outputs: Sequence[str] = (DENSE,), progress: Progress | None = None
               ) -> Encoded:
        """Encode texts (bge-m3 uses no instruction) through ``BGEM3FlagModel``'s inference module, with the
        post-processing of its ``encode`` (lexical weights and ColBERT rows as above) and our batching loop:
        one length sort, no probe batch. Queries and passages are encoded the same way."""
        self._check_outputs(outputs)
        texts = list(texts)
        dense, sparse, colbert = DENSE in outputs, LEXICAL in outputs, MULTIVECTOR in outputs
        out: Encoded = {DENSE: np.empty((len(texts), self.dim), np.float32)} if dense else {}
        for name, wanted in ((LEXICAL, sparse), (MULTIVECTOR, colbert)):
            if wanted:
                out[name] = [None] * len(texts)
        if not texts:
            return out
        inputs = self._tokenize(texts)
        order = np.argsort([-len(ids) for ids in inputs["input_ids"]], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            rows = order[start:start + self.batch_size]
            features = {key: [inputs[key][i] for i in rows] for key in inputs}
            with self._lock:
                got = self._forward(self._pad(features), dense, sparse, colbert)
            if dense:
                out[DENSE][rows] = got[DENSE]
            for j, i in enumerate(rows):
                if sparse:
                    out[LEXICAL][i] = self._lexical(got[LEXICAL][j], np.asarray(features["input_ids"][j]))
                if colbert:
                    out[MULTIVECTOR][i] = np.ascontiguousarray(got[MULTIVECTOR][j, :len(features["input_ids"][j]) - 1],
                                                               np.float32)
            if progress:
                progress(min(start + self.batch_size, len(texts)), len(texts))
        return out

    def _forward(self, batch: dict, dense: bool, sparse: bool, colbert: bool) -> dict[str, np.ndarray]:
        """One padded (b, L) batch -> float32 ``{dense: (b, dim), lexical: (b, L) token weights, multivector:
        (b, L - 1, colbert_dim)}``, only the outputs asked for, through ``BGEM3FlagModel``'s inference module."""
        with torch.inference_mode(), autocast(self.precision, self.device), self._float_heads():
            got = self.model.model(batch, return_dense=dense, return_sparse=sparse, return_colbert_vecs=colbert)
        if sparse:
            got["sparse_vecs"] = got["sparse_vecs"].squeeze(-1)
        names = ((DENSE, "dense_vecs", dense), (LEXICAL, "sparse_vecs", sparse), (MULTIVECTOR, "colbert_vecs", colbert))
        return {name: got[key].float().cpu().numpy() for name, key, wanted in names if wanted}

    def _lexical(self, weights: np.ndarray, ids: np.ndarray) -> dict[str, float]:
        """One text's token weights -> ``{token id as str: max weight}`` over its tokens, as FlagEmbedding does."""
        result: dict[str, float] = {}
        for w, token in zip(weights.tolist(), ids.tolist()):
            if token not in self._unused_ids and w > 0 and w > result.get(str(token), 0.0):
                result[str(token)] = w
        return result

    def token_ids(self, text: str) -> list[int]:
        """Input ids of ``text`` as the model sees it (special tokens included, truncated to max length)."""
        with self._lock:
            return list(self.tokenizer(text, truncation=True, max_length=self.spec.max_length)["input_ids"])

    def decode_tokens(self, ids: Sequence[int]) -> list[str]:
        """Each token id as text, as ``BGEM3FlagModel.convert_id_to_token`` shows it."""
        with self._lock:
            return [self.tokenizer.decode([int(i)]) for i in ids]
