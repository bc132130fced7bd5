"""The map in a real browser (Debian's Chromium, Playwright) with real mouse events: hover, click, lasso, box,
colour by, labels, and user text that stays text. The selection is checked against
:func:`bge_explorer.maps.selection.points_in_polygon` over the coordinates the page drew."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from browser_support import CHROMIUM, open_page, served_as_deployed
from bge_explorer.maps import selection

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: apt-get install -y chromium"),
]

pytest.importorskip("playwright.sync_api")

PLOT = "#map-plot .bx-map-plot"
PAYLOAD = "<script>alert(1)</script> <img src=x onerror=alert(1)>"

# the points' data and pixel positions (page coordinates), as plotly drew them
GEOMETRY_JS = """() => {
  const gd = document.querySelector('#map-plot .bx-map-plot');
  const L = gd._fullLayout, box = gd.getBoundingClientRect();
  const t = gd.data[0];
  const px = Array.from(t.x, (v) => box.left + L._size.l + L.xaxis.d2p(v));
  const py = Array.from(t.y, (v) => box.top + L._size.t + L.yaxis.d2p(v));
  return {x: Array.from(t.x), y: Array.from(t.y), px: px, py: py,
          left: box.left + L._size.l, top: box.top + L._size.t, width: L._size.w, height: L._size.h};
}"""
# page pixel -> data coordinates
TO_DATA_JS = """([px, py]) => {
  const gd = document.querySelector('#map-plot .bx-map-plot');
  const L = gd._fullLayout, box = gd.getBoundingClientRect();
  return [L.xaxis.p2d(px - box.left - L._size.l), L.yaxis.p2d(py - box.top - L._size.t)];
}"""


@pytest.fixture(scope="module")
def app_url():
    with served_as_deployed() as url:
        yield url


@pytest.fixture()
def page(app_url):
    with open_page(app_url, 1600) as page:  # the whole map in view
        yield page


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def build_and_map(page, query: str) -> dict:
    """Index with the default model, search ``query``, show the UMAP map; -> the drawn geometry."""
    open_tab(page, "Model & index")
    page.locator("#build-index").click()
    page.locator("#index-status").get_by_text("Index ready").wait_for(timeout=240_000)
    open_tab(page, "Search")
    page.locator("#query textarea").fill(query)
    page.locator("#search-btn").click()
    page.locator("#search-summary").get_by_text("Query embedded").wait_for(timeout=120_000)
    open_tab(page, "Map")
    page.locator("#map-btn").click()
    page.locator("#map-status").get_by_text("UMAP map").wait_for(timeout=240_000)
    page.locator(f"{PLOT}.js-plotly-plot canvas").first.wait_for(timeout=30_000)
    page.wait_for_function("() => document.querySelector('#map-plot .bx-map-plot').layout.xaxis.title.text"
                           ".startsWith('UMAP')", timeout=30_000)
    page.wait_for_timeout(500)
    return page.evaluate(GEOMETRY_JS)


def lonely_point(geo: dict, margin: float = 14) -> int:
    """A point at least ``margin`` pixels from every other and inside the plot area: safe to hover and click."""
    px, py = np.array(geo["px"]), np.array(geo["py"])
    d = np.hypot(px[:, None] - px[None], py[:, None] - py[None])
    np.fill_diagonal(d, np.inf)
    inside = (px > geo["left"] + 20) & (px < geo["left"] + geo["width"] - 20) & \
             (py > geo["top"] + 20) & (py < geo["top"] + geo["height"] - 20)
    candidates = np.flatnonzero((d.min(axis=1) > margin) & inside)
    assert len(candidates), "no isolated point to click"
    return int(candidates[0])


def table_pairs(page, elem_id: str) -> set[tuple[str, int]]:
    rows = page.locator(f"#{elem_id} [role=row]").all()[1:]
    out = set()
    for row in rows:
        cells = [c.inner_text().strip() for c in row.locator("[role=gridcell]").all()]
        out.add((cells[0], int(cells[1])))
    return out


def drag(page, path: list[tuple[float, float]]) -> None:
    page.mouse.move(*path[0])
    page.mouse.down()
    for point in path[1:]:
        page.mouse.move(*point, steps=8)
    page.mouse.up()


def test_hover_click_lasso_box_colour_and_labels(page):
    page.locator("#load-sample").click()
    page.locator("#corpus-summary").get_by_text("documents from").wait_for(timeout=60_000)
    geo = build_and_map(page, "eiffel tower paris")
    traces = page.evaluate(f"() => document.querySelector('{PLOT}').data.map((t) => t.name)")
    assert "query" in traces and "retrieved top 10" in traces and "query → hits" in traces
    assert page.evaluate(f"() => document.querySelector('{PLOT}').layout.annotations.length") > 0  # cluster labels

    # hover and click a point: its document in the hover label, its chunk in the detail panel
    i = lonely_point(geo)
    page.mouse.move(geo["px"][i], geo["py"][i])
    hover = page.locator(f"{PLOT} .hoverlayer .hovertext").first
    hover.wait_for(timeout=10_000)
    hovered = hover.text_content()
    page.mouse.click(geo["px"][i], geo["py"][i])
    page.locator("#map-detail").get_by_text(f"Chunk row {i}").wait_for(timeout=20_000)
    detail = page.locator("#map-detail").inner_text()
    document = detail.split("Chunk row")[1].split(":", 1)[1].split("·")[0].split(" — ")[0].strip()
    assert document and document in hovered

    # lasso: a hexagon around the middle of the map; the table holds exactly the chunks inside it
    page.locator("#map-plot [data-attr=dragmode][data-val=lasso]").first.click()
    geo = page.evaluate(GEOMETRY_JS)  # where the map is now
    cx, cy = geo["left"] + geo["width"] / 2, geo["top"] + geo["height"] / 2
    r = min(geo["width"], geo["height"]) * 0.3
    hexagon = [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 7)]
    drag(page, hexagon)
    page.locator("#map-selection-status").get_by_text("selected (lasso)").wait_for(timeout=20_000)
    polygon = np.array([page.evaluate(TO_DATA_JS, list(p)) for p in hexagon[:-1]])
    coords = np.c_[geo["x"], geo["y"]]
    inside = np.flatnonzero(selection.points_in_polygon(coords, polygon))
    assert len(inside) > 0
    docs = page.evaluate(f"() => document.querySelector('{PLOT}').data[0].text.map((t) => t)")
    expected = {(docs[j].split("</b>")[0].removeprefix("<b>"), int(docs[j].split("chunk ")[1].split("<br>")[0]))
                for j in inside}
    page.wait_for_function(f"() => document.querySelectorAll('#map-selection [role=row]').length === {len(inside) + 1}",
                           timeout=20_000)
    assert table_pairs(page, "map-selection") == expected
    assert f"{len(inside)}</b>" in page.locator("#map-selection-status").inner_html()

    # box select: the same check against the box reference
    page.locator("#map-plot [data-attr=dragmode][data-val=select]").first.click()
    geo = page.evaluate(GEOMETRY_JS)
    corners = [(geo["left"] + geo["width"] * 0.1, geo["top"] + geo["height"] * 0.1),
               (geo["left"] + geo["width"] * 0.55, geo["top"] + geo["height"] * 0.6)]
    drag(page, corners)
    page.locator("#map-selection-status").get_by_text("selected (box)").wait_for(timeout=20_000)
    (x0, y0), (x1, y1) = [page.evaluate(TO_DATA_JS, list(p)) for p in corners]
    inside = np.flatnonzero(selection.points_in_box(coords, (x0, x1), (y0, y1)))
    page.wait_for_function(f"() => document.querySelectorAll('#map-selection [role=row]').length === {len(inside) + 1}",
                           timeout=20_000)
    assert len(table_pairs(page, "map-selection")) == len(inside)

    # colour by cluster: the legend names the clusters by their keywords
    before = page.evaluate(f"() => document.querySelector('{PLOT}').data[0].marker.color.slice(0, 50)")
    box = page.locator("#map-colour input").first
    box.click()
    page.get_by_role("option", name="cluster").click()
    page.wait_for_function(f"() => document.querySelector('{PLOT}').layout.legend.title.text === 'cluster'",
                           timeout=30_000)
    legend = page.locator(f"{PLOT} g.legend").first.text_content()
    assert "0:" in legend
    after = page.evaluate(f"() => document.querySelector('{PLOT}').data[0].marker.color.slice(0, 50)")
    assert before != after

    # the cluster list: a click selects exactly that cluster's chunks, lists them and lights them up
    button = page.locator("#map-plot .bx-cluster").nth(1)
    cluster = int(button.get_attribute("data-cluster"))
    button.click()
    page.locator("#map-selection-status").get_by_text(f"selected (cluster {cluster})").wait_for(timeout=20_000)
    codes = page.evaluate(f"() => Array.from(document.querySelector('{PLOT}')._bxMap.cluster)")
    members = [j for j, c in enumerate(codes) if c == cluster]
    assert f"({len(members)})" in button.inner_text() and button.get_attribute("aria-pressed") == "true"
    page.wait_for_function(f"() => document.querySelectorAll('#map-selection [role=row]').length === "
                           f"{len(members) + 1}", timeout=20_000)
    expected = {(docs[j].split("</b>")[0].removeprefix("<b>"), int(docs[j].split("chunk ")[1].split("<br>")[0]))
                for j in members}
    assert table_pairs(page, "map-selection") == expected
    assert sorted(page.evaluate(f"() => Array.from(document.querySelector('{PLOT}').data[0].selectedpoints)")) \
        == members

    # find in the map: the chunks holding the words are marked, and the ones nearest to them by the model
    page.locator("#map-find textarea, #map-find input").first.fill("honey")
    page.locator("#map-find textarea, #map-find input").first.press("Enter")
    page.locator("#map-status").get_by_text("chunk(s) hold its words").wait_for(timeout=30_000)
    near = page.evaluate(f"() => document.querySelector('{PLOT}').data.filter((t) => t.name.startsWith('nearest'))"
                         ".map((t) => t.x.length)")
    assert near == [min(10, len(geo["x"]))]
    marked = page.evaluate(f"() => document.querySelector('{PLOT}').data.filter((t) => t.name.startsWith('matches'))"
                           ".map((t) => t.text.length)")
    texts = page.evaluate(f"() => document.querySelector('{PLOT}').data[0].text")
    assert marked == [sum("honey" in t.split("<br>", 1)[1].lower() for t in texts)] and marked[0] > 0

    # zoomed in, the fine cluster labels show
    coarse = page.evaluate(f"() => document.querySelector('{PLOT}').layout.annotations.map((a) => a.text)")
    page.evaluate(f"""() => {{ const gd = document.querySelector('{PLOT}'), x = gd.layout.xaxis.range,
        y = gd.layout.yaxis.range, mx = (x[0] + x[1]) / 2, my = (y[0] + y[1]) / 2, dx = (x[1] - x[0]) / 3,
        dy = (y[1] - y[0]) / 3;
        return Plotly.relayout(gd, {{'xaxis.range': [mx - dx / 2, mx + dx / 2], 'yaxis.range': [my - dy / 2, my + dy / 2]}}); }}""")
    page.wait_for_timeout(300)
    fine = page.evaluate(f"() => document.querySelector('{PLOT}').layout.annotations.map((a) => a.text)")
    assert fine != coarse

    # find similar: the clicked chunk becomes the query; the map redraws around it
    page.locator("#map-similar-btn").click()
    page.wait_for_function(f"() => document.querySelector('{PLOT}').data.some((t) => t.name === 'query' && "
                           f"t.text[0] !== 'query: eiffel tower paris')", timeout=120_000)
    assert page.locator("#query textarea").input_value().startswith(texts[i].split("<br>", 1)[1][:30])
    assert page.dialogs == [] and not [e for e in page.console_errors if "BxMap" in e or "plotly" in e.lower()]


def test_markup_in_chunks_and_ids_stays_text_on_the_map(page, tmp_path):
    evil = tmp_path / "evil.jsonl"
    records = [{"_id": f"<img src=x onerror=alert({i})>", "title": "<b>t</b>", "text": f"{PAYLOAD} lava volcano {i}",
                "team": "<img src=y onerror=alert(9)>"} for i in range(3)] + [{"_id": f"plain-{i}", "text": f"bees make honey in hives {i}"} for i in range(4)]
    evil.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    page.locator("#corpus-files input[type=file]").set_input_files([str(evil)])
    page.locator("#corpus-files").get_by_text("evil", exact=True).first.wait_for(timeout=30_000)
    page.locator("#load-files").click()
    page.locator("#corpus-summary").get_by_text("documents from").wait_for(timeout=60_000)
    page.get_by_label("none").first.check()
    geo = build_and_map(page, "<script> lava")
    evil_rows = [j for j, t in enumerate(page.evaluate(f"() => document.querySelector('{PLOT}').data[0].text"))
                 if "onerror" in t]
    j = evil_rows[0]
    page.mouse.move(geo["px"][j], geo["py"][j])
    hover = page.locator(f"{PLOT} .hoverlayer .hovertext").first
    hover.wait_for(timeout=10_000)
    assert "<img src=x onerror=alert(" in hover.text_content()  # shown as text
    page.mouse.click(geo["px"][j], geo["py"][j])
    page.locator("#map-detail").get_by_text("Chunk row").wait_for(timeout=20_000)
    assert "<script>alert(1)</script>" in page.locator("#map-detail").inner_text()
    page.locator("#map-plot [data-attr=dragmode][data-val=select]").first.click()
    geo = page.evaluate(GEOMETRY_JS)
    drag(page, [(geo["left"] + 2, geo["top"] + 2), (geo["left"] + geo["width"] - 2, geo["top"] + geo["height"] - 2)])
    page.locator("#map-selection-status").get_by_text("selected (box)").wait_for(timeout=20_000)
    page.wait_for_function("() => document.querySelectorAll('#map-selection [role=row]').length === 8", timeout=20_000)
    assert "<img src=x onerror=alert(0)>" in page.locator("#map-selection").inner_text()
    labels = page.evaluate(f"() => document.querySelector('{PLOT}').layout.annotations.map((a) => a.text)")
    assert labels and all("<" not in t for t in labels)
    assert page.locator("#map-plot .bx-cluster").count() > 0 and page.locator("#map-plot .bx-cluster img").count() == 0
    # colour by a metadata field holding markup: the legend shows it as text
    page.locator("#map-colour input").first.click()
    page.get_by_role("option", name="column: team").click()
    page.wait_for_function(f"() => document.querySelector('{PLOT}').layout.legend.title.text === 'team'",
                           timeout=30_000)
    assert "<img src=y onerror=alert(9)>" in page.locator(f"{PLOT} g.legend").first.text_content()
    assert page.locator("img[src='x'], img[src='y']").count() == 0 and page.locator("#map-plot b:text-is('t')").count() == 0
    page.wait_for_timeout(500)
    assert page.dialogs == []


def selected_rows(page, elem_id: str) -> list[int]:
    return page.evaluate(f"() => Array.from(document.querySelector('#{elem_id} .bx-map-plot').data[0].selectedpoints "
                         "|| [])")


def box_select(page, elem_id: str, fraction: float = 0.5) -> None:
    """A box over the left ``fraction`` of the map ``elem_id`` with the mouse."""
    plot = f"#{elem_id} .bx-map-plot"
    page.locator(f"#{elem_id} [data-attr=dragmode][data-val=select]").first.click()
    geo = page.evaluate(GEOMETRY_JS.replace("#map-plot .bx-map-plot", plot))
    drag(page, [(geo["left"] + 2, geo["top"] + 2),
                (geo["left"] + geo["width"] * fraction, geo["top"] + geo["height"] - 2)])


def test_two_spaces_side_by_side_link_their_selections(page, tiny_encoder):
    page.locator("#load-sample").click()
    page.locator("#corpus-summary").get_by_text("documents from").wait_for(timeout=60_000)
    page.get_by_label("none").first.check()  # whole documents: the same chunks under both tokenizers
    open_tab(page, "Model & index")
    page.locator("#build-index").click()
    page.locator("#index-status").get_by_text("Index ready").wait_for(timeout=240_000)
    box = page.locator("#model input").first
    box.click()
    box.fill(tiny_encoder)
    box.press("Enter")
    page.keyboard.press("Escape")
    first = page.locator("#index-status").inner_text()
    page.locator("#build-index").click()
    page.wait_for_function("(first) => { const t = document.querySelector('#index-status').innerText; "
                           "return t !== first && t.includes('Index ready'); }", arg=first, timeout=240_000)
    open_tab(page, "Map")
    page.locator("#map-btn").click()
    page.locator("#map-status").get_by_text("UMAP map").wait_for(timeout=240_000)
    page.get_by_text("Two embedding spaces side by side").click()
    page.locator("#map-compare-btn").click()
    page.locator("#map-spaces-numbers").get_by_text("kNN overlap@10").wait_for(timeout=240_000)
    page.locator("#map-plot-b .bx-map-plot.js-plotly-plot canvas").first.wait_for(timeout=30_000)
    assert "all-MiniLM-L6-v2" in page.locator("#map-spaces-numbers").inner_text()
    peer = page.evaluate("() => Array.from(document.querySelector('#map-plot-b .bx-map-plot')._bxMap.peer)")
    assert sorted(peer) == list(range(len(peer)))  # whole documents: every chunk in both

    box_select(page, "map-plot")  # select in A: the same chunks light up in B
    page.locator("#map-selection-status").get_by_text("selected (box)").wait_for(timeout=20_000)
    in_a = selected_rows(page, "map-plot")
    assert in_a and sorted(peer[j] for j in selected_rows(page, "map-plot-b")) == sorted(in_a)

    linked_b = json.dumps(selected_rows(page, "map-plot-b"), separators=(",", ":"))
    box_select(page, "map-plot-b", 0.4)  # and back: select in B, A follows and the table lists them
    page.wait_for_function("(first) => { const s = document.querySelector('#map-plot-b .bx-map-plot')"
                           ".data[0].selectedpoints; return s && JSON.stringify(Array.from(s)) !== first; }",
                           arg=linked_b, timeout=20_000)
    in_b = selected_rows(page, "map-plot-b")
    want = sorted(peer[j] for j in in_b)
    assert in_b and want != sorted(in_a)
    page.wait_for_function("(want) => { const s = document.querySelector('#map-plot .bx-map-plot').data[0]"
                           ".selectedpoints; return s && JSON.stringify(Array.from(s).sort((a, b) => a - b)) === want; }",
                           arg=json.dumps(want, separators=(",", ":")), timeout=20_000)  # A is restyled after B's event, asynchronously
    page.wait_for_function(f"() => document.querySelectorAll('#map-selection [role=row]').length === {len(in_b) + 1}",
                           timeout=20_000)
    assert page.dialogs == []


def download(page, locator, path):
    """Click ``locator`` (a download link, or a button that downloads) and save the file to ``path``."""
    with page.expect_download(timeout=30_000) as got:
        locator.click()
    got.value.save_as(path)
    return path


def test_png_html_and_coordinate_exports_open(page, tmp_path):
    """PNG (plotly in the page), standalone HTML (opened offline in Chromium, every request but file:// refused)
    and the coordinates CSV (the very coordinates drawn)."""
    import pandas as pd
    from PIL import Image

    page.locator("#load-sample").click()
    page.locator("#corpus-summary").get_by_text("documents from").wait_for(timeout=60_000)
    geo = build_and_map(page, "eiffel tower paris")
    png = Image.open(download(page, page.locator("#map-png-btn"), tmp_path / "map.png"))
    assert png.size == (2400, 1520) and len(set(png.convert("RGB").getdata())) > 50  # drawn, not blank

    page.locator("#export-map-btn").click()
    html = page.locator("#map-files a[download$='.html']").first
    html.wait_for(timeout=60_000)
    saved = download(page, html, tmp_path / "map.html")
    coords = pd.read_csv(download(page, page.locator("#map-files a[download$='.csv']").first, tmp_path / "xy.csv"))
    np.testing.assert_allclose(coords[["x", "y"]].to_numpy(), np.c_[geo["x"], geo["y"]], rtol=1e-6)

    offline = page.context.new_page()
    refused = []
    offline.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                  else (refused.append(route.request.url), route.abort()))
    errors = []
    offline.on("pageerror", lambda e: errors.append(str(e)))
    offline.goto(saved.as_uri())
    offline.locator("#map.js-plotly-plot canvas").first.wait_for(timeout=30_000)
    assert offline.evaluate("() => document.getElementById('map').data[0].x.length") == len(geo["x"])
    assert "query" in offline.evaluate("() => document.getElementById('map').data.map((t) => t.name)")
    assert offline.locator(".bx-cluster").count() > 0 and refused == [] and errors == []
    offline.close()
