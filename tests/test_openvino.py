"""The OpenVINO backend on tiny random models of the real architectures (BERT encoder, BGE-M3, BERT cross-encoder),
loaded through the same factory as torch: vectors and scores against torch fp32 and FlagEmbedding's own models,
the on-disk cache of converted models, and ``auto``: the guard's stored results, and the fallback to torch.

Bounds. fp32 matches torch within float rounding. bf16 and int8 are held to the quality guard's cosine (0.99),
except int8 on these random models: their weights are drawn with std 0.5 (25x a trained BERT's 0.02, so that
texts get distinct vectors), which gives activation outliers per-tensor int8 clips. Measured here on random
texts: min cosine 0.977 (CLS), 0.999 (mean), 0.931 (M3 dense), reranker Spearman 0.994; the bounds below are
0.95 (encoder), 0.9 (M3) and a Spearman of 0.9. The real all-MiniLM-L6-v2 gives 0.995 over 640 SciFact passages
with the same recipe (docs/cpu.md); whether ``auto`` uses int8 for a real model is the guard's measurement on
that model (tests/test_guard_scifact.py), not these.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
from FlagEmbedding import FlagReranker
from scipy.stats import spearmanr

from bge_explorer.cli.commands import build_parser
from bge_explorer.cli.options import config_from_args
from bge_explorer.errors import ConfigError, ModelLoadError
from bge_explorer.models import backends, loading, openvino_backend
from bge_explorer.models.catalog import resolve_spec
from bge_explorer.models.devices import cpu_has_bf16
from bge_explorer.models.loading import load_embedder, load_reranker, locate
from bge_explorer.retrieval.config import RetrievalConfig
from conftest import SAMPLE_QUESTIONS, random_corpus

pytest.importorskip("openvino")

TEXTS = list(random_corpus(24, seed=5, titles=False).documents["text"])  # not the calibration sample
INT8_TINY_COSINE = 0.95  # see the module docstring
M3_INT8_TINY_COSINE = 0.9


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory):
    """One cache folder for this module: each model and precision is converted once here."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("cache")
        patch.setenv("BGE_EXPLORER_CACHE_DIR", str(path))
        yield path


@pytest.fixture(autouse=True)
def no_remembered_failures(monkeypatch):
    monkeypatch.setattr(loading, "FAILED", {})


@pytest.fixture
def new_process(monkeypatch):
    """Nothing loaded in memory yet, as in a new process (the disk cache stays)."""
    monkeypatch.setattr(loading, "MODEL_CACHE", loading.ModelCache())


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))


@pytest.mark.parametrize("precision,bound", [("fp32", 0.99999), ("bf16", backends.MIN_COSINE),
                                             ("int8", INT8_TINY_COSINE)])
def test_openvino_encoder_vectors_are_within_the_guard_of_torch_fp32(tiny_encoder, precision, bound):
    reference = load_embedder(tiny_encoder, precision="fp32").encode_corpus(TEXTS)
    embedder = load_embedder(tiny_encoder, backend="openvino", precision=precision)
    assert (embedder.backend, embedder.precision, embedder.device) == ("openvino", precision, "cpu")
    vectors = embedder.encode_corpus(TEXTS)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert min_cosine(vectors, reference) >= bound
    if precision == "fp32":
        np.testing.assert_allclose(vectors, reference, atol=2e-5)
    assert embedder.path_note.startswith(f"openvino {precision} on the CPU")
    assert embedder.cache_key != load_embedder(tiny_encoder, precision="fp32").cache_key


def test_openvino_m3_gives_the_three_outputs_of_torch(tiny_m3, m3_fp32):
    outputs = ("dense", "lexical", "multivector")
    reference = m3_fp32.encode(TEXTS, outputs)
    exact = load_embedder(tiny_m3, model_class="m3", backend="openvino", precision="fp32")
    got = exact.encode(TEXTS, outputs)
    np.testing.assert_allclose(got["dense"], reference["dense"], atol=2e-5)
    for mine, theirs in zip(got["lexical"], reference["lexical"]):
        assert mine.keys() == theirs.keys()
        np.testing.assert_allclose([mine[k] for k in mine], [theirs[k] for k in mine], atol=1e-4)
    for mine, theirs in zip(got["multivector"], reference["multivector"]):
        np.testing.assert_allclose(mine, theirs, atol=2e-5)
    assert (exact.colbert_dim, exact.vocab_size) == (m3_fp32.colbert_dim, m3_fp32.vocab_size)


@pytest.mark.slow  # a second M3 conversion and a calibration: about 8 s on 2 busy cores
def test_openvino_m3_int8_dense_vectors_stay_close(tiny_m3, m3_fp32):
    quantised = load_embedder(tiny_m3, model_class="m3", backend="openvino", precision="int8")
    assert min_cosine(quantised.encode_corpus(TEXTS), m3_fp32.encode_corpus(TEXTS)) >= M3_INT8_TINY_COSINE


def test_openvino_reranker_scores_are_close_to_flagrerankers(tiny_reranker):
    expected = np.array(FlagReranker(tiny_reranker, use_fp16=False, devices="cpu").compute_score(
        [["eiffel tower paris", t] for t in TEXTS]))
    exact = load_reranker(tiny_reranker, backend="openvino", precision="fp32")
    np.testing.assert_allclose(exact.score("eiffel tower paris", TEXTS), expected, atol=1e-4)
    assert exact.cache_key != load_reranker(tiny_reranker, precision="fp32").cache_key


@pytest.mark.slow  # a second conversion and a calibration
def test_openvino_int8_reranker_keeps_the_order_of_flagrerankers_scores(tiny_reranker):
    expected = FlagReranker(tiny_reranker, use_fp16=False, devices="cpu").compute_score(
        [["eiffel tower paris", t] for t in TEXTS])
    quantised = load_reranker(tiny_reranker, backend="openvino", precision="int8").score("eiffel tower paris", TEXTS)
    assert spearmanr(quantised, expected).statistic >= 0.9  # see the module docstring


def test_a_converted_model_is_cached_on_disk_so_the_next_process_converts_nothing(tiny_encoder, tmp_path,
                                                                                   monkeypatch, new_process):
    """Mean pooling here (the parametrised test above has CLS): it also matches torch's."""
    path, cache_dir = tiny_encoder, tmp_path / "cache"
    monkeypatch.setenv("BGE_EXPLORER_CACHE_DIR", str(cache_dir))
    before = openvino_backend.CONVERSIONS.copy()
    first = load_embedder(path, pooling="mean", backend="openvino", precision="fp32")
    assert openvino_backend.CONVERSIONS - before == {("encoder", "fp32"): 1}
    reference = load_embedder(path, pooling="mean", precision="fp32").encode_corpus(TEXTS)
    np.testing.assert_allclose(first.encode_corpus(TEXTS), reference, atol=2e-5)
    monkeypatch.setattr(loading, "MODEL_CACHE", loading.ModelCache())  # a new process again: nothing in memory
    second = load_embedder(path, pooling="mean", backend="openvino", precision="fp32")
    assert second is not first and openvino_backend.CONVERSIONS - before == {("encoder", "fp32"): 1}
    np.testing.assert_array_equal(second.encode_corpus(TEXTS), first.encode_corpus(TEXTS))
    assert second.model.directory.startswith(str(cache_dir / "openvino"))

    spec = resolve_spec(path, pooling="mean")
    _, identity = locate(spec)
    current = loading.settings.current()
    directory = openvino_backend.cache_directory(spec, identity, "fp32", current)
    assert str(directory) == second.model.directory
    assert directory != openvino_backend.cache_directory(spec, identity, "int8", current)
    assert directory != openvino_backend.cache_directory(spec, identity + "-other-revision", "fp32", current)


def test_auto_falls_back_to_torch_when_openvino_is_off_and_says_so(tiny_encoder, monkeypatch, new_process):
    monkeypatch.setenv("BGE_EXPLORER_OPENVINO", "0")
    embedder = load_embedder(tiny_encoder, backend="openvino", precision="auto")
    assert embedder.backend == "torch"
    assert "OpenVINO is off" in embedder.path_note and "BGE_EXPLORER_OPENVINO=0" in embedder.path_note


def test_auto_falls_back_to_torch_when_openvino_cannot_be_imported_and_says_so(tiny_encoder, monkeypatch, new_process):
    monkeypatch.setitem(sys.modules, "openvino", None)  # what `import openvino` meets where it is not installed
    embedder = load_embedder(tiny_encoder, backend="openvino", precision="auto")
    assert embedder.backend == "torch" and embedder.precision == ("bf16" if cpu_has_bf16() else "fp32")
    assert "OpenVINO could not be used" in embedder.path_note and "OpenVINO is not installed" in embedder.path_note
    with pytest.raises(ModelLoadError, match=r"the openvino fp32 route failed: OpenVINO is not installed"):
        load_embedder(tiny_encoder, backend="openvino", precision="fp32")


def test_auto_falls_back_to_torch_when_openvino_fails_and_says_so(tiny_reranker, tmp_path, monkeypatch, new_process):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("BGE_EXPLORER_CACHE_DIR", str(blocker))  # converted models cannot be stored
    reranker = load_reranker(tiny_reranker, backend="openvino", precision="auto")
    assert reranker.backend == "torch"
    assert "OpenVINO could not be used" in reranker.path_note and "failed: " in reranker.path_note
    assert len(reranker.score("eiffel tower", TEXTS[:3])) == 3


def guard_result(precision: str, seconds: float, min_cosine: float = 0.995) -> backends.GuardResult:
    """A stored guard result written for these tests (the figures are made up; the store and the choice are real)."""
    return backends.GuardResult("openvino", precision, min_cosine, 0.998, 0.6440, 0.6451, seconds, 640,
                                "openvino 2026.4.1", "2026-12-02T03:00:00")


def test_auto_uses_int8_only_after_its_guard_passed_and_never_a_path_that_failed(tiny_encoder, cache_dir):
    spec = resolve_spec(tiny_encoder)
    _, identity = locate(spec)
    unmeasured = load_embedder(tiny_encoder, backend="openvino", precision="auto")
    assert unmeasured.precision == ("bf16" if cpu_has_bf16() else "fp32")
    assert "int8 not used until its quality guard passes" in unmeasured.path_note

    backends.record_guard(spec, identity, [guard_result("int8", 4.1), guard_result("bf16", 4.8),
                                           guard_result("fp32", 14.6)])
    assert backends.guard_results(spec, identity)[("openvino", "int8")].passed
    fastest = load_embedder(tiny_encoder, backend="openvino", precision="auto")
    assert fastest.precision == "int8" and "passed the quality guard on this CPU" in fastest.path_note

    backends.record_guard(spec, identity, [guard_result("int8", 4.1, min_cosine=0.95)])
    after_failure = load_embedder(tiny_encoder, backend="openvino", precision="auto")
    assert after_failure.precision != "int8" and "int8 not used: its quality guard FAILED" in after_failure.path_note
    assert backends.guard_results(spec, identity + "-another-revision") == {}  # results are per model identity


def test_the_cli_says_which_route_runs(tiny_encoder, sample_corpus, capsys):
    from bge_explorer.cli.commands import main

    assert main(["search", "--corpus", sample_corpus, "--model", tiny_encoder, "--backend", "openvino",
                 "--precision", "fp32", "--no-instruction", "eiffel tower"]) == 0
    assert "model: openvino fp32 on the CPU" in capsys.readouterr().err


def test_backend_and_precision_are_validated_and_come_from_the_cli(sample_corpus):
    with pytest.raises(ConfigError, match="int8 runs on the openvino backend only") as info:
        load_embedder("all-MiniLM-L6-v2", precision="int8")
    assert info.value.field == "precision"
    with pytest.raises(ConfigError) as info:
        load_reranker("bge-reranker-base", backend="onnx")
    assert info.value.field == "backend"
    args = build_parser().parse_args(["search", "--corpus", sample_corpus, "--backend", "openvino", "--precision",
                                      "int8", "eiffel tower"])
    config = config_from_args(args)
    assert (config.backend, config.precision) == ("openvino", "int8") and "openvino int8" in config.describe()
    # the backend at its default leaves ids as they were before the field existed (measured at commit 33149cb)
    assert RetrievalConfig().id == "8d56280b3ae7" and RetrievalConfig(backend="openvino").id != "8d56280b3ae7"
    assert RetrievalConfig(model="bge-m3", modes=("hybrid",), precision="fp32").id == "db29f206ad58"


def test_the_app_runs_its_models_on_the_deployments_route_and_says_which(tiny_encoder, tiny_reranker, monkeypatch):
    from bge_explorer.app import evaluate, explorer
    from bge_explorer.errors import SettingsError

    monkeypatch.setenv("BGE_EXPLORER_BACKEND", "openvino")
    monkeypatch.setenv("BGE_EXPLORER_PRECISION", "fp32")
    *_, app = explorer.load_sample(None)
    *_, app = explorer.build_index(tiny_encoder, chunking="none", state=app, progress=None)
    embedder = app.session.embedder
    assert (embedder.backend, embedder.precision) == ("openvino", "fp32")
    assert "Runs on: openvino fp32 on the CPU" in explorer.loaded_model_html(app)
    config = evaluate.make_config(tiny_encoder, "none", "", tiny_reranker, 5, 0)
    assert (config.backend, config.precision) == ("openvino", "fp32")
    assert load_reranker(tiny_reranker, backend=config.backend, precision=config.precision).backend == "openvino"

    monkeypatch.setenv("BGE_EXPLORER_PRECISION", "int8")
    monkeypatch.setenv("BGE_EXPLORER_BACKEND", "torch")
    with pytest.raises(SettingsError, match="BGE_EXPLORER_PRECISION: int8 runs on the openvino backend only"):
        backends.deployment_route()
    monkeypatch.setenv("BGE_EXPLORER_BACKEND", "onnx")
    with pytest.raises(SettingsError, match="BGE_EXPLORER_BACKEND: must be one of torch, openvino"):
        backends.deployment_route()


def test_the_guard_measures_a_path_against_torch_fp32_and_stores_it_for_auto(tiny_encoder, sample_corpus, tmp_path):
    from bge_explorer.data.qrels import load_beir
    from bge_explorer.evaluation import guard
    from test_evaluation import write_beir

    folder = write_beir(tmp_path / "sample", sample_corpus, {f"q{i}": q for i, q in enumerate(SAMPLE_QUESTIONS)},
                        [(f"q{i}", doc, 1) for i, doc in enumerate(SAMPLE_QUESTIONS.values())])
    lines: list[str] = []
    result = guard.measure(load_beir(folder), tiny_encoder, paths=(("openvino", "fp32"),), sample=12, log=lines.append)
    (measured,) = result.results
    assert (measured.backend, measured.precision, measured.passages) == ("openvino", "fp32", 12)
    assert measured.min_cosine > 0.9999 and measured.ndcg == pytest.approx(result.reference_ndcg, abs=1e-6)
    assert measured.passed and measured.versions.startswith("openvino 20") and len(lines) == 2
    spec = resolve_spec(tiny_encoder)
    assert backends.guard_results(spec, locate(spec)[1])[("openvino", "fp32")] == measured
