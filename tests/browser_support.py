"""What the browser tests share: Debian's Chromium and its flags, the app served in-process, a page's error log."""
from __future__ import annotations

import contextlib
from typing import Iterator

from conftest import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextlib.contextmanager
def served_app(**create_kwargs) -> Iterator[str]:
    """``app.create_app(preload=False, warm_umap=False, **create_kwargs)`` served on a free port with the app's
    launch options; yields its URL, closes it after."""
    import app as app_module

    demo = app_module.create_app(preload=False, warm_umap=False, **create_kwargs)
    demo.queue(default_concurrency_limit=2)
    port = free_port()
    demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=port,
                **app_module.launch_options())
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@contextlib.contextmanager
def served_as_deployed() -> Iterator[str]:
    """:func:`served_app` with UMAP fitted in the background after a build, as a deployed app does."""
    import os

    os.environ["BGE_EXPLORER_AUTO_UMAP"] = "1"
    try:
        with served_app() as url:
            yield url
    finally:
        os.environ["BGE_EXPLORER_AUTO_UMAP"] = "0"


@contextlib.contextmanager
def open_page(url: str, height: int = 1000) -> Iterator:
    """Chromium on ``url`` at 1400 x ``height``, its dialogs dismissed into ``page.dialogs`` and its errors
    recorded (:func:`record_errors`), once the Corpus tab is drawn."""
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": height})
        page = context.new_page()
        page.dialogs = []
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        record_errors(page)
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("tab", name="Corpus").wait_for(timeout=60_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


def record_errors(page) -> None:
    """Collect the page's console errors and uncaught exceptions in ``page.console_errors``."""
    page.console_errors = []
    page.on("console", lambda m: page.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.console_errors.append(str(e)))
