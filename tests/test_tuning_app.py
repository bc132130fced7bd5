"""The Workbench's Fine-tune panel, driven as the page drives it (no browser): preview the mined data, tune the
index's model on the session's judgments through FlagEmbedding's runner, see the held-out comparison, download
the model and use it as any other model of the session."""
from __future__ import annotations

import zipfile

import gradio as gr
import pytest

from bge_explorer.app import explorer as ui
from bge_explorer.app import tuning
from conftest import SAMPLE_QUESTIONS


def judged(sample_corpus, tiny_encoder):
    *_, app = ui.load_corpus([sample_corpus])
    *_, app = ui.build_index(tiny_encoder, chunking="none", state=app, progress=None)
    for question, doc in SAMPLE_QUESTIONS.items():
        app.session.judgments.grade(question, doc, 2)
    return app


def test_preview_then_fine_tune_then_use_the_tuned_model(sample_corpus, tiny_encoder):
    app = judged(sample_corpus, tiny_encoder)
    with pytest.raises(gr.Error, match="LOW-HIGH"):
        tuning.preview_training_data(0.3, 1, "10:7", "none", 0, app)
    summary, table, app = tuning.preview_training_data(0.3, 1, "0-20:3", "none", 0, app)
    assert "7 training and 3 held-out queries" in summary
    positives = table[table["role"] == "positive"]
    assert len(positives) == 7 and set(table["role"]) <= {"positive", "negative", "dropped"}
    for query, group in table.groupby("query"):  # a judged positive is never a negative of its query
        assert not set(group[group["role"] == "negative"]["doc_id"]) & set(group[group["role"] == "positive"]["doc_id"])
    summary, losses, compared, files, models, app = tuning.fine_tune_model(
        0.3, 1, "0-20:3", 1, False, 0.02, 0, 4, 4, "none", 0, app)
    assert "Tuned" in summary and "Held-out nDCG@10" in summary and "model choices" in summary
    assert list(compared["configuration"]) == ["base", "tuned"] and len(losses.data[0].x) >= 1
    model_dir = app.tuned_models[0]
    assert model_dir.startswith(app.workdir) and model_dir in {value for _, value in models["choices"]}
    names = [f.rsplit("/", 1)[-1] for f in files]
    assert names[:3] == ["bge_explorer_tuning.json", "README.md", "train.jsonl"] and names[3].endswith(".zip")
    with zipfile.ZipFile(files[3]) as z:
        assert {"model.safetensors", "config.json", "bge_explorer_tuning.json"} <= set(z.namelist())
    # the tuned model is a model like any other: build an index with it and search
    *_, app = ui.build_index(model_dir, chunking="none", state=app, progress=None)
    assert app.session.embedder.spec.pooling == "cls" and app.session.embedder.identity != ""
    before, *_ = ui.search_once("eiffel tower paris", "model default", "", 5, ui.NO_RERANKER, 5, app)
    assert len(before) == 5


def test_fine_tuning_is_off_on_a_public_deployment(sample_corpus, tiny_encoder, monkeypatch):
    app = judged(sample_corpus, tiny_encoder)
    monkeypatch.setenv("BGE_EXPLORER_PUBLIC", "1")  # settings are read from the environment on every call
    for handler, args in ((tuning.fine_tune_model, (0.3, 1, "0-20:3", 1, False, 0.02, 0, 4, 4, "none", 0)),
                          (tuning.preview_training_data, (0.3, 1, "0-20:3", "none", 0))):
        with pytest.raises(gr.Error, match="off on a public deployment"):
            handler(*args, app)
    assert not app.tuned_models
