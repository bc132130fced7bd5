"""A newcomer's first decision, timed in a real browser (Playwright + Debian's Chromium): from a fresh page with
only the sample corpus, judge 10 queries in the Search tab by keyboard (10 results each), run the Workbench's
template experiment of 4 configurations on those judgments, and download the winner's decision.

Prints the wall time of each phase, the machine's load, and the experiment's status line. The times are the
app's (a person reading the results adds their own); they say whether the loop fits in "a few minutes".

    python bench/newcomer.py [--reranker DIR]   # default: the demo's reranker, else none
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

QUERIES = ["When was the Eiffel Tower built?", "How do plants turn sunlight into sugar?",
           "I forgot my password, how do I get a new one?", "Who discovered the first antibiotic?",
           "how does a search engine rank documents by term frequency", "how do bees make honey",
           "what is bitcoin", "why is the sky blue", "how do vaccines work", "what causes earthquakes"]
GRADES = "3210012301"
STATUS_JS = ("[...document.querySelectorAll('textarea')].map(t => t.value)"
             ".filter(v => v.includes('Best on nDCG@10'))")  # ten key presses per query, as a person would vary them


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reranker", help="the demo's reranker (a local directory); default: the app's choice")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores")
    times: dict[str, float] = {}
    try:
        verdict, saved = walk(args.reranker, times)
    finally:
        for phase, seconds in times.items():
            print(f"{phase:45s} {seconds:7.1f} s")
        print(f"{'in all':45s} {sum(times.values()):7.1f} s")
    print(f"experiment: {verdict.strip()}")
    print(f"decision.yaml: {saved} bytes; load average after: {os.getloadavg()[0]:.2f}")


def walk(reranker: str | None, times: dict[str, float]) -> tuple[str, int]:
    """The walk-through; fills ``times`` phase by phase. -> (the experiment's status line, decision.yaml's size)."""
    from playwright.sync_api import sync_playwright

    from browser_support import CHROMIUM, CHROMIUM_ARGS, served_app

    with served_app(demo_reranker=reranker) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("tab", name="Corpus").wait_for(timeout=60_000)
        start = time.perf_counter()
        page.locator("#demo-btn").click()  # the sample corpus, the default model, the index, a first search
        page.locator("#search-summary").get_by_text("Configuration").wait_for(timeout=600_000)
        times["demo: corpus, model, index, first search"] = time.perf_counter() - start
        status = page.locator("#search-grading-status")
        start = time.perf_counter()
        for query in QUERIES:
            page.locator("#query textarea").fill(query)
            page.locator("#query textarea").press("Enter")
            status.get_by_text(f"“{query}”").wait_for(timeout=120_000)
            table = "#after" if page.locator("#after [role=row]").count() > 1 else "#before"
            page.locator(f"{table} [role=row]").nth(1).locator("[role=gridcell]").nth(1).click()
            status.get_by_text("Selected:").wait_for(timeout=30_000)
            status.click()  # focus off the query box: the keys grade
            for i, key in enumerate(GRADES):
                page.keyboard.press(key)
                status.get_by_text(f"{i + 1} judged").first.wait_for(timeout=30_000)
                if " 0 unjudged" in status.inner_text():
                    break
        times["judge 10 queries x 10 results by key"] = time.perf_counter() - start
        start = time.perf_counter()
        page.get_by_role("tab", name="Workbench", exact=True).click()
        page.get_by_text("Experiment", exact=True).click()
        page.get_by_role("button", name="Template for the current index").click()
        page.wait_for_timeout(500)
        page.get_by_role("button", name="Run the experiment on my judgments").click()
        page.wait_for_function(f"() => {STATUS_JS}.length > 0", timeout=900_000)
        times["experiment of 4 configurations"] = time.perf_counter() - start
        verdict = page.evaluate(f"() => {STATUS_JS}[0]")
        start = time.perf_counter()
        link = page.locator('#experiment-files tr:has(td[aria-label="decision.yaml"]) a').first
        link.wait_for(timeout=30_000)
        with page.expect_download() as download:
            link.click()
        size = Path(download.value.path()).stat().st_size
        times["download the winner's decision.yaml"] = time.perf_counter() - start
        browser.close()
    return verdict, size


if __name__ == "__main__":
    main()
