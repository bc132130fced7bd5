"""The map with many points in headless Chromium: time to first draw and frame times while panning.

    python bench/map_points.py [--points 100000] [--pan-seconds 2] [--chromium /usr/bin/chromium]

Builds a synthetic map (clustered float32 coordinates, 300 documents, chunk text of ~100 characters) into the
standalone page the app exports (plotly.js and assets/map.js inlined, the same renderer as the app), opens it
in Debian's Chromium through Playwright, and reports as JSON: the payload's size and bytes per point, the time
from parsing the payload to the first frame after plotly's draw, and the frames of a mouse drag in pan mode
for ``--pan-seconds`` (requestAnimationFrame intervals: median, p95, max). Chromium runs with --disable-gpu
here, as the tests do: WebGL falls back to software rendering (SwiftShader), slower than a desktop GPU.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

FIRST_DRAW_JS = """async () => {
  const t0 = performance.now();
  const data = JSON.parse(document.getElementById('map-data').textContent);
  const gd = document.getElementById('bench');
  await BxMap.draw(gd, data, {});
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  return performance.now() - t0;
}"""
FRAMES_JS = """(seconds) => new Promise((resolve) => {
  const times = [];
  const start = performance.now();
  const tick = (t) => { times.push(t); if (t - start < seconds * 1000) requestAnimationFrame(tick); else resolve(times); };
  requestAnimationFrame(tick);
})"""


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """(n, 2) float32 coordinates in 40 Gaussian blobs and a chunk table of 300 documents."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-20, 20, size=(40, 2))
    coords = (centres[rng.integers(0, 40, n)] + rng.normal(size=(n, 2))).astype(np.float32)
    words = np.array("tower paris iron bees honey hive river bridge stone light night market".split())
    text = [" ".join(rng.choice(words, 16)) for _ in range(min(n, 5000))]
    chunks = pd.DataFrame({"doc_id": [f"doc-{i % 300}" for i in range(n)], "chunk": np.arange(n) // 300,
                           "text": [text[i % len(text)] for i in range(n)]})
    return coords, chunks


def page_html(n: int) -> tuple[str, dict]:
    from bge_explorer.app.map import standalone_html
    from bge_explorer.maps import points

    coords, chunks = synthetic(n)
    data = points.point_payload(coords, chunks, points.by_category(chunks["doc_id"], "document"), axis="UMAP",
                                revision="bench", title=f"{n:,} points", query=None,
                                labels={"coarse": [], "fine": []}, find="", matches=[])
    html = standalone_html(data).replace('<div id="map"', '<div id="bench"').replace(
        "BxMap.draw(document.getElementById('map')", "void (document.getElementById('map')")
    return html, {"points": n, "payload_mb": round(len(json.dumps(data)) / 1e6, 2),
                  "bytes_per_point": round(points.bytes_per_point(data), 1)}


def run(n: int, pan_seconds: float, chromium: str) -> dict:
    from playwright.sync_api import sync_playwright

    from browser_support import CHROMIUM_ARGS

    html, report = page_html(n)
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as p:
        path = Path(folder) / "map.html"
        path.write_text(html, encoding="utf-8")
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        started = time.perf_counter()
        page.goto(path.as_uri(), wait_until="load")
        report["page_load_s"] = round(time.perf_counter() - started, 2)
        report["first_draw_ms"] = round(page.evaluate(FIRST_DRAW_JS))
        box = page.locator("#bench .nsewdrag").first.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        view = "() => document.getElementById('bench')._fullLayout.xaxis.range.slice()"
        before = page.evaluate(view)
        page.mouse.move(x, y)
        page.mouse.down()
        frames = page.evaluate_handle(FRAMES_JS, pan_seconds)
        steps = max(1, int(pan_seconds * 30))
        for i in range(steps):  # a slow circle, one move per ~33 ms
            angle = 2 * np.pi * i / steps
            page.mouse.move(x + 150 * np.cos(angle), y + 100 * np.sin(angle))
            page.wait_for_timeout(1000 * pan_seconds / steps)
        moved = page.evaluate(view) != before  # read while the button is down: the view followed the drag
        page.mouse.up()
        gaps = np.diff(np.array(frames.json_value()))
        report.update(panned=moved, frames=int(len(gaps)), frame_ms_median=round(float(np.median(gaps)), 1),
                      frame_ms_p95=round(float(np.percentile(gaps, 95)), 1), frame_ms_max=round(float(gaps.max()), 1))
        browser.close()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--pan-seconds", type=float, default=2.0)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.points, args.pan_seconds, args.chromium), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
