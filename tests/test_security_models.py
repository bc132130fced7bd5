"""Safe and fair model loading on a public Space: local paths, Hub download size, allow-list, token."""
from __future__ import annotations

import fnmatch
import os
import shutil
import time
import types

import pytest

from bge_explorer import settings
from bge_explorer.errors import ExplorerError, LimitError, ModelLoadError, ModelOfflineError
from bge_explorer.models import loading
from bge_explorer.models.catalog import CATALOG, resolve_spec
from bge_explorer.models.loading import MODEL_CACHE, load_embedder

MB = 2**20
SHA = "0123456789abcdef0123456789abcdef01234567"

# File lists with sizes (bytes) as the Hub reports them, shaped like the real repositories.
BGE_SMALL = {
    ".gitattributes": 1_519, "1_Pooling/config.json": 190, "README.md": 94_780, "config.json": 743,
    "config_sentence_transformers.json": 124, "model.safetensors": 133_466_304, "modules.json": 349,
    "onnx/model.onnx": 133_093_490, "pytorch_model.bin": 133_511_213, "sentence_bert_config.json": 52,
    "special_tokens_map.json": 125, "tokenizer.json": 711_396, "tokenizer_config.json": 366, "vocab.txt": 231_508,
}
BGE_M3 = {
    ".gitattributes": 1_630, "1_Pooling/config.json": 191, "README.md": 15_823, "colbert_linear.pt": 2_100_674,
    "config.json": 687, "config_sentence_transformers.json": 123, "imgs/bm25.jpg": 131_969, "imgs/long.jpg": 484_445,
    "long.jpg": 126_787, "modules.json": 349, "onnx/Constant_7_attr__value": 65_552, "onnx/config.json": 698,
    "onnx/model.onnx": 724_923, "onnx/model.onnx_data": 2_266_820_608, "onnx/sentencepiece.bpe.model": 5_069_051,
    "onnx/special_tokens_map.json": 1_021, "onnx/tokenizer.json": 17_082_821, "onnx/tokenizer_config.json": 1_173,
    "pytorch_model.bin": 2_271_145_830, "sentence_bert_config.json": 54, "sentencepiece.bpe.model": 5_069_051,
    "sparse_linear.pt": 3_516, "special_tokens_map.json": 964, "tokenizer.json": 17_098_108,
    "tokenizer_config.json": 1_313,
}
SHARDED = {
    "config.json": 700, "tokenizer.json": 2_000_000, "tokenizer_config.json": 1_000,
    "model-00001-of-00002.safetensors": 4_900_000_000, "model-00002-of-00002.safetensors": 1_100_000_000,
    "model.safetensors.index.json": 30_000, "pytorch_model-00001-of-00002.bin": 4_900_000_000,
    "pytorch_model-00002-of-00002.bin": 1_100_000_000, "pytorch_model.bin.index.json": 30_000,
}


def _message(exc: pytest.ExceptionInfo, path: str) -> str:
    return str(exc.value).replace(path, "<path>")


# Finding 5: local paths


def test_every_path_outside_the_roots_gets_the_same_answer(tmp_path, monkeypatch, tiny_encoder):
    roots, outside = tmp_path / "roots", tmp_path / "outside"
    roots.mkdir()
    shutil.copytree(tiny_encoder, outside / "model")
    monkeypatch.setenv("BGE_EXPLORER_MODEL_ROOTS", str(roots))
    answers = set()
    for path in (str(outside / "model"), str(outside / "missing"), str(outside), "/etc", "/no/such/dir",
                 "./outside/model", "./outside/missing"):
        monkeypatch.chdir(tmp_path)
        with pytest.raises(ModelLoadError) as exc:
            resolve_spec(path)
        answers.add(_message(exc, path))
    assert len(answers) == 1, answers
    assert "outside the directories local models may be loaded from (BGE_EXPLORER_MODEL_ROOTS)" in answers.pop()


def test_an_existing_relative_dir_outside_the_roots_is_a_hub_id_never_loaded_from_disk(tmp_path, monkeypatch,
                                                                                       tiny_encoder):
    shutil.copytree(tiny_encoder, tmp_path / "models" / "x")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BGE_EXPLORER_PUBLIC", "1")  # local paths off: 'models/x' can only be a Hub id
    spec = resolve_spec("models/x")
    assert spec.source == "models/x" and not spec.is_local
    with pytest.raises(ModelOfflineError, match="not in the local Hugging Face cache"):
        load_embedder("models/x")
    monkeypatch.setenv("BGE_EXPLORER_MODEL_ROOTS", str(tmp_path / "elsewhere"))
    assert not resolve_spec("models/x").is_local
    monkeypatch.setenv("BGE_EXPLORER_MODEL_ROOTS", str(tmp_path))  # inside the roots: the local directory
    assert resolve_spec("models/x").source == str((tmp_path / "models" / "x").resolve())


@pytest.mark.parametrize("public_var", ["BGE_EXPLORER_PUBLIC", "SPACE_ID"])
def test_public_deployment_refuses_local_paths_unless_roots_allow_them(tmp_path, monkeypatch, tiny_encoder,
                                                                       public_var):
    monkeypatch.setenv(public_var, "1")
    answers = set()
    for path in (tiny_encoder, str(tmp_path / "missing"), "/etc", "~", "./x"):
        with pytest.raises(ModelLoadError) as exc:
            resolve_spec(path)
        answers.add(_message(exc, path))
    assert answers == {"Cannot load model '<path>': local model paths are off on this public deployment; the "
                       "operator can allow folders with BGE_EXPLORER_MODEL_ROOTS"}
    roots = tmp_path / "roots"
    model = shutil.copytree(tiny_encoder, roots / "tiny")
    monkeypatch.setenv("BGE_EXPLORER_MODEL_ROOTS", str(roots))
    embedder = load_embedder(str(model), precision="fp32")
    assert embedder.spec.is_local and embedder.encode_corpus(["the eiffel tower"]).shape == (1, 32)
    with pytest.raises(ModelLoadError, match="outside the directories"):
        resolve_spec(tiny_encoder)


def test_bad_model_ids_are_explorer_errors_not_value_errors():
    for bad, reason in [("https://evil.example/model", "is a URL"), ("../../etc", "'..' is not allowed"),
                        ("not a model!", "is not a catalog model"), ("", "is not a catalog model"),
                        ("a--b/c", "not a valid Hub id"), ("owner/name.git", "not a valid Hub id")]:
        with pytest.raises(ModelLoadError, match=reason) as exc:
            resolve_spec(bad)
        assert not isinstance(exc.value, ValueError)
    with pytest.raises(LimitError, match="BGE_EXPLORER_MAX_FIELD_CHARS"):
        resolve_spec("x" * 10_000)


# Finding 6: Hub downloads


def test_select_files_takes_config_tokenizer_and_one_weights_format():
    assert loading.select_files(BGE_SMALL) == [
        "1_Pooling/config.json", "config.json", "config_sentence_transformers.json", "model.safetensors",
        "modules.json", "sentence_bert_config.json", "special_tokens_map.json", "tokenizer.json",
        "tokenizer_config.json", "vocab.txt"]
    assert loading.select_files(BGE_M3) == [
        "1_Pooling/config.json", "colbert_linear.pt", "config.json", "config_sentence_transformers.json",
        "modules.json", "pytorch_model.bin", "sentence_bert_config.json", "sentencepiece.bpe.model",
        "sparse_linear.pt", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    assert loading.select_files(SHARDED) == [
        "config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
        "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json"]
    with_code = {**BGE_SMALL, "modeling_custom.py": 9_000, "sub/other.py": 100}
    assert "modeling_custom.py" not in loading.select_files(with_code)
    assert "modeling_custom.py" in loading.select_files(with_code, code=True)
    assert "sub/other.py" not in loading.select_files(with_code, code=True)


def test_check_download_counts_only_the_needed_files_against_the_cap():
    default = settings.Settings()
    assert loading.check_download("bge-small", BGE_SMALL, default) == loading.select_files(BGE_SMALL)
    assert loading.check_download("bge-m3", BGE_M3, default) == loading.select_files(BGE_M3)  # 2.2 GB < 3 GB
    with pytest.raises(ModelLoadError, match=r"Cannot load model 'bge-m3': .*2,1\d\d MB.* over this server's "
                                             r"limit of 2,000 MB \(BGE_EXPLORER_MAX_MODEL_MB\)"):
        loading.check_download("bge-m3", BGE_M3, default.with_(max_model_mb=2_000))
    with pytest.raises(ModelLoadError, match="BGE_EXPLORER_MAX_MODEL_MB"):
        loading.check_download("big", SHARDED, default)  # 6 GB of shards
    bloated = {**BGE_SMALL, "onnx/model_fp32.onnx": 50 * 2**30, "README.md": 10 * 2**30}
    assert loading.check_download("bge-small", bloated, default) == loading.select_files(BGE_SMALL)
    with pytest.raises(ModelLoadError, match="no config.json"):
        loading.check_download("x", {"model.safetensors": 10}, default)
    with pytest.raises(ModelLoadError, match="no model weights"):
        loading.check_download("x", {"config.json": 10, "onnx/model.onnx": 10}, default)
    with pytest.raises(ModelLoadError, match="did not report the size of model.safetensors"):
        loading.check_download("x", {**BGE_SMALL, "model.safetensors": None}, default)


def test_hub_allow_list_and_token_decisions():
    default = settings.Settings()
    catalog, typed = CATALOG["bge-m3"], resolve_spec("someone/my-bge")
    loading.check_hub_allowed(typed, default)  # empty list: any id
    allow = default.with_(hub_allow=("Someone/My-BGE",))
    loading.check_hub_allowed(typed, allow)  # Hub ids are case-insensitive
    loading.check_hub_allowed(catalog, allow)  # catalog models are always allowed
    with pytest.raises(ModelLoadError, match=r"'other/model' is not among.*BGE_EXPLORER_HUB_ALLOW"):
        loading.check_hub_allowed(resolve_spec("other/model"), allow)
    assert loading.hub_token_for(catalog, default) is None  # huggingface_hub's own token (HF_TOKEN), if any
    assert loading.hub_token_for(resolve_spec("BAAI/bge-m3"), default) is None  # a catalog model typed by its id
    assert loading.hub_token_for(typed, default) is False
    assert loading.hub_token_for(typed, default.with_(hub_token_for_visitors=True)) is None


@pytest.fixture
def fake_hub(tmp_path, monkeypatch, tiny_encoder):
    """A Hub serving tiny_encoder (plus a 900 MB onnx file and a .bin) for any repo id; records every call.

    The Hugging Face cache is a fresh folder; cache look-ups are the real huggingface_hub's.
    """
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.hf_api import RepoSibling

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(loading, "hub_reachable", lambda timeout=3.0: True)
    MODEL_CACHE.clear()
    files = {name: os.path.getsize(os.path.join(tiny_encoder, name)) for name in os.listdir(tiny_encoder)}
    listing = {**files, "onnx/model.onnx": 900 * MB, "pytorch_model.bin": files["model.safetensors"] + 100}
    calls: list[tuple[str, str, dict]] = []
    real_download = huggingface_hub.snapshot_download

    def model_info(self, repo_id, **kwargs):
        calls.append(("model_info", repo_id, kwargs))
        return types.SimpleNamespace(sha=SHA, siblings=[RepoSibling(rfilename=n, size=s) for n, s in listing.items()])

    def snapshot_download(repo_id, **kwargs):
        if kwargs.get("local_files_only"):
            return real_download(repo_id, **kwargs)
        calls.append(("download", repo_id, kwargs))
        revision = kwargs.get("revision") or "unpinned"
        folder = tmp_path / "hf-cache" / f"models--{repo_id.replace('/', '--')}" / "snapshots" / revision
        folder.mkdir(parents=True, exist_ok=True)
        for name in files:
            if any(fnmatch.fnmatch(name, pattern) for pattern in kwargs.get("allow_patterns") or ["*"]):
                shutil.copy(os.path.join(tiny_encoder, name), folder / name)
        return str(folder)

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    yield types.SimpleNamespace(calls=calls, files=sorted(files))
    MODEL_CACHE.clear()


def test_a_hub_download_fetches_only_the_needed_files_at_the_listed_commit_and_then_works_offline(fake_hub,
                                                                                                  monkeypatch):
    embedder = load_embedder("someone/tiny", precision="fp32")
    assert embedder.encode_corpus(["paris"]).shape == (1, 32)
    assert [call[0] for call in fake_hub.calls] == ["model_info", "download"]
    (_, _, info), (_, _, download) = fake_hub.calls
    assert info["files_metadata"] is True and info["token"] is False
    assert download["revision"] == SHA and download["token"] is False
    assert sorted(download["allow_patterns"]) == fake_hub.files  # no onnx/, no pytorch_model.bin
    assert embedder.identity == f"someone/tiny@{SHA}"
    MODEL_CACHE.clear()
    monkeypatch.setattr(loading, "hub_reachable", lambda timeout=3.0: False)
    assert load_embedder("someone/tiny", precision="fp32").identity == f"someone/tiny@{SHA}"  # from the cache
    assert len(fake_hub.calls) == 2


def test_an_oversized_hub_model_is_refused_before_any_download(fake_hub, monkeypatch):
    monkeypatch.setenv("BGE_EXPLORER_MAX_MODEL_MB", "0.001")
    with pytest.raises(ModelLoadError, match=r"Cannot load model 'someone/tiny': .*over this server's limit of "
                                             r"0.001 MB \(BGE_EXPLORER_MAX_MODEL_MB\)"):
        load_embedder("someone/tiny")
    assert [call[0] for call in fake_hub.calls] == ["model_info"]


def test_hub_ids_outside_the_allow_list_are_refused_before_the_hub_is_asked(fake_hub, monkeypatch):
    monkeypatch.setenv("BGE_EXPLORER_HUB_ALLOW", "someone/tiny, BAAI/bge-m3")
    with pytest.raises(ModelLoadError, match="'other/model' is not among"):
        load_embedder("other/model")
    assert fake_hub.calls == []
    load_embedder("someone/tiny", precision="fp32")
    assert [call[0] for call in fake_hub.calls] == ["model_info", "download"]


def test_the_owner_token_goes_only_with_catalog_models_unless_the_operator_says_so(fake_hub, monkeypatch):
    load_embedder("someone/tiny", precision="fp32")
    monkeypatch.setenv("BGE_EXPLORER_HUB_TOKEN_FOR_VISITORS", "1")
    load_embedder("someone/tiny-2", precision="fp32")
    load_embedder("BAAI/bge-small-en-v1.5", precision="fp32")  # a catalog model: huggingface_hub's own token
    assert [(call[0], call[1], call[2].get("token")) for call in fake_hub.calls] == [
        ("model_info", "someone/tiny", False), ("download", "someone/tiny", False),
        ("model_info", "someone/tiny-2", None), ("download", "someone/tiny-2", None),
        ("model_info", "BAAI/bge-small-en-v1.5", None), ("download", "BAAI/bge-small-en-v1.5", None)]


def test_offline_an_uncached_hub_id_fails_at_once_and_contacts_nothing(monkeypatch):
    import huggingface_hub

    def refuse(*args, **kwargs):
        pytest.fail("the Hub was contacted")

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", refuse)
    monkeypatch.setattr(loading.socket, "create_connection", refuse)
    started = time.monotonic()
    with pytest.raises(ModelOfflineError, match="'someone/uncached' is not in the local Hugging Face cache and the "
                                                "Hub cannot be reached"):
        load_embedder("someone/uncached")
    assert time.monotonic() - started < 5
    assert isinstance(ModelOfflineError("m", "r"), ExplorerError)
