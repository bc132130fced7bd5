"""Which map points lie inside a lasso polygon: the reference the app's selection is checked against.

Ray casting (even-odd rule, W. Randolph Franklin's PNPOLY): a point is inside when a ray from it to +x crosses
the polygon's edges an odd number of times. Vectorised over points; the polygon closes itself (last vertex back
to the first). Points exactly on an edge may fall either side, as in any even-odd test.
"""
from __future__ import annotations

import numpy as np


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(n, 2) points, (m, 2) polygon vertices (m >= 3) -> (n,) bool, True inside."""
    points = np.asarray(points, dtype=np.float64)
    polygon = np.asarray(polygon, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points: shape {points.shape}, expected (n, 2)")
    if polygon.ndim != 2 or polygon.shape[1] != 2 or len(polygon) < 3:
        raise ValueError(f"polygon: shape {polygon.shape}, expected (m, 2) with m >= 3")
    x, y = points[:, 0][:, None], points[:, 1][:, None]  # (n, 1) against (m,) edges
    x1, y1 = polygon[:, 0], polygon[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    crosses = straddles & (x < crossing_x)
    return (crosses.sum(axis=1) % 2) == 1


def points_in_box(points: np.ndarray, x_range: tuple[float, float], y_range: tuple[float, float]) -> np.ndarray:
    """(n, 2) points inside the closed box [x0, x1] x [y0, y1] (either order) -> (n,) bool."""
    points = np.asarray(points, dtype=np.float64)
    (x0, x1), (y0, y1) = sorted(x_range), sorted(y_range)
    return (points[:, 0] >= x0) & (points[:, 0] <= x1) & (points[:, 1] >= y0) & (points[:, 1] <= y1)
