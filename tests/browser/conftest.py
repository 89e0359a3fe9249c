"""A real headless Chromium for the whole browser suite, a fresh profile and page for each
test (saved as ``FAILED-<test>.png`` when the test fails); where the screenshots went is
printed at the end of the run."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.browser.dashboard import TAKEN, launch_chromium, new_page, screenshot, screenshot_dir


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """The screenshot directory, without the failures of an earlier run."""
    for stale in screenshot_dir().glob("FAILED-*.png"):
        stale.unlink()
    return screenshot_dir()


@pytest.fixture(scope="module")
def browser(screenshots: Path) -> Iterator[Browser]:
    """Debian's Chromium, headless, shared by a module's tests (each test opens its own
    profile). Per module, so that Playwright's event loop is gone before tests of other
    packages that run their own."""
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in a profile of its own: no cookies, no login."""
    context, page = new_page(browser)
    try:
        yield page
        report = getattr(request.node, "call_report", None)
        if report is not None and report.failed:
            screenshot(page, f"FAILED-{request.node.name}")
    finally:
        context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport,
                                                               pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.call_report = report  # type: ignore[attr-defined]
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TAKEN:
        terminalreporter.write_line(
            f"dashboard screenshots ({len(TAKEN)}): {screenshot_dir()}")
