"""Fixtures shared by the project's own tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from streamcourse import browser as chromium


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
        monkeypatch.setattr(module, "run_checks", lambda *a: run_checks(*a, plugins=[_StopAfterFirstCheck()]))

    return patch
