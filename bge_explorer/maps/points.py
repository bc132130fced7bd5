"""The map's points as a compact payload for the browser, and the 2-D coordinates as a table.

Numbers travel as binary: each array is little-endian bytes in base64 with its dtype name, decoded in the page
into a typed array (``Float32Array``, ``Uint8Array``, ...) that plotly draws directly. Coordinates are float32;
documents and categories are small integer codes into a list of names. Text (document names, the start of each
chunk) is HTML-escaped here, because plotly reads a few tags in hover text and annotations: user text always
shows as text. See :func:`bytes_per_point` for the size.
"""
from __future__ import annotations

import base64
import dataclasses
import html
from typing import Sequence

import numpy as np
import pandas as pd

from bge_explorer.maps.labels import ClusterLabel

HOVER_CHARS = 100  # characters of a chunk's text in its hover label
DTYPES = ("float32", "uint8", "uint16", "uint32", "int32")
PALETTE = ("#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880", "#FF97FF",
           "#FECB52", "#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B", "#E377C2", "#7F7F7F",
           "#BCBD22", "#17BECF")  # plotly's and D3's qualitative colours
OTHER_COLOUR = "#CFCFCF"


def plain(text: object, limit: int | None = None) -> str:
    """User text for plotly: whitespace folded, shortened to ``limit`` characters, HTML-escaped (``"`` as a
    numeric entity, which plotly decodes; it knows no ``&quot;``)."""
    text = " ".join(str(text).split())
    if limit is not None and len(text) > limit:
        text = text[:limit - 1] + "…"
    return html.escape(text, quote=True).replace("&quot;", "&#34;")


def encode_array(values: np.ndarray, dtype: str) -> dict:
    """A 1-D array as ``{"dtype", "b64"}``: its little-endian bytes in base64."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype: one of {', '.join(DTYPES)}; got {dtype!r}")
    data = np.ascontiguousarray(np.asarray(values).ravel(), dtype=np.dtype(dtype).newbyteorder("<"))
    return {"dtype": dtype, "b64": base64.b64encode(data.tobytes()).decode("ascii")}


def decode_array(encoded: dict) -> np.ndarray:
    """The inverse of :func:`encode_array` (what the page does with ``atob`` and a typed array)."""
    return np.frombuffer(base64.b64decode(encoded["b64"]), dtype=np.dtype(encoded["dtype"]).newbyteorder("<"))


def code_dtype(count: int) -> str:
    """The smallest unsigned dtype that holds codes 0..count-1."""
    return "uint8" if count <= 256 else "uint16" if count <= 65_536 else "uint32"


@dataclasses.dataclass(frozen=True)
class Colouring:
    """How points are coloured: ``kind`` "category" (``codes`` into ``names`` with ``colours``) or "value"
    (``values``, NaN for none, on a colour scale titled ``title``)."""

    kind: str
    title: str
    codes: np.ndarray | None = None
    names: tuple[str, ...] = ()
    colours: tuple[str, ...] = ()
    values: np.ndarray | None = None

    def encode(self) -> dict:
        if self.kind == "category":
            return {"kind": "category", "title": plain(self.title), "names": list(self.names),
                    "colours": list(self.colours), "codes": encode_array(self.codes, code_dtype(len(self.names)))}
        return {"kind": "value", "title": plain(self.title), "values": encode_array(self.values, "float32")}


def by_category(values: Sequence[object], title: str, colours: Sequence[str] | None = None,
                order: Sequence[object] | None = None) -> Colouring:
    """Colour by a categorical column: one code per distinct value (first-seen order, or ``order``)."""
    values = pd.Series(list(values), dtype=object).map(lambda v: "—" if v is None or v != v else str(v))
    categories = [str(v) for v in order] if order is not None else list(dict.fromkeys(values))
    codes = pd.Categorical(values, categories=categories).codes
    if (codes < 0).any():
        raise ValueError(f"order: values {sorted(set(values[codes < 0]))[:5]} are not in the order given")
    palette = list(colours) if colours is not None else [PALETTE[i % len(PALETTE)] for i in range(len(categories))]
    return Colouring("category", title, codes=codes.astype(np.int64),
                     names=tuple(plain(c, 60) for c in categories), colours=tuple(palette[:len(categories)]))


def by_value(values: Sequence[float | None], title: str) -> Colouring:
    """Colour by a number per point (None or NaN: no value, drawn grey)."""
    array = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float32)
    return Colouring("value", title, values=array)


def label_payload(labels: Sequence[ClusterLabel]) -> list[dict]:
    return [{"cluster": int(label.cluster), "text": plain(label.text, 60), "x": label.x, "y": label.y,
             "size": label.size} for label in labels]


def point_payload(coords: np.ndarray, chunks: pd.DataFrame, colouring: Colouring, **extra) -> dict:
    """The payload the page's map draws: ``coords`` (n, 2) aligned with ``chunks`` (doc_id, chunk, text).

    ``extra`` (already plain JSON: query marks, labels, matches, title) is merged in as is."""
    coords = np.asarray(coords, dtype=np.float32)
    if coords.shape != (len(chunks), 2):
        raise ValueError(f"coords: shape {coords.shape}, expected ({len(chunks)}, 2)")
    doc_codes, docs = pd.factorize(chunks["doc_id"].astype(str))
    numbers = chunks["chunk"].astype(np.int64).to_numpy()
    return {"n": len(coords), "x": encode_array(coords[:, 0], "float32"), "y": encode_array(coords[:, 1], "float32"),
            "docs": [plain(d, 80) for d in docs], "doc": encode_array(doc_codes, code_dtype(len(docs))),
            "chunk": encode_array(numbers, code_dtype(int(numbers.max(initial=0)) + 1)),
            "text": [plain(t, HOVER_CHARS) for t in chunks["text"]], "colour": colouring.encode(), **extra}


def bytes_per_point(payload: dict) -> float:
    """Bytes per point of the per-point fields as sent (base64 arrays and the hover text's JSON)."""
    import json

    n = max(payload["n"], 1)
    binary = sum(len(payload[k]["b64"]) for k in ("x", "y", "doc", "chunk", "cluster") if k in payload)
    colour = payload["colour"]
    binary += len((colour.get("codes") or colour.get("values"))["b64"])
    return (binary + len(json.dumps(payload["text"], ensure_ascii=False).encode())) / n


def coordinates_table(coords: np.ndarray, chunks: pd.DataFrame, kind: str) -> pd.DataFrame:
    """chunk_id, doc_id, chunk, x, y (float32) and the projection's kind: the map as data."""
    coords = np.asarray(coords, dtype=np.float32)
    if coords.shape != (len(chunks), 2):
        raise ValueError(f"coords: shape {coords.shape}, expected ({len(chunks)}, 2)")
    return pd.DataFrame({"chunk_id": chunks["chunk_id"].astype(str).to_numpy(),
                         "doc_id": chunks["doc_id"].astype(str).to_numpy(),
                         "chunk": chunks["chunk"].astype(np.int64).to_numpy(),
                         "x": coords[:, 0], "y": coords[:, 1], "projection": kind})
