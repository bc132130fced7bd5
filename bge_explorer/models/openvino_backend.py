"""The OpenVINO backend: FlagEmbedding's own torch modules converted by OpenVINO, cached on disk, run on the CPU.

Tokenisation stays the model's Hugging Face tokenizer (as FlagEmbedding loads it) and batching stays the torch
wrappers' loop: each class here overrides only the per-batch forward pass. What is converted is the whole
computation after tokenisation, traced from FlagEmbedding's modules, so pooling and normalisation are
FlagEmbedding's own: ``FlagModel.pooling`` then L2 normalisation (encoders); ``BGEM3FlagModel``'s inference
module with its dense, sparse and ColBERT heads (M3); the classifier's logit (cross-encoders).

Converted models are kept under ``openvino/`` in the cache folder (BGE_EXPLORER_CACHE_DIR), one directory per
model identity (Hub revision or file hash), model class, pooling, precision and OpenVINO version (and NNCF
version and calibration sample for int8), so only the first load converts (:data:`CONVERSIONS` counts them).
int8 is NNCF's static post-training quantisation (transformer preset, SmoothQuant on the MatMuls with alpha
:data:`SMOOTH_QUANT_ALPHA`, each layer's FFN output projection left unquantised: :data:`INT8_KEPT`) calibrated on
:data:`CALIBRATION_FILE`, the project's sample corpus (26 documents): each title + text as a passage and each title
as a query (in batches of 4; cross-encoders: each title with its own text and with the next document's).
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bge_explorer import settings
from bge_explorer.models.catalog import ModelSpec
from bge_explorer.models.embedders import DENSE, LEXICAL, MULTIVECTOR, FlagEmbedder, M3Embedder
from bge_explorer.models.rerankers import Reranker

FORMAT = 3  # bump when the converted graph changes: older cache entries are then not used
INT8_KEPT = r".*layer\.\d+\.output\.dense/.*"  # each layer's FFN output projection, left unquantised (docs/cpu.md)
SMOOTH_QUANT_ALPHA = 0.5  # SmoothQuant's migration strength on MatMuls (NNCF's transformer default, 0.95, is worse)
CALIBRATION_FILE = Path(__file__).resolve().parents[2] / "assets" / "sample_corpus.jsonl"
CALIBRATION_BATCH = 4
GRAPH_INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # every graph's forward() takes these, in order
CONVERSIONS: collections.Counter = collections.Counter()  # (model class, precision) -> conversions in this process


class BackendFailure(Exception):
    """OpenVINO could not run this model here (not installed, conversion or compilation failed); says why."""


@dataclasses.dataclass
class Compiled:
    """A converted model ready to run: its tokenizer, config, compiled model, input names, cache directory, and
    the versions it was converted with."""

    tokenizer: object
    config: object
    compiled: object  # openvino.CompiledModel
    inputs: tuple[str, ...]
    directory: str
    versions: str


def versions(precision: str) -> str:
    """The versions a converted model depends on: OpenVINO's, and NNCF's for int8."""
    import openvino

    text = f"openvino {openvino.__version__.split('-')[0]}"
    if precision == "int8":  # the installed version, without importing NNCF (0.5 s) when the cache holds the model
        text += f", nncf {importlib.metadata.version('nncf')}"
    return text


@functools.cache
def _core():
    import openvino

    return openvino.Core()


class _Dense(torch.nn.Module):
    """FlagModel's encoder, its pooling and L2 normalisation: (b, L) ids -> (b, dim) unit vectors."""

    def __init__(self, flag_model):
        super().__init__()
        self.encoder, self.pooling = flag_model.model, flag_model.pooling

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **kwargs)
        pooled = self.pooling(hidden.last_hidden_state, attention_mask).float()
        return torch.nn.functional.normalize(pooled, dim=-1)


class _M3Heads(torch.nn.Module):
    """BGEM3FlagModel's inference module: (b, L) ids -> dense (b, dim), token weights (b, L), ColBERT (b, L-1, d)."""

    def __init__(self, m3_model):
        super().__init__()
        self.m3 = m3_model.model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        got = self.m3(inputs, return_dense=True, return_sparse=True, return_colbert_vecs=True)
        return got["dense_vecs"], got["sparse_vecs"].squeeze(-1), got["colbert_vecs"]


class _Logits(torch.nn.Module):
    """FlagReranker's classifier: (b, L) ids of (query, passage) pairs -> (b,) raw logits."""

    def __init__(self, flag_reranker):
        super().__init__()
        self.classifier = flag_reranker.model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        out = self.classifier(input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **kwargs)
        return out.logits.view(-1).float()


def _calibration_docs() -> list[dict]:
    with open(CALIBRATION_FILE, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class OpenVINOModel:
    """What every OpenVINO wrapper shares (listed first in its bases): no torch module to place, numpy batches,
    one compiled model run per batch. Each subclass names the module FlagEmbedding's model becomes a graph by
    (``graph``: FlagEmbedding's model -> torch module) and may give its own ``sample_inputs``."""

    backend = "openvino"
    model: Compiled

    @staticmethod
    def _hidden_size(model: Compiled) -> int:
        return int(model.config.hidden_size)

    @property
    def versions(self) -> str:
        return self.model.versions

    def _place(self) -> None:
        """Nothing to place: the compiled model runs on the CPU."""

    def _pad(self, features: dict[str, list]) -> dict:
        return self.model.tokenizer.pad(features, padding=True, return_tensors="np")

    def _run(self, batch: dict) -> list[np.ndarray]:
        """One padded batch through the compiled model -> its outputs, copied out of OpenVINO's buffers."""
        got = self.model.compiled({name: np.asarray(batch[name], dtype=np.int64) for name in self.model.inputs})
        return [np.array(got[i]) for i in range(len(got))]

    @staticmethod
    def sample_inputs(tokenizer, max_length: int, calibration: bool) -> list[dict]:
        """Padded int64 batches: two short texts to trace with, or the calibration batches (module docstring)."""
        if calibration:
            docs = _calibration_docs()
            texts = [f"{d.get('title', '')} {d['text']}".strip() for d in docs] + [d.get("title") or d["text"]
                                                                                 for d in docs]
        else:
            texts = ["a short text", "a longer text to trace the graph with"]
        return [dict(tokenizer(texts[i:i + CALIBRATION_BATCH], truncation=True, max_length=max_length, padding=True,
                               return_tensors="np")) for i in range(0, len(texts), CALIBRATION_BATCH)]


class OpenVINOFlagEmbedder(OpenVINOModel, FlagEmbedder):
    """:class:`FlagEmbedder` run by OpenVINO: the converted graph ends with FlagEmbedding's pooling and L2 norm."""

    graph = staticmethod(_Dense)

    def _forward(self, batch: dict) -> np.ndarray:
        return self._run(batch)[0]


class OpenVINOM3Embedder(OpenVINOModel, M3Embedder):
    """:class:`M3Embedder` run by OpenVINO: one graph gives the dense, lexical and ColBERT outputs."""

    graph = staticmethod(_M3Heads)

    @property
    def vocab_size(self) -> int:
        return max(len(self.tokenizer), int(self.model.config.vocab_size))

    @property
    def colbert_dim(self) -> int:
        return int(self.model.compiled.output(2).get_partial_shape()[2].get_length())

    def _forward(self, batch: dict, dense: bool, sparse: bool, colbert: bool) -> dict[str, np.ndarray]:
        got = dict(zip((DENSE, LEXICAL, MULTIVECTOR), self._run(batch)))
        return {name: got[name] for name, wanted in ((DENSE, dense), (LEXICAL, sparse), (MULTIVECTOR, colbert))
                if wanted}


class OpenVINOReranker(OpenVINOModel, Reranker):
    """:class:`Reranker` run by OpenVINO: FlagReranker's inputs, the classifier's logit."""

    graph = staticmethod(_Logits)

    def _forward(self, features: dict[str, list]) -> np.ndarray:
        return self._run(self._pad(features))[0].astype(np.float64)

    @staticmethod
    def sample_inputs(tokenizer, max_length: int, calibration: bool) -> list[dict]:
        """Padded (query, passage) batches: two pairs to trace with, or each sample-corpus title with its own text
        and with the next document's, :data:`CALIBRATION_BATCH` pairs a batch."""
        if calibration:
            docs = _calibration_docs()
            queries = [d.get("title") or d["_id"] for d in docs] * 2
            passages = [d["text"] for d in docs] + [d["text"] for d in docs[1:] + docs[:1]]
        else:
            queries, passages = ["a query", "another query"], ["a passage", "a longer passage to trace the graph with"]
        return [dict(tokenizer(queries[i:i + CALIBRATION_BATCH], passages[i:i + CALIBRATION_BATCH],
                               truncation="only_second", max_length=max_length, padding=True, return_tensors="np"))
                for i in range(0, len(queries), CALIBRATION_BATCH)]


def cache_directory(spec: ModelSpec, identity: str, precision: str, current: settings.Settings) -> Path:
    """Where the converted model of this identity, class, pooling and precision lives for this OpenVINO version."""
    key = {"identity": identity, "class": spec.model_class, "pooling": spec.pooling, "precision": precision,
           "versions": versions(precision), "format": FORMAT}
    if precision == "int8":
        key["calibration"] = hashlib.sha256(CALIBRATION_FILE.read_bytes()).hexdigest()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", os.path.basename(spec.name.rstrip("/\\")))[-40:]
    return current.cache_path("openvino") / f"{slug}-{spec.model_class}-{precision}-{digest}"


def _convert(wrapper: type, load_torch: Callable[[], object], spec: ModelSpec, precision: str, directory: Path) -> None:
    """Convert FlagEmbedding's model (loaded by ``load_torch``, fp32 on the CPU) to ``directory``; int8 calibrates."""
    import openvino

    torch_model = load_torch()
    tokenizer = torch_model.tokenizer
    sample = wrapper.sample_inputs(tokenizer, spec.max_length, False)[0]
    example = {name: torch.from_numpy(sample[name]) for name in GRAPH_INPUTS if name in sample}
    with torch.no_grad(), warnings.catch_warnings():  # tracing, then converting, is twice as fast as converting
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks traced as constants: shapes are free
        traced = torch.jit.trace(wrapper.graph(torch_model).eval(), example_kwarg_inputs=example, strict=False)
        model = openvino.convert_model(traced)
    for port, name in zip(model.inputs, example, strict=True):  # the graph's inputs, in forward()'s order
        port.get_tensor().set_names({name})
    model.reshape({name: openvino.PartialShape([-1, -1]) for name in example})
    if precision == "int8":
        import logging

        import nncf

        nncf.set_log_level(logging.ERROR)
        batches = wrapper.sample_inputs(tokenizer, spec.max_length, True)
        names = [port.get_any_name() for port in model.inputs]
        dataset = nncf.Dataset([{n: b[n].astype(np.int64) for n in names} for b in batches])
        smooth_quant = nncf.AdvancedSmoothQuantParameters(matmul=SMOOTH_QUANT_ALPHA)
        model = nncf.quantize(model, dataset, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(batches),
                              ignored_scope=nncf.IgnoredScope(patterns=[INT8_KEPT], validate=False),
                              advanced_parameters=nncf.AdvancedQuantizationParameters(
                                  smooth_quant_alphas=smooth_quant))
    staging = directory.with_name(f"{directory.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    openvino.save_model(model, str(staging / "model.xml"), compress_to_fp16=False)
    (staging / "meta.json").write_text(json.dumps({"model": spec.name, "class": spec.model_class,
                                                   "pooling": spec.pooling, "precision": precision,
                                                   "versions": versions(precision)}, indent=1))
    try:
        os.replace(staging, directory)
    except OSError:  # another process converted it first
        shutil.rmtree(staging, ignore_errors=True)
    CONVERSIONS[(spec.model_class, precision)] += 1


def load(wrapper: type, load_torch: Callable[[], object], spec: ModelSpec, path: str, identity: str, precision: str,
         batch_size: int) -> tuple[object, int]:
    """``wrapper`` (an OpenVINO class above) around the cached converted model, converting it first when missing.
    Returns (the wrapper, bytes of its weights). Raises BackendFailure saying why OpenVINO cannot run it."""
    try:
        from transformers import AutoConfig, AutoTokenizer

        current = settings.current()
        directory = cache_directory(spec, identity, precision, current)
        if not (directory / "model.xml").is_file():
            _convert(wrapper, load_torch, spec, precision, directory)
        config = {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "PERFORMANCE_HINT": "LATENCY"}
        if precision != "int8":
            config["INFERENCE_PRECISION_HINT"] = {"fp32": "f32", "bf16": "bf16"}[precision]
        compiled = _core().compile_model(str(directory / "model.xml"), "CPU", config)
        trust = current.trust_remote_code
        converted = Compiled(AutoTokenizer.from_pretrained(path, trust_remote_code=trust),
                             AutoConfig.from_pretrained(path, trust_remote_code=trust), compiled,
                             tuple(port.get_any_name() for port in compiled.inputs), str(directory),
                             versions(precision))
        obj = wrapper(spec, converted, identity, "cpu", precision, batch_size)
    except ImportError as exc:
        raise BackendFailure(f"OpenVINO is not installed ({exc}; pip install openvino nncf)") from exc
    except Exception as exc:  # conversion, calibration, compilation or a cache folder that cannot be written
        raise BackendFailure(f"{type(exc).__name__}: {exc}".splitlines()[0][:300]) from exc
    return obj, os.path.getsize(directory / "model.bin")
