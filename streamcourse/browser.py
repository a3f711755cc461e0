"""Where the system's Chromium is, and how to start it headless: one place for tests, checks and lessons.

The course never downloads a browser: Playwright drives Debian's ``chromium``
(``executable_path``). Where there is none — a learner's Binder kernel, say — every
user of this module says so with :func:`missing` instead of failing, and the browser
parts are skipped WITH that reason, never silently.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM", "ARGS", "missing", "launch_options"]

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and Path(p).exists()), None)

# Headless, and quiet: without the background-networking flags Chromium keeps
# calling home, which a closed network refuses.
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def missing() -> str | None:
    """Why no browser can run here, in words that say how to get one; None when one can."""
    if CHROMIUM is None:
        return (
            "no Chromium found: install Debian's browser with `apt-get install chromium` "
            "(the browser parts drive /usr/bin/chromium and never download one)"
        )
    if importlib.util.find_spec("playwright") is None:
        return "Playwright's Python API is missing: `pip install -e '.[test]'` installs it"
    return None


def launch_options(*extra_args: str) -> dict[str, Any]:
    """Keyword arguments for ``playwright.chromium.launch(...)`` (the sync and the async API alike)."""
    if CHROMIUM is None:
        raise RuntimeError(missing())
    return {"executable_path": CHROMIUM, "args": [*ARGS, *extra_args]}
