"""The map's engine: cluster labels (c-TF-IDF), the binary point payload, lasso selection, two-space numbers."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from bge_explorer.maps import labels, points, selection, spaces


def test_class_tfidf_matches_the_hand_computed_weights():
    texts = ["apple apple banana", "the banana", "cherry and", "banana"]
    classes, weights, vocabulary = labels.class_tfidf(texts, [0, 0, 1, 1])
    assert list(classes) == [0, 1] and vocabulary == ["apple", "banana", "cherry"]  # "the", "and": stop words
    # counts c0: apple 2, banana 2; c1: cherry 1, banana 1. A = 6 words / 2 classes = 3.
    # f: apple 2, banana 3, cherry 1; idf = log(1 + A / f)
    expected = np.array([[2 / 4 * math.log(1 + 3 / 2), 2 / 4 * math.log(1 + 3 / 3), 0],
                         [0, 1 / 2 * math.log(1 + 3 / 3), 1 / 2 * math.log(1 + 3 / 1)]])
    np.testing.assert_allclose(weights, expected, rtol=1e-12)


def test_cluster_labels_give_top_words_and_centroids_largest_first():
    texts = ["paris eiffel tower", "eiffel tower iron", "tower paris", "bees honey", "honey hive bees"]
    coords = np.array([[0, 0], [2, 0], [1, 3], [10, 10], [12, 14]], dtype=np.float32)
    found = labels.cluster_labels(texts, [1, 1, 1, 0, 0], coords, top=2)
    assert [label.cluster for label in found] == [1, 0] and [label.size for label in found] == [3, 2]
    assert found[0].words == ("tower", "eiffel") and found[0].text == "tower · eiffel"  # tower 3, eiffel 2 (paris 2: later)
    assert (found[0].x, found[0].y) == (1.0, 1.0) and (found[1].x, found[1].y) == (11.0, 12.0)
    assert set(found[1].words) == {"bees", "honey"}
    with pytest.raises(ValueError, match="coords"):
        labels.cluster_labels(texts, [0] * 5, coords[:3])


def test_a_cluster_of_stop_words_gets_a_plain_name():
    found = labels.cluster_labels(["the and of", "it is"], [0, 0], np.zeros((2, 2)))
    assert found[0].words == () and found[0].text == "cluster 0"


def test_points_in_a_concave_polygon():
    # a U: the notch (1..2 x 1..3) is outside
    u = np.array([[0, 0], [3, 0], [3, 3], [2, 3], [2, 1], [1, 1], [1, 3], [0, 3]])
    probe = np.array([[0.5, 0.5], [1.5, 0.5], [2.5, 2.5], [0.5, 2.5], [1.5, 2.0], [1.5, 3.5], [-1, 1], [4, 1]])
    assert selection.points_in_polygon(probe, u).tolist() == [True, True, True, True, False, False, False, False]
    with pytest.raises(ValueError, match="polygon"):
        selection.points_in_polygon(probe, u[:2])


def test_points_in_a_box_either_corner_order():
    probe = np.array([[0, 0], [1, 1], [2, 2], [1, 3]])
    assert selection.points_in_box(probe, (2, 0.5), (0.5, 2)).tolist() == [False, True, True, False]


def test_payload_arrays_round_trip_as_little_endian_binary():
    coords = np.array([[0.5, -1.25], [3.0, 1e-3], [7.0, 8.0]], dtype=np.float32)
    chunks = pd.DataFrame({"doc_id": ["a", "<b>x</b>", "a"], "chunk": [0, 0, 1],
                           "text": ["plain", "<img src=x onerror=alert(1)>", "z " * 200]})
    payload = points.point_payload(coords, chunks, points.by_category(chunks["doc_id"], "document"))
    np.testing.assert_array_equal(points.decode_array(payload["x"]), coords[:, 0])
    np.testing.assert_array_equal(points.decode_array(payload["y"]), coords[:, 1])
    assert payload["doc"]["dtype"] == "uint8" and points.decode_array(payload["doc"]).tolist() == [0, 1, 0]
    assert points.decode_array(payload["chunk"]).tolist() == [0, 0, 1]
    assert payload["docs"] == ["a", "&lt;b&gt;x&lt;/b&gt;"] and payload["text"][1].startswith("&lt;img")
    assert len(payload["text"][2]) == points.HOVER_CHARS
    colour = payload["colour"]
    assert colour["names"] == ["a", "&lt;b&gt;x&lt;/b&gt;"] and points.decode_array(colour["codes"]).tolist() == [0, 1, 0]
    json.dumps(payload)  # plain JSON
    # 8 bytes of coordinates, 1 of document, 1 of chunk number, 1 of colour code: 11 bytes, 4/3 in base64 (12 of
    # 3 points: 44 characters), plus the hover text's JSON
    assert payload["chunk"]["dtype"] == "uint8"
    text = len(json.dumps(payload["text"], ensure_ascii=False).encode())
    assert points.bytes_per_point(payload) == (2 * 16 + 3 * 4 + text) / 3


def test_codes_widen_past_256_categories_and_values_keep_nan():
    assert points.code_dtype(256) == "uint8" and points.code_dtype(257) == "uint16"
    assert points.code_dtype(70_000) == "uint32"
    colouring = points.by_category([str(i) for i in range(300)], "document")
    assert colouring.encode()["codes"]["dtype"] == "uint16"
    values = points.decode_array(points.by_value([1.5, None, -2], "score").encode()["values"])
    assert values[0] == 1.5 and np.isnan(values[1]) and values[2] == -2
    with pytest.raises(ValueError, match="order"):
        points.by_category(["x", "y"], "grade", order=["x"])


def test_coordinates_table_has_ids_and_float32_positions(tmp_path):
    chunks = pd.DataFrame({"chunk_id": ["a#0", "b#0"], "doc_id": ["a", "b"], "chunk": [0, 0], "text": ["", ""]})
    table = points.coordinates_table(np.array([[1, 2], [3, 4]]), chunks, "umap")
    assert list(table.columns) == ["chunk_id", "doc_id", "chunk", "x", "y", "projection"]
    table.to_parquet(tmp_path / "m.parquet")
    back = pd.read_parquet(tmp_path / "m.parquet")
    assert back["x"].dtype == np.float32 and back["y"].tolist() == [2.0, 4.0]


def test_knn_overlap_by_hand_and_against_a_brute_force_count():
    # 1-D positions embedded on the unit circle: neighbours by angle
    angles_a = np.array([0.0, 0.1, 0.2, 1.0, 1.1])
    angles_b = np.array([0.0, 1.0, 0.2, 0.1, 1.1])  # rows 1 and 3 swapped places
    a = np.c_[np.cos(angles_a), np.sin(angles_a)]
    b = np.c_[np.cos(angles_b), np.sin(angles_b)]
    # k=1: A's nearest: 0->1, 1->0 (0.1 vs 0.1: tie, lower row), 2->1, 3->4, 4->3
    #      B's nearest: 0->3, 1->4, 2->3, 3->0 (tie 0 and 2 -> 0), 4->1
    assert spaces.neighbours(a, 1)[:, 0].tolist() == [1, 0, 1, 4, 3]
    assert spaces.neighbours(b, 1)[:, 0].tolist() == [3, 4, 3, 0, 1]
    assert spaces.knn_overlap(a, b, k=1) == 0.0
    assert spaces.knn_overlap(a, a, k=2) == 1.0
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 8)), rng.normal(size=(60, 5))
    def brute(v, k):
        u = v / np.linalg.norm(v, axis=1, keepdims=True)
        d = 1 - u @ u.T
        np.fill_diagonal(d, np.inf)
        return [set(np.argsort(row, kind="stable")[:k]) for row in d]
    expected = np.mean([len(p & q) / 10 for p, q in zip(brute(x, 10), brute(y, 10))])
    assert spaces.knn_overlap(x, y) == pytest.approx(expected)
    with pytest.raises(ValueError, match="same chunks"):
        spaces.knn_overlap(x, y[:5])


def test_document_silhouette_against_the_formula():
    rng = np.random.default_rng(1)
    vectors = np.r_[rng.normal([5, 0, 0], 1, size=(6, 3)), rng.normal([0, 5, 0], 1, size=(5, 3))]
    docs = np.array(["a"] * 6 + ["b"] * 5)
    u = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    d = 1 - u @ u.T
    s = []
    for i in range(len(docs)):
        same = (docs == docs[i]) & (np.arange(len(docs)) != i)
        a, b = d[i, same].mean(), d[i, docs != docs[i]].mean()
        s.append((b - a) / max(a, b))
    assert spaces.document_silhouette(vectors, docs) == pytest.approx(np.mean(s), abs=1e-9)
    assert spaces.document_silhouette(vectors, np.array(["a"] * 11)) is None


def test_umap_past_the_fit_sample_fits_a_sample_and_places_every_other_chunk():
    """Every chunk is drawn: the seeded sample's positions are a UMAP fit of the sample alone, the others are
    that fit's transform of them; the note says how many shaped the map."""
    from bge_explorer.maps import projection

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(4, 16))
    vectors = (centres[rng.integers(0, 4, 260)] + 0.1 * rng.normal(size=(260, 16))).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    whole = projection.fit_umap(vectors, fit_sample=200)
    rows = np.sort(np.random.default_rng(0).choice(260, 200, replace=False))
    alone = projection.fit_umap(vectors[rows], fit_sample=200)
    assert whole.coords.shape == (260, 2) and np.isfinite(whole.coords).all()
    np.testing.assert_allclose(whole.coords[rows], alone.coords, atol=1e-5)
    rest = np.setdiff1d(np.arange(260), rows)
    np.testing.assert_allclose(whole.coords[rest], alone.transform(vectors[rest]), atol=1e-4)
    assert "sample of 200 of the 260 chunks" in whole.note
    assert "sample" not in projection.fit_umap(vectors[:100], fit_sample=200).note
