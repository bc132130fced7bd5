"""The exported decision reads back as a configuration, and the FlagEmbedding script it renders gives the app's
top 10 when run on its own."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from bge_explorer.data.qrels import load_beir
from bge_explorer.errors import ConfigError, ExplorerError
from bge_explorer.evaluation.decision import TARGETS, decision, judgments_digest, render_code
from bge_explorer.evaluation.evaluate import evaluate
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.retrieval.pipeline import retrieve
from bge_explorer.session import Session
from test_evaluation import beir_dir  # noqa: F401  (fixture)

QUERIES = ["eiffel tower paris", "how do bees make honey"]


@pytest.mark.parametrize("with_reranker", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_the_flagembedding_script_gives_the_apps_top_10(sample_corpus, tiny_encoder, tiny_reranker, tmp_path,
                                                       with_reranker):
    config = RetrievalConfig(model=tiny_encoder, chunk_size=None, instruction="Represent this: ", k=10,
                             precision="fp32", reranker=tiny_reranker if with_reranker else None, top_n=5)
    session = Session()
    session.load_corpus([sample_corpus])
    state = session.state_for(config)
    resolved = {"pooling": state.embedder.spec.pooling, "max_length": state.embedder.spec.max_length,
                "instruction": "Represent this: "}
    script = tmp_path / "run.py"
    script.write_text(render_code(config, resolved, "flagembedding"))
    doc_ids = state.chunks.table["doc_id"].astype(str).to_numpy()
    run = subprocess.run([sys.executable, str(script), sample_corpus, *QUERIES], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [line.split("\t") for line in run.stdout.strip().splitlines()]
    for number, ranking in enumerate(retrieve(session, config, QUERIES)):
        got = [(d, float(s)) for n, d, s in lines if int(n) == number]
        assert [d for d, _ in got] == list(doc_ids[ranking.final_rows()][:10])
        if not with_reranker:
            assert [s for _, s in got] == pytest.approx(ranking.score[:10].tolist(), abs=1e-4)


def test_other_targets_compile_and_name_the_instruction(tiny_encoder):
    config = RetrievalConfig(model="BAAI/bge-small-en-v1.5", chunk_size=None, reranker="BAAI/bge-reranker-base")
    resolved = {"pooling": "cls", "max_length": 512,
                "instruction": "Represent this sentence for searching relevant passages: "}
    for target in TARGETS:
        code = render_code(config, resolved, target)
        compile(code, f"{target}.py", "exec")  # LangChain and LlamaIndex are not installed here: compiled only
        assert "Represent this sentence for searching relevant passages: " in code and "bge-reranker-base" in code
    with pytest.raises(ExplorerError, match="code target"):
        render_code(config, resolved, "haystack")
    with pytest.raises(ExplorerError, match="dense retrieval"):
        render_code(RetrievalConfig(model=None, modes=("bm25",)), resolved)


def test_a_decision_reads_back_with_config_and_pins_the_model(beir_dir, tiny_encoder, tmp_path):  # noqa: F811
    data = load_beir(beir_dir)
    session = Session()
    session.set_corpus(data.corpus)
    config = RetrievalConfig(model=tiny_encoder, chunk_size=None, instruction="", label="winner")
    result = evaluate(session, data.judgments, config)
    exported = decision(config, result.config, data.judgments, {"ndcg@10": {"mean": result.means()["ndcg@10"]}})
    path = tmp_path / "decision.yaml"
    path.write_text(yaml.safe_dump(exported, allow_unicode=True, sort_keys=False))
    back = RetrievalConfig.load(path)
    assert back == config.with_(revision=result.config["model_identity"])
    assert exported["decided_on"]["judgments_sha256"] == judgments_digest(load_beir(beir_dir).judgments)
    assert exported["decided_on"]["queries"] == len(data.judgments)
    from bge_explorer.models import random_models

    other = random_models.build(tmp_path / "other-model", "encoder", seed=99)
    moved = tmp_path / "moved.yaml"
    moved.write_text(yaml.safe_dump({**exported, "config": {**exported["config"], "model": other}}))
    with pytest.raises(ConfigError) as info:  # the same configuration on another model is refused
        fresh = Session()
        fresh.set_corpus(data.corpus)
        fresh.state_for(RetrievalConfig.load(moved))
    assert info.value.field == "revision"
