"""RetrievalConfig: validation names the bad field, JSON and YAML round trips, a stable id; the CLI's --config."""
from __future__ import annotations

import dataclasses
import json

import pytest

from bge_explorer.cli.commands import build_parser, main
from bge_explorer.cli.evaluate import configs
from bge_explorer.cli.options import config_from_args
from bge_explorer.errors import ConfigError
from bge_explorer.retrieval.config import RetrievalConfig

FIELDS = [f.name for f in dataclasses.fields(RetrievalConfig)]

BAD = [  # (field, the fields given, what the message says)
    ("model", {"model": 5}, "must be a string"),
    ("model", {"model": None, "modes": ("dense",)}, "need an embedding model"),
    ("pooling", {"pooling": "max"}, "must be one of cls, mean"),
    ("model_class", {"model_class": "reranker"}, "must be one of encoder, m3"),
    ("revision", {"revision": 3.0}, "must be a string"),
    ("backend", {"backend": "onnx"}, "must be one of torch, openvino"),
    ("precision", {"precision": "fp8"}, "must be one of auto, fp32, bf16, int8"),
    ("precision", {"precision": "int8"}, "int8 runs on the openvino backend only"),
    ("instruction", {"instruction": 7}, "must be a string or null"),
    ("chunk_size", {"chunk_size": "big"}, "must be a whole number"),
    ("chunk_size", {"chunk_size": 1.5}, "must be a whole number"),
    ("overlap", {"overlap": -1}, "must be at least 0"),
    ("overlap", {"chunk_size": 32, "overlap": 32}, "below the chunk size"),
    ("modes", {"modes": ("splade",)}, "unknown mode 'splade'"),
    ("modes", {"modes": ()}, "name at least one mode"),
    ("modes", {"modes": ("hybrid", "bm25")}, "use it alone"),
    ("modes", {"modes": 5}, "must be a list of mode names"),
    ("fusion", {"fusion": "max"}, "must be one of auto, rrf, weighted, m3"),
    ("weights", {"weights": {"dense": -1}}, "must be at least 0"),
    ("weights", {"weights": {"dense": "heavy"}}, "must map mode names to numbers"),
    ("weights", {"weights": {"splade": 1}}, "unknown mode 'splade'"),
    ("weights", {"modes": ("dense",), "weights": {"bm25": 1}}, "not in modes: bm25"),
    ("rrf_k", {"rrf_k": 0}, "must be at least 1"),
    ("bm25", {"bm25": "porter"}, "must be one of stemmed, lucene"),
    ("bm25", {"bm25": ["stemmed"]}, "must be one of stemmed, lucene"),
    ("reranker", {"reranker": 1}, "must be a string"),
    ("top_n", {"top_n": 0}, "must be at least 1"),
    ("k", {"k": 0}, "must be at least 1"),
    ("k", {"k": True}, "must be a whole number"),
    ("index", {"index": "hnsw"}, "must be one of faiss-flat"),
    ("label", {"label": 5}, "must be a string"),
]


@pytest.mark.parametrize("field,fields,reason", BAD, ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(BAD)])
def test_validation_names_the_bad_field(field, fields, reason):
    with pytest.raises(ConfigError) as info:
        RetrievalConfig(**fields)
    assert info.value.field == field
    assert reason in info.value.reason
    assert str(info.value).startswith(f"{field}: ")


def test_every_field_has_a_validation_case():
    assert {field for field, _, _ in BAD} == set(FIELDS)


def test_unknown_fields_in_a_mapping_are_named():
    with pytest.raises(ConfigError, match=r"unknown field\(s\) modle; the fields are") as info:
        RetrievalConfig.from_dict({"modle": "x"}, where="my.yaml")
    assert info.value.field == "my.yaml"


def sample_config(**changes) -> RetrievalConfig:
    """A configuration away from the defaults in every field that has a second valid value."""
    fields = dict(model="bge-m3", pooling="cls", model_class="m3", revision="0123abcd", backend="openvino",
                  precision="fp32",
                  instruction="Represent this: ", chunk_size=128, overlap=16, modes=("dense", "sparse", "bm25"),
                  fusion="weighted", weights={"dense": 0.5, "bm25": 0.25}, rrf_k=30, reranker="bge-reranker-base",
                  top_n=7, k=50, label="mine")
    fields.update(changes)
    return RetrievalConfig(**fields)


@pytest.mark.parametrize("config", [RetrievalConfig(), sample_config(), sample_config(instruction="", chunk_size=None),
                                    RetrievalConfig(model=None, modes=("bm25",), chunk_size=None, label="BM25 ü")],
                         ids=["defaults", "sample", "no-instruction-whole-docs", "bm25-only"])
def test_json_and_yaml_round_trips_are_equal(config, tmp_path):
    for text in (config.to_json(), config.to_yaml()):
        back = RetrievalConfig.from_text(text)
        assert back == config and back.id == config.id and back.to_dict() == config.to_dict()
    for name, text in (("c.json", config.to_json()), ("c.yaml", config.to_yaml()), ("c.yml", config.to_yaml())):
        (tmp_path / name).write_text(text, encoding="utf-8")
        assert RetrievalConfig.load(tmp_path / name) == config
    exported = tmp_path / "experiment.json"  # an exported experiment holds it under "config"
    exported.write_text(json.dumps({"config": config.to_dict(), "metrics": {}}))
    assert RetrievalConfig.load(exported) == config
    assert json.loads(config.to_json()) == config.to_dict()


def test_id_is_stable_independent_of_the_label_and_changes_with_every_other_field():
    base = sample_config()
    assert base.id == sample_config().id and len(base.id) == 12 and int(base.id, 16) >= 0
    assert base.with_(label="another").id == base.id == base.with_(label="").id
    # the same configuration written differently: modes as a string in any order, weights as pairs
    same = sample_config(modes="bm25+dense+sparse", weights=[("bm25", 0.25), ("dense", 0.5)])
    assert same == base and same.id == base.id
    other = {"model": "bge-large-en-v1.5", "pooling": "mean", "model_class": "encoder", "revision": "fedcba98",
             "backend": "torch", "precision": "bf16", "instruction": None, "chunk_size": 256, "overlap": 32,
             "modes": ("dense", "bm25"), "fusion": "rrf", "weights": {"dense": 0.5, "bm25": 1.0}, "rrf_k": 60,
             "bm25": "lucene", "reranker": "bge-reranker-large", "top_n": 20, "k": 100}
    single_valued = {"index"}  # one index backend so far: nothing to change it to
    assert set(other) | single_valued | {"label"} == set(FIELDS)
    ids = {base.id}
    for field, value in other.items():
        changed = base.with_(**{field: value})
        assert changed.id != base.id, field
        ids.add(changed.id)
    assert len(ids) == len(other) + 1  # and no two changes collide
    assert base.with_(instruction="").id != base.with_(instruction=None).id  # none vs the model's own


def test_cli_config_file_reads_back_the_same_config_and_search_prints_its_id(tiny_encoder, sample_corpus, tmp_path,
                                                                             capsys):
    config = RetrievalConfig(model=tiny_encoder, precision="fp32", instruction="", chunk_size=48, overlap=8, k=3,
                             label="tiny")
    path = tmp_path / "x.yaml"
    path.write_text(config.to_yaml(), encoding="utf-8")
    argv = ["search", "--corpus", sample_corpus, "--config", str(path), "eiffel tower"]
    assert config_from_args(build_parser().parse_args(argv)) == config
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"config: {config.id}" in out
    assert len([line for line in out.splitlines()[2:] if line.strip()]) == 3  # k = 3 from the file
    # options override the file's fields; the rest is the file's
    overridden = config_from_args(build_parser().parse_args(argv[:-1] + ["--top-n", "7", "--mode", "dense+bm25",
                                                                         "eiffel tower"]))
    assert overridden == config.with_(top_n=7, modes=("dense", "bm25"))
    json_path = tmp_path / "x.json"
    json_path.write_text(config.to_json(), encoding="utf-8")
    args = build_parser().parse_args(["evaluate", "--beir", str(tmp_path), "--config", str(json_path)])
    assert configs(args) == (config, None)  # evaluate keeps the file's chunk size (not its whole-document default)


def test_cli_config_file_errors_name_the_field(sample_corpus, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("model: null\nmodes: [bm25]\nk: 0\n")
    assert main(["search", "--corpus", sample_corpus, "--config", str(path), "q"]) == 2
    assert "k: must be at least 1" in capsys.readouterr().err
    path.write_text("modle: x\n")
    assert main(["search", "--corpus", sample_corpus, "--config", str(path), "q"]) == 2
    assert "unknown field(s) modle" in capsys.readouterr().err
    path.write_text("model: [unclosed\n")
    assert main(["search", "--corpus", sample_corpus, "--config", str(path), "q"]) == 2
    assert "is not valid YAML or JSON" in capsys.readouterr().err


def test_cli_bm25_needs_no_model_and_b_gets_the_default_one_where_it_needs_one(sample_corpus, tmp_path):
    from bge_explorer.models.catalog import DEFAULT_MODEL, OFFLINE_MODEL

    search = config_from_args(build_parser().parse_args(["search", "--corpus", sample_corpus, "--mode", "bm25", "q"]))
    assert search.model is None and search.modes == ("bm25",) and search.chunk_size == 256  # words
    args = build_parser().parse_args(["evaluate", "--beir", str(tmp_path), "--mode", "bm25", "--ab", "--b-mode",
                                      "dense"])
    a = config_from_args(args, base=RetrievalConfig(chunk_size=None))
    b = config_from_args(args, "b-", base=a)
    assert (a.model, a.modes) == (None, ("bm25",)) and (b.model, b.modes) == (DEFAULT_MODEL, ("dense",))
    assert config_from_args(build_parser().parse_args(["evaluate", "--beir", str(tmp_path), "--ab", "--b-mode",
                                                       "bm25"]), "b-", base=a.with_(model="x", modes=("dense",))
                            ).model == "x"  # B's BM25 keeps A's model (its tokenizer chunks)
    spec = tmp_path / "ab.json"
    spec.write_text(json.dumps({"a": {"modes": ["bm25"], "model": None}, "b": {"modes": ["dense"]}}))
    a, b = configs(build_parser().parse_args(["evaluate", "--beir", str(tmp_path), "--ab-config", str(spec)]))
    assert a.model is None and b.model in (DEFAULT_MODEL, OFFLINE_MODEL) and b.modes == ("dense",)
