"""Fixtures shared by the project's own tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from jupyter_page import SCREENSHOTS, LabPage

from streamcourse import browser as chromium

_saved: list[Path] = []


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (``executable_path``: nothing is downloaded)."""
    reason = chromium.missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**chromium.launch_options())
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def learner(browser: Any) -> Iterator[Any]:
    """A learner's browser profile for a module's pages (one cache: JupyterLab's scripts load once)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context
    context.close()


@pytest.fixture(scope="module")
def tab(lab: Any, learner: Any) -> Iterator[Any]:
    """JupyterLab (the module's own ``lab`` fixture) loaded once in a tab of the learner's browser."""
    page = LabPage(lab, learner)
    yield page
    page.close()


@pytest.fixture(scope="session")
def screenshot() -> Callable[[Any, str], Path]:
    """``screenshot(locator_or_page, name)`` saves ``SCREENSHOTS/name.png`` and returns its path."""

    def save(target: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        if hasattr(
            target, "scroll_into_view_if_needed"
        ):  # a part of a page: JupyterLab lays cells out as they come into view
            target.scroll_into_view_if_needed()
            target.page.wait_for_timeout(300)
        target.screenshot(path=str(path))
        _saved.append(path)
        return path

    return save


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _saved:
        terminalreporter.write_sep("-", f"{len(_saved)} screenshots in {SCREENSHOTS}")
        for path in _saved:
            terminalreporter.write_line(f"{path.name} ({path.stat().st_size // 1024} KiB)")


class _StopAfterFirstCheck:
    """A pytest plugin that breaks the run off after one check, as a crash inside pytest would."""

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown":
            raise SystemError("AST constructor recursion depth mismatch (simulated)")


@pytest.fixture
def break_off_check_runs(monkeypatch: pytest.MonkeyPatch) -> Callable[[ModuleType], None]:
    """Make ``module.run_checks`` stop every check run after its first check."""

    def patch(module: ModuleType) -> None:
        run_checks = module.run_checks

        def stopping(*args: Any, plugins: Any = (), **kwargs: Any) -> Any:
            return run_checks(*args, plugins=[*plugins, _StopAfterFirstCheck()], **kwargs)

        monkeypatch.setattr(module, "run_checks", stopping)

    return patch
