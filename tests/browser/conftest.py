"""A real headless Chromium for the whole browser suite; where its screenshots went is
printed at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.browser.dashboard import TAKEN, launch_chromium, screenshot_dir


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, shared by every test (each test opens its own profile)."""
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TAKEN:
        terminalreporter.write_line(
            f"dashboard screenshots ({len(TAKEN)}): {screenshot_dir()}")
