"""The Map tab's handlers without a browser: payload, colourings, click, selection, grading, search within, exports."""
from __future__ import annotations

import json
import re
import types

import gradio as gr
import numpy as np
import pandas as pd
import pytest

from bge_explorer.app import explorer as ui, map as map_tab
from bge_explorer.maps import labels, points, selection


@pytest.fixture()
def indexed(tiny_encoder, sample_corpus):
    _, _, _, app = ui.load_corpus([sample_corpus])
    *_, app = ui.build_index(tiny_encoder, chunking="tokens", chunk_size=64, overlap=8, state=app, progress=None)
    return app


def event(**data):
    return types.SimpleNamespace(_data=data)


def drawn(app, colour="document", find=""):
    frames = list(map_tab.map_view(colour, app, find))
    return json.loads(frames[-1][0]), frames[-1][1], frames


def xy(data):
    return np.c_[points.decode_array(data["x"]), points.decode_array(data["y"])]


def test_every_chunk_is_sent_with_the_query_and_its_hits(indexed, tiny_reranker):
    ui.search_once("eiffel tower paris", "model default", "", 4, tiny_reranker, 6, indexed)
    data, status, frames = drawn(indexed)
    assert "PCA preview" in frames[0][1] and "UMAP map" in status and "every chunk drawn" in status
    table = indexed.session.chunks.table
    proj = indexed.maps.ready(indexed.map_key())
    assert data["n"] == len(table) and data["axis"] == "UMAP"
    np.testing.assert_array_equal(xy(data), proj.coords)
    ranking = indexed.current_ranking()
    assert data["query"]["retrieved"] == ranking.rows[:4].tolist()
    assert data["query"]["reranked"] == ranking.final_rows()[:4].tolist()
    np.testing.assert_allclose([data["query"]["x"], data["query"]["y"]],
                               proj.transform(indexed.query_vector[None, :])[0], rtol=1e-6)
    docs = points.decode_array(data["doc"])
    assert [data["docs"][d] for d in docs] == table["doc_id"].astype(str).tolist()
    assert re.search(r"\d+ bytes per point", status)


def test_cluster_labels_and_colours_come_from_the_same_kmeans(indexed):
    data, status, _ = drawn(indexed, "cluster")
    coarse, fine = map_tab._clusters(indexed, indexed.map_key())
    texts = indexed.session.chunks.table["text"].astype(str).tolist()
    coords = indexed.maps.ready(indexed.map_key()).coords
    expected = labels.cluster_labels(texts, coarse, coords)
    assert [l["text"] for l in data["labels"]["coarse"]] == [points.plain(l.text, 60) for l in expected]
    assert len(data["labels"]["fine"]) == len(np.unique(fine)) > len(data["labels"]["coarse"])
    codes = points.decode_array(data["colour"]["codes"])
    names = data["colour"]["names"]
    assert [names[c].split(":")[0] for c in codes] == [str(c) for c in coarse]
    assert "c-TF-IDF" in status
    # the cluster list: each label names its cluster, whose chunks (the page selects them by code) it counts
    sent = points.decode_array(data["cluster"])
    np.testing.assert_array_equal(sent, coarse)
    assert {l["cluster"]: l["size"] for l in data["labels"]["coarse"]} == \
        {int(c): int(n) for c, n in zip(*np.unique(coarse, return_counts=True))}
    rows = np.flatnonzero(sent == data["labels"]["coarse"][0]["cluster"]).tolist()
    _, note, _ = map_tab.points_selected(indexed, event(rows=rows, shape={"cluster": 0}))
    assert f"<b>{len(rows)}</b> chunk(s)" in note and "(cluster 0)" in note


def test_colour_by_the_corpus_metadata_columns(tiny_encoder, tmp_path):
    path = tmp_path / "tickets.csv"
    rows = ["id,text,team,year"] + [f"t{i},ticket {i} about the {'printer' if i % 2 else 'network'},"
                                    f"{'<b>ops</b>' if i % 3 else 'dev'},{2000 + i}" for i in range(20)]
    path.write_text("\n".join(rows) + "\n")
    *_, app = ui.load_corpus([str(path)])
    *_, app = ui.build_index(tiny_encoder, chunking="none", state=app, progress=None)
    assert map_tab.colour_choices(app) == [*map_tab.COLOR_BY, "column: id", "column: team", "column: year"]
    data, status, _ = drawn(app, "column: team")
    codes = points.decode_array(data["colour"]["codes"])
    teams = ["<b>ops</b>" if i % 3 else "dev" for i in range(20)]  # chunking none: one chunk per row, in order
    assert [data["colour"]["names"][c] for c in codes] == [points.plain(t) for t in teams]
    assert "&lt;b&gt;ops" in data["colour"]["names"][0] + data["colour"]["names"][1] and "“team”" in status
    data, status, _ = drawn(app, "column: year")  # 20 distinct numbers: on a scale
    np.testing.assert_array_equal(points.decode_array(data["colour"]["values"]), np.arange(2000, 2020))
    assert data["colour"]["kind"] == "value" and "numbers" in status
    data, *_ = drawn(app, "column: nope")  # not a column of this corpus: by document
    assert data["colour"]["title"] == "document"


def test_colour_by_score_movement_columns_and_grade(indexed, tiny_reranker):
    query = "eiffel tower paris"
    ui.search_once(query, "none", "", 5, tiny_reranker, 5, indexed)
    ranking = indexed.current_ranking()
    data, *_ = drawn(indexed, "retrieval score")
    values = points.decode_array(data["colour"]["values"])
    np.testing.assert_allclose(values[ranking.rows], ranking.score, rtol=1e-6)
    assert np.isnan(np.delete(values, ranking.rows)).all()
    data, *_ = drawn(indexed, "reranker movement")
    values = points.decode_array(data["colour"]["values"])
    moved = ranking.table["movement"]
    np.testing.assert_array_equal(values[ranking.rows[:5]], moved[:5].astype(float))
    data, *_ = drawn(indexed, "file")
    codes = points.decode_array(data["colour"]["codes"])
    sources = indexed.session.chunks.table["source"].astype(str)
    assert [data["colour"]["names"][c] for c in codes] == [points.plain(s, 60) for s in sources]
    indexed.session.judgments.grade(query, "eiffel-tower", 3)
    data, status, _ = drawn(indexed, "grade")
    codes = points.decode_array(data["colour"]["codes"])
    docs = indexed.session.chunks.table["doc_id"].astype(str).to_numpy()
    assert (codes[docs == "eiffel-tower"] == 4).all() and (codes[docs != "eiffel-tower"] == 0).all()
    chunks = int((docs == "eiffel-tower").sum())
    assert data["colour"]["names"][4] == f"3 perfect ({chunks})" and "1 judged" in status  # chunk counts


def test_find_in_the_map_marks_lexical_matches_and_nearest_chunks(indexed):
    data, status, _ = drawn(indexed, find="Eiffel tower")
    texts = indexed.session.chunks.table["text"].str.lower()
    expected = [i for i, t in enumerate(texts) if re.search(r"\beiffel", t) and re.search(r"\btower", t)]
    assert data["matches"] == expected and expected and f"{len(expected)} chunk(s) hold its words" in status
    # and its nearest chunks by the model: brute force over the index's vectors with the same query encoding
    current = indexed.session.current
    vector = current.embedder.encode_queries(["Eiffel tower"], "")[0]
    assert data["near"] == np.argsort(-(indexed.session.vectors @ vector), kind="stable")[:10].tolist()
    assert "its 10 nearest chunks by the model" in status
    data, *_ = drawn(indexed, find="   ")
    assert data["matches"] == [] and data["near"] == []


def test_a_click_opens_the_chunk_and_find_similar_sets_the_query(indexed):
    drawn(indexed)
    table = indexed.session.chunks.table
    detail, app = map_tab.point_click(indexed, event(row=3))
    assert table.iloc[3]["doc_id"] in detail and "Chunk row 3" in detail
    query, note, app = map_tab.similar_query(app)
    assert query == " ".join(table.iloc[3]["text"].split())[:len(query)] and "row 3" in note
    for bad in (-1, len(table), 1.5, "2", True):
        with pytest.raises(gr.Error, match="row"):
            map_tab.point_click(indexed, event(row=bad))


def test_a_lasso_selection_is_listed_graded_searched_and_exported(indexed):
    data, *_ = drawn(indexed)
    coords = xy(data)
    centre = coords.mean(axis=0)
    polygon = centre + np.array([[-3, -3], [3, -3], [3, 3], [-3, 3]]) * coords.std(axis=0) / 3
    rows = np.flatnonzero(selection.points_in_polygon(coords, polygon)).tolist()
    assert 0 < len(rows) < len(coords)
    table, note, app = map_tab.points_selected(indexed, event(rows=rows[::-1] + rows[:1], shape={"lasso": {}}))
    chunks = indexed.session.chunks.table.iloc[rows]
    assert table["document"].tolist() == chunks["doc_id"].astype(str).tolist()
    assert table["chunk"].tolist() == chunks["chunk"].tolist() and f"<b>{len(rows)}</b> chunk(s)" in note
    with pytest.raises(gr.Error, match="Search first"):
        map_tab.grade_selection("2 relevant", app)
    ui.search_once("eiffel tower", "none", "", 5, ui.NO_RERANKER, 5, app)
    table, note, app = map_tab.grade_selection("2 relevant", app)
    docs = set(chunks["doc_id"].astype(str))
    assert app.session.judgments.grades("eiffel tower") == {d: 2 for d in docs}
    assert set(table["grade"]) == {"2 relevant"} and f"Graded {len(docs)} document(s)" in note
    ranked, note, app = map_tab.search_selection("eiffel tower", app)
    vector = app.session.embedder.encode_queries(["eiffel tower"], app.session.embedder.spec.instruction)[0]
    scores = app.session.vectors[rows] @ vector
    assert ranked["score"].tolist() == np.round(np.sort(scores)[::-1], 4).tolist()
    exported = pd.read_csv(map_tab.export_selection(app))
    assert exported["chunk_id"].tolist() == chunks["chunk_id"].astype(str).tolist()
    np.testing.assert_allclose(exported[["x", "y"]].to_numpy(), coords[rows], rtol=1e-6)


def test_selection_rows_from_the_page_are_checked(indexed):
    drawn(indexed)
    with pytest.raises(gr.Error, match="rows"):
        map_tab.points_selected(indexed, event(rows=[0, 10_000]))
    table, note, _ = map_tab.points_selected(indexed, event(rows=[]))
    assert len(table) == 0 and "Nothing selected" in note
    with pytest.raises(gr.Error, match="Select chunks"):
        map_tab.export_selection(indexed)


def test_exports_open_offline_and_hold_the_coordinates(indexed):
    drawn(indexed)
    files, note = map_tab.export_map("document", indexed)
    html, csv, parquet = files
    page = open(html, encoding="utf-8").read()
    assert "Plotly" in page and "BxMap.draw" in page and "<script src" not in page  # everything inlined
    proj = indexed.maps.ready(indexed.map_key())
    for table in (pd.read_csv(csv), pd.read_parquet(parquet)):
        assert table["chunk_id"].tolist() == indexed.session.chunks.table["chunk_id"].astype(str).tolist()
        np.testing.assert_allclose(table[["x", "y"]].to_numpy(), proj.coords, rtol=1e-6)


def test_user_text_is_escaped_in_the_payload_and_the_export(tiny_encoder, tmp_path):
    evil = tmp_path / "evil.jsonl"
    evil.write_text(json.dumps({"_id": "<img src=x onerror=alert(1)>", "title": "<b>t</b>",
                                "text": "<script>alert('x')</script> </script><b>bold</b> tower"}) + "\n"
                    + json.dumps({"_id": "plain", "text": "another tower document"}) + "\n", encoding="utf-8")
    *_, app = ui.load_corpus([str(evil)])
    *_, app = ui.build_index(tiny_encoder, chunking="none", state=app, progress=None)
    data, *_ = drawn(app, "title", find="<script>")
    text = json.dumps(data["docs"] + data["text"] + data["colour"]["names"] + [l["text"] for l in data["labels"]["coarse"]])
    assert "<script" not in text and "<img" not in text and "&lt;img" in text
    files, _ = map_tab.export_map("document", app)
    page = open(files[0], encoding="utf-8").read()
    data_part = page[page.index('id="map-data">'):]
    assert "<script>alert" not in page and "</script><b>" not in data_part.split("</script>", 1)[0]


def test_two_spaces_side_by_side_with_numbers_and_rows_linked_by_chunk_id(sample_corpus, tiny_encoder, tmp_path):
    from bge_explorer.maps import spaces
    from bge_explorer.models import random_models

    other = random_models.build(tmp_path / "other-encoder", "encoder", seed=7)
    *_, app = ui.load_corpus([sample_corpus])
    *_, app = ui.build_index(other, chunk_size=48, overlap=8, state=app, progress=None)
    b_vectors, b_table = app.session.vectors, app.session.chunks.table
    *_, app = ui.build_index(tiny_encoder, chunk_size=48, overlap=8, state=app, progress=None)
    drawn(app)
    update, app = map_tab.space_choices(app)
    assert len(update["choices"]) == 1 and "other-encoder" in update["value"]
    payload, numbers, app = map_tab.compare_spaces(update["value"], app)
    data = json.loads(payload)
    a_table = app.session.chunks.table
    peer = points.decode_array(data["peer"])
    assert data["space"] == "b" and data["n"] == len(b_table)
    assert [a_table["chunk_id"].iloc[r] for r in peer] == b_table["chunk_id"].tolist()  # one tokenizer: all shared
    order = peer.argsort()
    expected = spaces.knn_overlap(app.session.vectors, b_vectors[order], 10)
    assert f"kNN overlap@10: <b>{expected:.3f}</b>" in numbers
    docs = a_table["doc_id"].to_numpy()
    for name, vectors in (("A", app.session.vectors), ("B", b_vectors[order])):
        assert f"{name} " in numbers and f"<b>{spaces.document_silhouette(vectors, docs):.3f}</b>" in numbers
    with pytest.raises(gr.Error, match="Choose another index"):
        map_tab.compare_spaces("nothing", app)


def test_space_numbers_sample_large_corpora_and_match_the_reference():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(300, 6)), rng.normal(size=(300, 4))
    documents = np.repeat(np.arange(30), 10).astype(str)
    numbers = map_tab.space_numbers(a, b, documents)
    assert numbers["sampled"] == 300 and numbers["overlap"] == pytest.approx(spaces_overlap(a, b, np.arange(300)))
    rows = map_tab.spaces.sample_rows(300, 50)
    assert len(rows) == 50 and (rows == map_tab.spaces.sample_rows(300, 50)).all()
    assert map_tab.spaces.knn_overlap(a, b, 10, rows) == pytest.approx(spaces_overlap(a, b, rows))


def spaces_overlap(a, b, rows, k=10):
    def nearest(v):
        u = v / np.linalg.norm(v, axis=1, keepdims=True)
        d = 1 - u @ u.T
        np.fill_diagonal(d, np.inf)
        return [set(np.argsort(d[r], kind="stable")[:k]) for r in rows]
    return np.mean([len(x & y) / k for x, y in zip(nearest(a), nearest(b))])
