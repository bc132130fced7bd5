"""The app in a real browser: Debian's Chromium driven by Playwright (never `playwright install`).

Flow: upload a file, build the index with the default model (offline: the packaged MiniLM, and the page
says so), search with a custom local reranker, see both rankings and the map. A corpus with HTML and
script payloads renders as text and runs nothing. Screenshots go to test-artifacts/ (the README's come from
tests/test_browser_views.py).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from browser_support import CHROMIUM, open_page, served_as_deployed

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
PAYLOAD = "<script>alert(1)</script> and <img src=x onerror=alert(1)> and ${alert(1)}"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: apt-get install -y chromium"),
]

pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def app_url():
    with served_as_deployed() as url:
        yield url


@pytest.fixture()
def page(app_url):
    ARTIFACTS.mkdir(exist_ok=True)
    with open_page(app_url, 1000) as page:
        yield page


def shot(page, name: str, readme: bool = False) -> None:
    if readme:  # toasts (the offline notice) would cover the page; the notice stays in the loaded-model panel
        for close in page.locator("[data-testid=toast-body] .toast-close").all():
            close.click()
        page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def upload(page, paths: list[str]) -> None:
    page.locator("#corpus-files input[type=file]").set_input_files(paths)
    for path in paths:  # the file list shows each name as stem + suffix
        page.locator("#corpus-files").get_by_text(Path(path).stem, exact=True).first.wait_for(timeout=30_000)
    page.locator("#load-files").click()
    page.locator("#corpus-summary").get_by_text("documents from").wait_for(timeout=60_000)


def set_dropdown(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input").first
    box.click()
    box.fill(value)
    box.press("Enter")
    page.keyboard.press("Escape")


def build_index(page) -> None:
    open_tab(page, "Model & index")
    page.locator("#build-index").click()
    page.locator("#index-status").get_by_text("Index ready").wait_for(timeout=180_000)


def search(page, query: str) -> None:
    open_tab(page, "Search")
    page.locator("#query textarea").fill(query)
    page.locator("#search-btn").click()
    page.locator("#search-summary").get_by_text("Query embedded").wait_for(timeout=120_000)


def test_upload_index_search_rerank_and_map(page, sample_corpus, tiny_reranker):
    upload(page, [sample_corpus])
    documents = page.locator("#documents")
    documents.locator("[role=gridcell]", has_text="Eiffel Tower").first.wait_for()
    assert page.locator("#corpus-summary").inner_text().startswith("26 documents")
    shot(page, "1-corpus", readme=True)

    build_index(page)
    loaded = page.locator("#loaded-model").inner_text()
    assert "all-MiniLM-L6-v2" in loaded and "Offline fallback" in loaded  # no Hub here: the page says so
    open_tab(page, "Corpus")
    page.locator("#chunk-counts").get_by_text("chunks").wait_for()
    open_tab(page, "Model & index")
    shot(page, "2-index", readme=True)

    open_tab(page, "Search")
    set_dropdown(page, "reranker", tiny_reranker)
    search(page, "when was the eiffel tower built")
    before, after = page.locator("#before"), page.locator("#after")
    assert before.locator("[role=row]").count() > 5 and after.locator("[role=row]").count() > 5
    assert "eiffel-tower" in before.inner_text()
    assert "movement" in after.inner_text() and "logit" in after.inner_text()
    assert before.locator("mark").count() > 0  # query words highlighted
    assert "rescored the top" in page.locator("#search-summary").inner_text()
    shot(page, "3-search", readme=True)

    open_tab(page, "Map")
    page.locator("#map-btn").click()
    page.locator("#map-status").get_by_text("UMAP map").wait_for(timeout=240_000)
    plot = page.locator("#map-plot .js-plotly-plot")
    plot.wait_for(timeout=30_000)
    assert plot.locator("canvas").count() > 0  # WebGL scatter drawn
    legend = page.locator("#map-plot g.legend").first.text_content()
    assert "query" in legend and "retrieved top" in legend and "reranked top" in legend
    page.wait_for_timeout(500)
    shot(page, "4-map", readme=True)
    assert page.dialogs == []


def test_html_and_script_in_a_corpus_render_as_text(page, tmp_path):
    evil = tmp_path / "evil.jsonl"
    evil.write_text(
        '{"_id": "<b>bold-id</b>", "title": "<img src=x onerror=alert(2)>", "text": "%s volcano lava"}\n'
        '{"_id": "plain", "title": "Plain", "text": "Bees make honey in hives."}\n' % PAYLOAD.replace('"', '\\"'))
    broken = tmp_path / "o'brien.csv"
    broken.write_text("title,body\nx,y\n")
    upload(page, [str(evil), str(broken)])
    documents = page.locator("#documents")
    documents.locator("[role=gridcell]", has_text="<b>bold-id</b>").first.wait_for()
    assert "<script>alert(1)</script>" in documents.inner_text()
    assert "o'brien.csv" in page.locator("#corpus-problems textarea").input_value()
    toast = page.get_by_test_id("toast-body").first
    toast.wait_for(timeout=10_000)
    assert "o'brien.csv" in toast.inner_text()  # escaped for HTML, shown as the plain name

    open_tab(page, "Corpus")
    page.get_by_label("none").first.check()  # one chunk per document
    build_index(page)
    search(page, "<script> volcano lava")
    before = page.locator("#before")
    before.locator("[role=gridcell]", has_text="alert(1)").first.wait_for()
    cells = [c.inner_text() for c in before.locator("[role=gridcell]").all()]
    assert any(PAYLOAD in " ".join(c.split()) for c in cells), cells
    detail = page.locator("#chunk-detail")
    assert "<b>bold-id</b>" in detail.inner_text() and "<img src=x onerror=alert(2)>" in detail.inner_text()
    shot(page, "payload-as-text")

    # nothing became markup, nothing ran
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("b:text-is('bold-id')").count() == 0
    assert page.evaluate("() => [...document.scripts].filter(s => s.textContent.includes('alert(')).length") == 0
    page.wait_for_timeout(1000)
    assert page.dialogs == []
    assert not [e for e in page.console_errors if re.search(r"alert|onerror|Content Security", e)]


def test_hybrid_search_and_why_this_match_render(page, tmp_path, sample_corpus, tiny_m3):
    """Hybrid mode with a BGE-M3 model (the tiny one): per-mode columns, then "Why this match" for a picked result:
    the lexical-weights table, the ColBERT heat map and the BM25 terms render, and markup in tokens stays text."""
    evil = tmp_path / "evil.jsonl"
    evil.write_text('{"_id": "<b>evil</b>", "title": "", "text": "<script>alert(3)</script> eiffel tower < paris"}\n')
    upload(page, [sample_corpus, str(evil)])
    open_tab(page, "Corpus")
    page.get_by_label("none").first.check()  # one chunk per document
    open_tab(page, "Model & index")
    set_dropdown(page, "model", tiny_m3)
    page.get_by_label("m3", exact=True).first.check()  # model class
    page.locator("#build-index").click()
    page.locator("#index-status").get_by_text("Index ready").wait_for(timeout=180_000)

    open_tab(page, "Search")
    page.get_by_text("Retrieval mode: dense, sparse, ColBERT, BM25, hybrid").click()
    page.locator("#mode").get_by_label("hybrid").check()
    page.locator("#retrieval-info").get_by_text("Switching it on").wait_for(timeout=30_000)  # ColBERT's estimate
    search(page, "eiffel tower < paris")
    before = page.locator("#before")
    before.get_by_text("fused rank").first.wait_for(timeout=30_000)
    assert "sparse rank" in before.inner_text() and "dense rank" in before.inner_text()

    before.locator("[role=row]", has_text="<b>evil</b>").locator("[role=gridcell]").nth(1).click()
    page.locator("#explain-summary").get_by_text("Why").wait_for(timeout=60_000)
    summary = page.locator("#explain-summary").inner_text()
    assert "<b>evil</b>" in summary and "sparse) score" in summary and "ColBERT score" in summary
    lexical = page.locator("#explain-lexical")
    lexical.locator("[role=gridcell]", has_text="both").first.wait_for(timeout=30_000)
    heat = page.locator("#explain-colbert .js-plotly-plot")
    heat.wait_for(timeout=30_000)
    ticks = " ".join(page.locator("#explain-colbert g.xtick text").all_text_contents())
    assert "<" in ticks  # the "<" token, drawn as a character
    page.locator("#explain-bm25 [role=gridcell]", has_text="eiffel").first.wait_for(timeout=30_000)
    shot(page, "5-why-this-match")
    assert page.locator("b:text-is('evil')").count() == 0
    assert page.evaluate("() => [...document.scripts].filter(s => s.textContent.includes('alert(3)')).length") == 0
    page.wait_for_timeout(500)
    assert page.dialogs == []
