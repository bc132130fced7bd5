"""embed --engine ray on a local Ray (2 CPUs): vectors equal the single-process embed to 1e-5, a rerun resumes
(finished shards skipped), another model is refused, and a killed worker process loses or doubles no chunk."""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pytest

from bge_explorer.errors import ConfigError
from bge_explorer.indexes.parquet import read_shards, shard_name, shards
from bge_explorer.models import random_models
from bge_explorer.models.loading import load_embedder
from bge_explorer.session import Session
from conftest import random_corpus

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # a local Ray and its actors start in tens of seconds on 2 shared cores

CHUNKING = dict(chunk_size=16, overlap=4)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def write_jsonl(path, n: int, seed: int = 11) -> str:
    docs = random_corpus(n, seed=seed).documents
    with open(path, "w") as f:
        for r in docs.itertuples():
            f.write(json.dumps({"_id": r.doc_id, "title": r.title, "text": r.text}) + "\n")
    return str(path)


def single_process(corpus: str, model: str) -> tuple[list[str], np.ndarray]:
    session = Session()
    session.load_corpus([corpus])
    session.build_index(load_embedder(model, precision="fp32"), CHUNKING["chunk_size"], CHUNKING["overlap"])
    return session.chunks.table["chunk_id"].tolist(), session.vectors


def by_chunk(folder) -> dict[str, np.ndarray]:
    ids, payload, vectors, _ = read_shards(folder)
    assert len(set(ids.tolist())) == len(ids), "duplicate chunk ids"
    return dict(zip(payload["chunk_id"], vectors))


def test_ray_equals_single_process_resumes_and_refuses_another_model(local_ray, tmp_path, tiny_encoder, capsys):
    from bge_explorer.scale.ray_embed import embed_corpus

    corpus = write_jsonl(tmp_path / "c.jsonl", 240)
    out = tmp_path / "out"
    first = embed_corpus([corpus], out, tiny_encoder, shard_docs=40, workers=2, **CHUNKING)
    assert first.shards_written == 6 and first.shards_skipped == 0 and first.documents == 240
    ids, ref = single_process(corpus, tiny_encoder)
    got = by_chunk(out)
    assert sorted(got) == sorted(ids) and first.chunks == len(ids)
    assert np.abs(np.stack([got[c] for c in ids]) - ref).max() < 1e-5

    for name in (shard_name(1), shard_name(4)):  # a partial run: two shards missing, one left half-written
        os.remove(out / name)
    (out / (shard_name(4) + ".tmp")).write_bytes(b"partial")
    from bge_explorer.cli.commands import main  # the rerun through the CLI: python -m bge_explorer embed --engine ray

    assert main(["embed", "--engine", "ray", "--input", corpus, "--out", str(out), "--model", tiny_encoder,
                 "--precision", "fp32", "--chunk-size", "16", "--overlap", "4", "--shard-docs", "40",
                 "--workers", "2"]) == 0
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert summary.startswith("80 documents") and "2 shards written, 4 skipped" in summary, summary
    resumed = by_chunk(out)
    assert sorted(resumed) == sorted(ids) and max(np.abs(resumed[c] - got[c]).max() for c in ids) < 1e-5

    other = random_models.build(tmp_path / "other", "encoder", seed=9)
    os.remove(out / shard_name(5))
    with pytest.raises(ConfigError) as err:
        embed_corpus([corpus], out, other, shard_docs=40, workers=2, **CHUNKING)
    assert err.value.field == "model" and "different model versions" in str(err.value)
    assert not (out / shard_name(5)).exists()


def embedder_pids() -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["cmdline"]) if "ChunkEmbedder" in " ".join(p.info["cmdline"] or [])]


def test_killed_worker_loses_and_doubles_nothing(local_ray, tmp_path):
    """SIGKILL one actor process once the first shard is written: the output equals a clean run's."""
    from bge_explorer.scale.ray_embed import embed_corpus

    model = random_models.build(tmp_path / "small", "encoder", size="bge-small")  # slow enough to kill mid-run
    corpus = write_jsonl(tmp_path / "c.jsonl", 320, seed=4)
    options = dict(shard_docs=40, workers=2, window_shards=8, **CHUNKING)
    clean = embed_corpus([corpus], tmp_path / "clean", model, **options)
    out = tmp_path / "faulty"
    killed: list[tuple[int, int]] = []

    def kill_one() -> None:
        deadline = time.time() + 600
        while time.time() < deadline and not shards(out):
            time.sleep(0.05)
        pids = embedder_pids()
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            killed.append((pids[0], len(shards(out))))

    killer = threading.Thread(target=kill_one, daemon=True)
    killer.start()
    faulty = embed_corpus([corpus], out, model, **options)
    killer.join(5)
    assert killed and killed[0][1] < clean.shards_written, "the worker must die before the run ends"
    a, b = by_chunk(tmp_path / "clean"), by_chunk(out)
    assert faulty.chunks == clean.chunks == len(b) and sorted(a) == sorted(b)
    assert max(np.abs(a[c] - b[c]).max() for c in a) < 1e-5
