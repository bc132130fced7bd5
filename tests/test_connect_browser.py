"""The Connect tab in Debian's Chromium (Playwright): connect to a folder of Parquet shards, search it, grade a
result by click, download the judgments and map the index, all against the shards' own content."""
from __future__ import annotations

import os

import pytest

from browser_support import CHROMIUM, open_page, served_app
from bge_explorer.data.judging import JudgmentStore
from conftest import write_parquet_index

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: bash scripts/install-chromium.sh"),
]

pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def shards(tmp_path_factory, tiny_encoder):
    folder = tmp_path_factory.mktemp("browser-shards")
    session, _ = write_parquet_index(folder, tiny_encoder, n=30)
    return folder, session


def test_connect_search_grade_and_download_judgments(shards):
    folder, session = shards
    query = " ".join(session.corpus.documents["text"].iloc[3].split()[:4])  # words of one stored document
    with served_app() as url, open_page(url) as page:
        page.get_by_role("tab", name="Connect to an index").click()
        assert "Connect to an index first" in page.locator("#connect-empty").inner_text()
        assert not page.locator("#connect-before").is_visible()  # no table before there are results
        page.locator("#connect-backend input").click()
        page.get_by_role("option", name="parquet", exact=True).click()
        page.locator("#connect-path textarea, #connect-path input").first.fill(str(folder))
        page.locator("#connect-btn").click()
        page.locator("#connect-status").get_by_text("embedded with").wait_for(timeout=60_000)
        page.locator("#connect-empty").get_by_text("type a query").wait_for(timeout=10_000)

        page.locator("#connect-query textarea, #connect-query input").first.fill(query)
        page.locator("#connect-search-btn").click()
        page.locator("#connect-before [role=gridcell]").first.wait_for(timeout=60_000)
        assert not page.locator("#connect-empty").is_visible() and not page.locator("#connect-after").is_visible()
        first = page.locator("#connect-before [role=row]").nth(1)
        document = first.locator("[role=gridcell]").nth(1).inner_text().strip()
        first.locator("[role=gridcell]").nth(1).click()
        page.locator("#connect-grading").get_by_text("Selected: retrieved #1").wait_for(timeout=20_000)
        page.locator("#connect-grade-2").click()
        page.locator("#connect-grading").get_by_text("1 of the 10 documents shown judged").wait_for(timeout=20_000)
        assert "2 relevant" in page.locator("#connect-before [role=row]").nth(1).inner_text()

        page.locator("#connect-judgments-btn").click()
        link = page.locator("#connect-judgments-file a[download$='.zip']").first
        link.wait_for(timeout=30_000)
        with page.expect_download(timeout=30_000) as download:
            link.click()
        saved = download.value.path()
        back = JudgmentStore()
        back.load_file(saved, "judged.zip")
        assert back.grades(query) == {document: 2}

        # the map of the index: every stored chunk here (fewer than the sample size), the query and its hits
        page.get_by_text("Map of this index (a sample)").click()
        page.locator("#connect-map-btn").click()
        page.locator("#connect-map-status").get_by_text("UMAP of all").wait_for(timeout=240_000)
        plot = "#connect-map .bx-map-plot"
        page.locator(f"{plot}.js-plotly-plot canvas").first.wait_for(timeout=30_000)
        traces = page.evaluate(f"() => document.querySelector('{plot}').data.map((t) => t.name)")
        assert "query" in traces and "retrieved top 10" in traces
        assert page.evaluate(f"() => document.querySelector('{plot}').data[0].x.length") == len(session.chunks.table)
        assert page.console_errors == []
