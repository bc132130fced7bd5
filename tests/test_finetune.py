"""Fine-tuning: the held-out split, hard-negative mining against brute-force ranks, FlagEmbedding's own dataset
reading our JSONL, real training on the CPU (loss down, cancel, LoRA), the model card, and the CLI end to end."""
from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bge_explorer.cli.commands import main
from bge_explorer.data.corpus import Corpus
from bge_explorer.data.qrels import Judgments, combine
from bge_explorer.errors import Cancelled, ConfigError
from bge_explorer.models import random_models
from bge_explorer.models.loading import load_embedder
from bge_explorer.retrieval.config import RetrievalConfig
from bge_explorer.session import Session
from bge_explorer.tuning.card import CARD_FILE, DATA_FILE, ModelCard
from bge_explorer.tuning.dataset import InstructionPolicy, TrainingFile, file_sha256, write_training_file
from bge_explorer.tuning.mining import NegativeSampling, document_texts, jaccard, mine
from bge_explorer.tuning.split import HeldOutSplit, given_split, split_queries
from bge_explorer.tuning.training import Training, TrainingOptions
from bge_explorer.tuning.tune import fine_tune
from conftest import SAMPLE_QUESTIONS, random_corpus
from test_evaluation import write_beir

QUERIES = {"t1": "cell protein gene cancer", "t2": "paris eiffel tower history", "t3": "music piano king queen",
           "h1": "river mountain ocean water"}


def brute_force(model_dir: str, corpus: Corpus, queries: list[str]) -> list[list[str]]:
    """Document ids best first by inner product of FlagModel's normalised CLS vectors (ties: corpus order)."""
    from FlagEmbedding import FlagModel

    model = FlagModel(model_dir, pooling_method="cls", normalize_embeddings=True, use_fp16=False, devices="cpu")
    docs = corpus.documents
    passages = [f"{t} {x}" if t else x for t, x in zip(docs["title"], docs["text"])]
    scores = model.encode_queries(queries) @ model.encode_corpus(passages).T
    ids = docs["doc_id"].to_numpy()
    return [ids[np.lexsort((np.arange(len(ids)), -s))].tolist() for s in scores]


@pytest.fixture(scope="module")
def ranked(tiny_encoder):
    """A session over 40 random documents, the tiny model's configuration and the reference rankings."""
    corpus = random_corpus(40)
    session = Session()
    session.set_corpus(corpus)
    config = RetrievalConfig(model=tiny_encoder, chunk_size=None, instruction="", precision="fp32")
    return session, config, dict(zip(QUERIES, brute_force(tiny_encoder, corpus, list(QUERIES.values()))))


def judged(ref: dict[str, list[str]]) -> tuple[Judgments, HeldOutSplit]:
    """Positives at ranks 3 and 6, a judged non-relevant at 4; the held-out query judges two training candidates."""
    qrels = {q: {ref[q][3]: 1, ref[q][6]: 2, ref[q][4]: 0} for q in ("t1", "t2", "t3")}
    qrels["h1"] = {ref["h1"][0]: 1, ref["t1"][5]: 1, ref["t2"][8]: 0}
    return combine(dict(QUERIES), qrels, "test"), HeldOutSplit(("t1", "t2", "t3"), ("h1",), "given", None, None)


def test_mining_takes_the_window_of_the_pipelines_ranking_without_positives_or_held_out_documents(ranked):
    session, config, ref = ranked
    judgments, split = judged(ref)
    mined = mine(session, judgments, split, config, sampling=NegativeSampling(2, 15, 100))
    held_docs = set(judgments.qrels["h1"])
    assert [q.query_id for q in mined.queries] == ["t1", "t2", "t3"]  # the held-out query is never mined
    for q in mined.queries:
        positives = [ref[q.query_id][3], ref[q.query_id][6]]
        expected = [d for d in ref[q.query_id][2:15] if d not in positives and d not in held_docs]
        assert q.positives == positives and q.negatives == expected
        assert ref[q.query_id][4] in q.negatives or ref[q.query_id][4] in held_docs  # judged 0: a known negative
        assert all(ref[q.query_id][q.ranks[d]] == d for d in q.negatives)
    assert ref["t1"][5] not in mined.queries[0].negatives and ref["t2"][8] not in mined.queries[1].negatives

    few = mine(session, judgments, split, config, sampling=NegativeSampling(2, 15, 3), seed=5)
    again = mine(session, judgments, split, config, sampling=NegativeSampling(2, 15, 3), seed=5)
    other = mine(session, judgments, split, config, sampling=NegativeSampling(2, 15, 3), seed=6)
    for q, full in zip(few.queries, mined.queries):
        assert len(q.negatives) == 3 and set(q.negatives) <= set(full.negatives)
        assert q.negatives == sorted(q.negatives, key=full.negatives.index)  # kept in rank order
    assert [q.negatives for q in few.queries] == [q.negatives for q in again.queries]
    assert [q.negatives for q in few.queries] != [q.negatives for q in other.queries]

    bm25 = mine(session, judgments, split, RetrievalConfig(model=None, modes=("bm25",), chunk_size=None),
                sampling=NegativeSampling(0, 40, 100))  # no model: BM25's ranking (matching documents) gives them
    for q in bm25.queries:
        assert q.negatives and not set(q.negatives) & (set(q.positives) | held_docs)
        assert [q.ranks[d] for d in q.negatives] == sorted(q.ranks[d] for d in q.negatives)  # BM25's order
    with pytest.raises(ConfigError) as info:
        mine(session, judgments, split, config, relevance=0)
    assert info.value.field == "relevance"


def test_the_reranker_filter_drops_above_the_threshold_and_flags_look_alikes(ranked, tiny_reranker):
    from FlagEmbedding import FlagReranker

    session, config, ref = ranked
    judgments, split = judged(ref)
    texts = document_texts(session)
    window = NegativeSampling(0, 40, 100)
    scored = mine(session, judgments, split, config, sampling=window, reranker=tiny_reranker)
    q = scored.queries[0]
    reference = FlagReranker(tiny_reranker, use_fp16=False, devices="cpu").compute_score(
        [[q.query, texts[d]] for d in q.negatives], normalize=True)
    assert [q.reranker_scores[d] for d in q.negatives] == pytest.approx(reference, abs=1e-5)
    assert {d for d in q.negatives if q.reranker_scores[d] >= 0.5} == {d for d in q.suspicious if "reranker" in
                                                                         q.suspicious[d]}
    threshold = float(np.median(reference))
    filtered = mine(session, judgments, split, config, sampling=window, reranker=tiny_reranker,
                    filter_above=threshold).queries[0]
    assert set(filtered.dropped) == {d for d in q.negatives if q.reranker_scores[d] > threshold}
    assert filtered.negatives == [d for d in q.negatives if d not in filtered.dropped]
    with pytest.raises(ConfigError) as info:
        mine(session, judgments, split, config, filter_above=0.9)
    assert info.value.field == "filter_above"

    assert jaccard("The cell, the gene.", "gene cell the") == 1.0 and jaccard("a b", "c d") == 0.0
    docs = session.corpus.documents
    copy = docs.iloc[[int(np.flatnonzero(docs["doc_id"] == ref["t1"][3])[0])]].assign(doc_id="copy-of-positive")
    twin = Session()
    twin.set_corpus(Corpus(pd.concat([docs, copy], ignore_index=True)))
    flagged = mine(twin, judgments, split, config, sampling=NegativeSampling(0, 41, 100)).queries[0]
    assert "near-duplicate of a positive (Jaccard 1.00)" in flagged.suspicious["copy-of-positive"]


def test_negative_sampling_text_and_bad_values_name_the_field():
    assert NegativeSampling.parse("10-100:7") == NegativeSampling(10, 100, 7) == NegativeSampling()
    assert NegativeSampling.parse(" 2 - 50 ") == NegativeSampling(2, 50, 7) and str(NegativeSampling(2, 50, 3)) == "2-50:3"
    for bad in ("10:7", "100-10:7", "5-9:0", ""):
        with pytest.raises(ConfigError) as info:
            NegativeSampling.parse(bad)
        assert info.value.field == "negatives"


def test_the_split_is_seeded_disjoint_and_round_trips():
    queries = {f"q{i}": f"query {i}" for i in range(20)}
    judgments = combine(queries, {q: {"d": 1} for q in queries}, "x")
    a, b = split_queries(judgments, 0.3, seed=4), split_queries(judgments, 0.3, seed=4)
    assert a == b and a != split_queries(judgments, 0.3, seed=5)
    assert len(a.held_out) == 6 and not set(a.train) & set(a.held_out)
    assert sorted(a.train + a.held_out, key=lambda q: int(q[1:])) == list(queries)
    assert list(a.train) == sorted(a.train, key=lambda q: int(q[1:]))  # judgment order kept
    assert HeldOutSplit.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    with pytest.raises(ConfigError) as info:
        split_queries(judgments, 1.0)
    assert info.value.field == "holdout_fraction"

    train = combine({"a": "same text", "b": "other", "c": "third"}, {q: {"d": 1} for q in "abc"}, "train")
    test = combine({"x": "same text", "c": "c's test text"}, {"x": {"d": 1}, "c": {"d": 1}}, "test")
    split, merged = given_split(train, test)
    assert split.train == ("b",) and split.held_out == ("x", "c") and split.method == "given"
    assert set(merged.queries) == {"b", "x", "c"} and any("left out of training" in n for n in merged.notes)


def test_the_jsonl_is_read_by_flagembeddings_own_dataset(ranked, tmp_path, tiny_encoder):
    from FlagEmbedding.abc.finetune.embedder import AbsEmbedderDataArguments, AbsEmbedderTrainDataset
    from transformers import AutoTokenizer

    session, config, ref = ranked
    judgments, split = judged(ref)
    mined = mine(session, judgments, split, config, sampling=NegativeSampling(2, 15, 5))
    texts = document_texts(session)
    policy = InstructionPolicy.of("query: ")
    written = write_training_file(mined, texts, tmp_path / "train.jsonl", policy)
    assert written.sha256 == hashlib.sha256((tmp_path / "train.jsonl").read_bytes()).hexdigest()
    lines = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert lines[0] == {"query": QUERIES["t1"], "pos": [texts[d] for d in mined.queries[0].positives],
                        "neg": [texts[d] for d in mined.queries[0].negatives]}

    args = AbsEmbedderDataArguments(train_data=[str(written.path)], train_group_size=4, cache_path=str(tmp_path / "c"),
                                    **policy.to_dict())
    dataset = AbsEmbedderTrainDataset(args=args, tokenizer=AutoTokenizer.from_pretrained(tiny_encoder))
    assert len(dataset) == written.examples == 3
    for i, q in enumerate(mined.queries):
        query, passages, teacher = dataset[i]
        assert query == policy.apply(q.query) == "query: " + q.query and teacher is None
        assert len(passages) == 4 and passages[0] in lines[i]["pos"] and set(passages[1:]) <= set(lines[i]["neg"])


def learnable_file(path) -> TrainingFile:
    """16 queries whose positive repeats the query's words and whose negatives are random words."""
    rng = random.Random(3)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(16):
            words = rng.sample(random_models.WORDS, 3)
            f.write(json.dumps({"query": " ".join(words), "pos": [" ".join(words + rng.sample(random_models.WORDS, 3))],
                                "neg": [" ".join(rng.sample(random_models.WORDS, 6)) for _ in range(3)]}) + "\n")
    return TrainingFile(path, file_sha256(path), 16, InstructionPolicy())


def accuracy(model_dir: str, path) -> float:
    """Share of the file's queries whose positive outscores every negative, through the project's model loading."""
    embedder = load_embedder(model_dir, pooling="mean", precision="fp32", device="cpu")
    hits = []
    for line in map(json.loads, open(path, encoding="utf-8")):
        vectors = embedder.encode([line["query"], *line["pos"], *line["neg"]], ["dense"])["dense"]
        scores = vectors[1:] @ vectors[0]
        hits.append(scores[0] > scores[1:].max())
    return float(np.mean(hits))


@pytest.mark.parametrize("lora", [False, True])
def test_a_tiny_model_trains_through_flagembeddings_runner_and_loads_by_path(tmp_path, tiny_encoder, lora):
    data = learnable_file(tmp_path / "train.jsonl")
    options = TrainingOptions(lora=lora, epochs=10, group_size=4, learning_rate=5e-2 if lora else 1e-2,
                              temperature=0.05)
    training = Training(data, tiny_encoder, "mean", tmp_path / "tuned", options)
    assert training.steps == 20 and training.estimate() > 0
    seen = []
    run = training.run(progress=lambda done, total, loss: seen.append((done, total, loss)))
    assert run.steps == 20 and [s[:2] for s in seen] == [(i, 20) for i in range(1, 21)]
    losses = [loss for _, loss in run.losses]
    assert np.mean(losses[-4:]) < np.mean(losses[:4])
    assert sorted(p.name for p in (tmp_path / "tuned").iterdir()) == ["config.json", "model.safetensors",
                                                                      "tokenizer.json", "tokenizer_config.json"]
    assert accuracy(str(tmp_path / "tuned"), data.path) > accuracy(tiny_encoder, data.path)
    text = ["cell protein gene"]
    tuned = load_embedder(str(tmp_path / "tuned"), pooling="mean", precision="fp32", device="cpu")
    base = load_embedder(tiny_encoder, pooling="mean", precision="fp32", device="cpu")
    assert tuned.encode(text, ["dense"])["dense"].shape == base.encode(text, ["dense"])["dense"].shape
    assert not np.allclose(tuned.encode(text, ["dense"])["dense"], base.encode(text, ["dense"])["dense"], atol=1e-3)


def test_cancel_stops_training_after_the_step_and_saves_nothing(tmp_path, tiny_encoder):
    data = learnable_file(tmp_path / "train.jsonl")
    training = Training(data, tiny_encoder, "cls", tmp_path / "tuned", TrainingOptions(epochs=10, group_size=4))
    steps = []
    with pytest.raises(Cancelled, match="step 3 of 20"):
        training.run(progress=lambda done, total, loss: steps.append(done), cancel=lambda: len(steps) >= 3)
    assert steps == [1, 2, 3] and not (tmp_path / "tuned" / "model.safetensors").exists()
    with pytest.raises(ConfigError) as info:
        TrainingOptions(batch_size=0)
    assert info.value.field == "batch_size"


def test_the_same_seed_trains_the_same_weights(tmp_path, tiny_encoder):
    data = learnable_file(tmp_path / "train.jsonl")
    options = TrainingOptions(group_size=4, max_steps=3, learning_rate=1e-3, seed=7)
    first, second = (Training(data, tiny_encoder, "cls", tmp_path / name, options) for name in ("a", "b"))
    first.estimate()  # the measurement must not move the weights or the random streams
    first.run(), second.run()
    assert file_sha256(tmp_path / "a" / "model.safetensors") == file_sha256(tmp_path / "b" / "model.safetensors")


def test_fine_tune_from_a_sessions_judgments_with_a_reranker(tmp_path, sample_corpus, tiny_encoder, tiny_reranker):
    session = Session()
    session.load_corpus([sample_corpus])
    for question, doc in SAMPLE_QUESTIONS.items():
        session.judgments.grade(question, doc, 2)
    config = RetrievalConfig(model=tiny_encoder, chunk_size=None, precision="fp32")
    split = split_queries(session.judgments, 0.3, seed=1)
    seen, estimates = [], []
    result = fine_tune(session, session.judgments, split, config, tmp_path / "tuned",
                       sampling=NegativeSampling(0, 20, 3), options=TrainingOptions(epochs=1, batch_size=4, group_size=4),
                       reranker=tiny_reranker, n_resamples=200, progress=lambda *step: seen.append(step),
                       on_estimate=lambda seconds, steps: estimates.append((seconds, steps)))
    assert [s[:2] for s in seen if s[2] is None][-1] == (7, 7)  # mining: 7 training queries
    assert [s[0] for s in seen if s[2] is not None] == [1, 2] and estimates[0][1] == result.training.steps == 2
    assert [c.label for c in result.comparison.plan.configurations] == ["base", "tuned", "base + reranker",
                                                                         "tuned + reranker"]
    assert result.comparison.results["tuned"].query_ids == list(split.held_out)
    held_texts = {session.judgments.to_judgments().queries[q] for q in split.held_out}
    assert not held_texts & {q.query for q in result.mined.queries}
    assert result.card.split == split.to_dict() and result.mined.reranker == tiny_reranker
    assert Session().embedder_for(result.config).identity == result.config.revision
    with pytest.raises(Cancelled):
        fine_tune(session, session.judgments, split, config, tmp_path / "stopped", cancel=lambda: True)
    assert not (tmp_path / "stopped").exists()


def beir_with_splits(folder, sample_corpus):
    """The sample corpus with 7 training queries (qrels/train.tsv) and 3 test queries (qrels/test.tsv)."""
    items = list(SAMPLE_QUESTIONS.items())
    queries = {f"q{i}": text for i, (text, _) in enumerate(items)}
    write_beir(folder, sample_corpus, queries, [(f"q{i}", doc, 1) for i, (_, doc) in enumerate(items[:7])], "train")
    write_beir(folder, sample_corpus, queries, [(f"q{i}", doc, 1) for i, (_, doc) in enumerate(items) if i >= 7])
    return folder


def test_the_cli_tunes_saves_a_card_and_compares_on_the_held_out_split(tmp_path, sample_corpus, tiny_encoder):
    folder = beir_with_splits(tmp_path / "beir", sample_corpus)
    out, report = tmp_path / "tuned", tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-m", "bge_explorer", "finetune", "--beir", str(folder), "--split", "train",
                             "--holdout-split", "test", "--model", tiny_encoder, "--out", str(out),
                             "--negatives", "0-20:3", "--epochs", "1", "--batch-size", "4", "--group-size", "4",
                             "--resamples", "200", "--json", str(report)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "held-out queries: 3" in result.stdout and "tuned" in result.stdout and "base" in result.stdout
    card = ModelCard.load(out)
    assert card.identity == file_sha256(out / "model.safetensors")
    assert card.data["sha256"] == file_sha256(out / DATA_FILE) and card.data["examples"] == 7
    assert card.split["held_out"] == ["q7", "q8", "q9"] and card.split["method"] == "given"
    assert card.base["pooling"] == "cls" and card.training["steps"] == 2 and card.mining["negatives"] == "0-20:3"
    trained_on = {json.loads(line)["query"] for line in (out / DATA_FILE).read_text().splitlines()}
    assert trained_on == set(list(SAMPLE_QUESTIONS)[:7])  # no held-out query text reaches training
    data = json.loads(report.read_text())
    assert [c["name"] for c in data["comparison"]["configurations"]] == ["base", "tuned"]
    assert data["comparison"]["queries"] == 3 and data["card"]["identity"] == card.identity
    tuned = data["comparison"]["configurations"][1]
    assert tuned["vs_baseline"]["ndcg@10"]["p_holm"] <= 1 and tuned["config"]["model"] == str(out.resolve())
    embedder = Session().embedder_for(card.config(out))  # the card's configuration loads it, identity checked
    assert embedder.identity == card.config(out).revision and (out / CARD_FILE).is_file()


def test_the_cli_names_the_flag_at_fault(tmp_path, sample_corpus, tiny_encoder, capsys):
    folder = beir_with_splits(tmp_path / "beir", sample_corpus)
    base = ["finetune", "--beir", str(folder), "--model", tiny_encoder, "--out", str(tmp_path / "o")]
    for extra, flag in ((["--negatives", "10:7"], "--negatives"), (["--holdout-fraction", "1.5"], "--holdout-fraction"),
                        (["--batch-size", "0"], "--batch-size"), (["--holdout-split", "nope"], "nope"),
                        (["--mine-mode", "nope"], "--mine-mode"), (["--relevance", "0"], "--relevance")):
        assert main(base + extra) == 2
        assert flag in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
