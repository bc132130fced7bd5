"""Keyword labels for clusters of chunks: class-based TF-IDF (c-TF-IDF, as BERTopic defines it), no LLM.

All chunks of one k-means cluster are joined into one class document; a term's weight in a class is its
frequency there times ``log(1 + A / f)``, where ``A`` is the mean number of words per class and ``f`` the
term's frequency over all classes. English stop words (scikit-learn's list) are removed. Each label sits at the
mean 2-D position of its cluster's chunks.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

TOP_WORDS = 3
TOKEN_PATTERN = r"(?u)\b[^\W\d_][\w-]{2,}\b"  # words of 3+ characters that start with a letter


@dataclasses.dataclass(frozen=True)
class ClusterLabel:
    """One cluster's label: its keywords (best first, with c-TF-IDF weights), size and centroid on the map."""

    cluster: int
    words: tuple[str, ...]
    weights: tuple[float, ...]
    size: int
    x: float
    y: float

    @property
    def text(self) -> str:
        return " · ".join(self.words) if self.words else f"cluster {self.cluster}"


def class_tfidf(texts: Sequence[str], labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """c-TF-IDF of the clusters -> (classes (c,), weights (c, vocabulary), vocabulary).

    ``texts`` (n,) and ``labels`` (n,) are aligned: chunk i belongs to cluster ``labels[i]``.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    labels = np.asarray(labels)
    if len(texts) != len(labels):
        raise ValueError(f"labels: {len(labels)} labels for {len(texts)} texts")
    classes = np.unique(labels)
    joined = [" ".join(str(t) for t, keep in zip(texts, labels == c) if keep) for c in classes]
    vectorizer = CountVectorizer(stop_words="english", lowercase=True, token_pattern=TOKEN_PATTERN)
    try:
        counts = vectorizer.fit_transform(joined).toarray().astype(np.float64)
    except ValueError:  # nothing but stop words
        return classes, np.zeros((len(classes), 0)), []
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    mean_words = counts.sum() / len(classes)
    idf = np.log1p(mean_words / np.maximum(counts.sum(axis=0), 1))
    return classes, tf * idf, list(vectorizer.get_feature_names_out())


def cluster_labels(texts: Sequence[str], labels: Sequence[int], coords: np.ndarray,
                   top: int = TOP_WORDS) -> list[ClusterLabel]:
    """The ``top`` c-TF-IDF words of each cluster and its centroid in ``coords`` (n, 2), largest cluster first."""
    coords = np.asarray(coords, dtype=np.float64)
    labels = np.asarray(labels)
    if coords.shape != (len(labels), 2):
        raise ValueError(f"coords: shape {coords.shape}, expected ({len(labels)}, 2)")
    classes, weights, vocabulary = class_tfidf(texts, labels)
    out = []
    for i, c in enumerate(classes):
        mask = labels == c
        order = [j for j in np.argsort(-weights[i], kind="stable")[:top] if weights[i, j] > 0] if vocabulary else []
        centre = coords[mask].mean(axis=0)
        out.append(ClusterLabel(int(c), tuple(vocabulary[j] for j in order), tuple(float(weights[i, j]) for j in order),
                                int(mask.sum()), float(centre[0]), float(centre[1])))
    return sorted(out, key=lambda label: (-label.size, label.cluster))
