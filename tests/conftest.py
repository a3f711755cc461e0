"""Fixtures shared by the project's own tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and Path(p).exists()), None)
# Headless, and quiet: without the background-networking flags Chromium keeps
# calling home, which a closed network refuses.
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (``executable_path``: nothing is downloaded)."""
    if CHROMIUM is None:
        pytest.skip("no Chromium found: install Debian's browser with `apt-get install chromium` "
                    "(the browser tests drive /usr/bin/chromium and never download one)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python API is missing: `pip install -e '.[test]'`")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
