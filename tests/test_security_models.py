"""Safe and fair model loading on a public Space: local paths."""
from __future__ import annotations

import shutil

import pytest

from bge_explorer.errors import LimitError, ModelLoadError, ModelOfflineError
from bge_explorer.models.catalog import resolve_spec
from bge_explorer.models.loading import load_embedder


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
