"""Command-line options shared by the commands, and the one place they become a :class:`RetrievalConfig`.

Every retrieval option defaults to "not given"; :func:`config_from_args` starts from ``--config FILE``
(or the configuration defaults) and applies only the options given, so a configuration file and a few
flags compose. ``prefix`` "b-" gives configuration B's options for ``evaluate --ab``.
"""
from __future__ import annotations

import argparse
import sys

from bge_explorer.errors import ConfigError, ExplorerError
from bge_explorer.models.backends import BACKENDS
from bge_explorer.models.catalog import DEFAULT_MODEL, EMBEDDERS, OFFLINE_MODEL
from bge_explorer.models.devices import PRECISIONS
from bge_explorer.retrieval.bm25_index import ANALYZERS
from bge_explorer.retrieval import modes as registry
from bge_explorer.retrieval.config import (AUTO, HYBRID, MODEL_CLASSES, POOLINGS, RetrievalConfig, parse_modes,
                                          parse_weights)
from bge_explorer.retrieval.fusion import FUSIONS


def stderr_progress(label: str):
    """A ``progress(done, total)`` callback drawing a tqdm bar on stderr."""
    from tqdm import tqdm

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=label, unit="chunk", file=sys.stderr, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return progress


def add_corpus_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", "--input", nargs="+", required=True, metavar="PATH",
                        help="corpus files: .txt .md .csv .tsv .jsonl .json .pdf (embed --engine ray: also .parquet "
                             "and folders)")
    parser.add_argument("--text-column", help="CSV/TSV/JSON field holding the text (default: text)")
    parser.add_argument("--id-column", help="CSV/TSV/JSON field holding the document id")
    parser.add_argument("--title-column", help="CSV/TSV/JSON field holding the title")


def add_config_options(parser: argparse.ArgumentParser, prefix: str = "", *, chunk_default: str = "") -> None:
    """The fields of a RetrievalConfig as options (``--model`` ... ``--top-n``); ``prefix`` "b-" for B's."""
    b, p = bool(prefix), f"--{prefix}"
    who = "B's " if b else ""
    parser.add_argument(f"{p}config", metavar="FILE", help=f"{who}configuration file (YAML or JSON, e.g. exported "
                                                           "from the app); the options below override its fields")
    parser.add_argument(f"{p}model", metavar="NAME_OR_PATH",
                        help=f"{who}model: catalog name ({', '.join(EMBEDDERS)}), Hub id or local directory "
                             f"(default {DEFAULT_MODEL}, or {OFFLINE_MODEL} when that cannot be had offline)")
    parser.add_argument(f"{p}pooling", choices=POOLINGS, help="pooling of a custom model (default cls)")
    parser.add_argument(f"{p}model-class", choices=MODEL_CLASSES, help="class of a custom model (default encoder)")
    if not b:
        parser.add_argument("--backend", choices=BACKENDS,
                            help="what runs the models: torch (default) or openvino (converted once, cached on disk)")
        parser.add_argument("--precision", choices=PRECISIONS,
                            help="fp32, bf16, int8 (openvino only) or auto (default): with torch bf16 where the CPU "
                                 "has bf16 units; with openvino the fastest precision the quality guard allows on "
                                 "this CPU, else torch (docs/cpu.md)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(f"{p}instruction", metavar="TEXT", help=f"{who}query instruction (default: the model's own)")
    group.add_argument(f"{p}no-instruction", action="store_true", help="search without a query instruction")
    if b:
        group.add_argument("--b-model-instruction", action="store_true", help="B uses its model's own instruction")
    parser.add_argument(f"{p}mode", metavar="MODE",
                        help=f"{who}retrieval mode: {', '.join(registry.names())}, {HYBRID} (the model's own "
                             "modes, fused), or modes joined by + (e.g. dense+bm25)"
                             + ("" if b else "; default dense"))
    parser.add_argument(f"{p}components", metavar="MODE,...",
                        help="the modes --mode hybrid fuses, e.g. dense,bm25 (default: the model's own)")
    parser.add_argument(f"{p}fusion", choices=(AUTO, *FUSIONS),
                        help=f"how modes are combined: {'; '.join(f'{n}: {f.label}' for n, f in FUSIONS.items())}; "
                             "auto (default): m3 for BGE-M3's own scores, else rrf")
    parser.add_argument(f"{p}weights", metavar="MODE=W,...",
                        help="fusion weights, e.g. dense=0.4,sparse=0.2,colbert=0.4, or positional in the order of "
                             "the modes; with --mode hybrid, naming weights picks the modes")
    parser.add_argument(f"{p}bm25", choices=tuple(ANALYZERS),
                        help="BM25 analyzer: stemmed (Snowball English, bm25s's setup; default) or lucene (no "
                             "stemming, BEIR's baseline)")
    reranker = parser.add_mutually_exclusive_group()
    reranker.add_argument(f"{p}reranker", metavar="NAME_OR_PATH", help=f"{who}cross-encoder to rerank the top n with")
    if b:
        reranker.add_argument("--b-no-reranker", action="store_true", help="B without A's reranker")
    parser.add_argument(f"{p}top-n", type=int, help="candidates the reranker rescores (default 20)")
    parser.add_argument(f"{p}chunk-size", type=int,
                        help=f"tokens per chunk, 0 for one chunk per document{chunk_default}; words without a model")
    parser.add_argument(f"{p}overlap", type=int, help="tokens shared by neighbouring chunks (default 32)")


def _given(args: argparse.Namespace, prefix: str, name: str):
    return getattr(args, f"{prefix.replace('-', '_')}{name}", None)


def config_from_args(args: argparse.Namespace, prefix: str = "", base: RetrievalConfig | None = None
                     ) -> RetrievalConfig:
    """The configuration the options describe: ``--config`` (else ``base``, else the defaults) with the given
    options applied. Raises ExplorerError naming the option or field at fault."""
    path = _given(args, prefix, "config")
    config = RetrievalConfig.load(path) if path else (base or RetrievalConfig())
    changes: dict = {}
    for name in ("model", "pooling", "reranker", "top_n", "overlap", "bm25"):
        value = _given(args, prefix, name)
        if value is not None:
            changes[name] = value
    if _given(args, prefix, "model") is not None:
        changes.update(pooling=_given(args, prefix, "pooling"), model_class=_given(args, prefix, "model_class"),
                       revision=None)
    elif _given(args, prefix, "model_class") is not None:
        changes["model_class"] = _given(args, prefix, "model_class")
    for name in ("backend", "precision"):
        if not prefix and getattr(args, name, None):
            changes[name] = getattr(args, name)
    if _given(args, prefix, "chunk_size") is not None:
        changes["chunk_size"] = _given(args, prefix, "chunk_size") or None
    if _given(args, prefix, "instruction") is not None:
        changes["instruction"] = _given(args, prefix, "instruction")
    elif _given(args, prefix, "no_instruction"):
        changes["instruction"] = ""
    elif _given(args, prefix, "model_instruction"):
        changes["instruction"] = None
    if _given(args, prefix, "no_reranker"):
        changes["reranker"] = None
    if _given(args, prefix, "fusion"):
        changes["fusion"] = _given(args, prefix, "fusion")
    changes.update(_modes_and_weights(args, prefix, config))
    if path is None and _given(args, prefix, "model") is None:
        changes.update(default_model_for(config, changes.get("modes", config.modes), given_base=bool(prefix)))
    try:
        return config.with_(**changes)
    except ConfigError as exc:
        option = f"--{prefix}{exc.field.replace('_', '-')}"
        raise ExplorerError(f"{option}: {exc.reason}") from None


def default_model_for(config: RetrievalConfig, modes: tuple[str, ...], *, given_base: bool) -> dict:
    """The model change for a configuration whose model nobody named: none for text-only modes (BM25 without
    --model loads no model, chunk sizes count words), the default model where the modes need one and ``config``
    (B's base: A, BM25 only) has none. ``given_base``: ``config`` is another configuration, not the defaults."""
    needs = modes == (HYBRID,) or any(registry.get(m).needs for m in modes)
    if not needs and not given_base:
        return {"model": None}
    if needs and config.model is None:
        return {"model": DEFAULT_MODEL}
    return {}


def _modes_and_weights(args: argparse.Namespace, prefix: str, config: RetrievalConfig) -> dict:
    mode, components = _given(args, prefix, "mode"), _given(args, prefix, "components")
    weights_text = _given(args, prefix, "weights")
    out: dict = {}
    try:
        if mode:
            out["modes"] = parse_modes(mode)
        modes = out.get("modes", config.modes)
        if components:
            if modes != (HYBRID,):
                raise ExplorerError(f"--{prefix}components goes with --{prefix}mode hybrid")
            modes = out["modes"] = parse_modes(components.replace(",", "+"))
        order = modes if modes != (HYBRID,) else ("dense", "sparse", "colbert")
        weights = parse_weights(weights_text, tuple(order), f"--{prefix}weights")
    except ConfigError as exc:
        option = exc.field if exc.field.startswith("--") else f"--{prefix}mode"
        raise ExplorerError(f"{option}: {exc.reason}") from None
    if weights is not None:
        if modes == (HYBRID,) and weights_text and "=" in weights_text:
            out["modes"] = tuple(m for m in registry.names() if weights.get(m, 0) > 0)  # naming weights picks modes
        out["weights"] = weights
    elif "modes" in out and config.weights:
        out["weights"] = {m: w for m, w in config.weights if m in out["modes"]}
    return out


def resolve_default_model(config: RetrievalConfig) -> RetrievalConfig:
    """The default model, or the offline fallback's when it cannot be had (said on stderr); other models as is."""
    if config.model != DEFAULT_MODEL or not config.needs_model and not config.chunk_size:
        return config
    from bge_explorer.models.loading import load_embedder_with_fallback

    embedder, notice = load_embedder_with_fallback(DEFAULT_MODEL, backend=config.backend, precision=config.precision)
    if notice:
        print(f"note: {notice}", file=sys.stderr)
    return config.with_(model=embedder.spec.name)
