"""What the dashboard's browser tests share: Debian's Chromium driven by Playwright, a real
collector process with dashboard users, a login through the real form, and full-page
screenshots in one directory.

The browser is ``/usr/bin/chromium`` (``WATCHKEEPER_CHROMIUM`` names another binary); a
missing one fails the tests, it never skips them. Screenshots go to ``build/screenshots/``
under the repository, or to ``WATCHKEEPER_SCREENSHOTS``.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, Playwright

from tests.e2e.ticketing import (
    Api,
    ClockFile,
    Host,
    TicketCollector,
    collector_config,
    disk_result,
    only,
    wait_for,
)
from tests.support.processes import collector_command

REPOSITORY = Path(__file__).resolve().parents[2]
CHROMIUM_ENV = "WATCHKEEPER_CHROMIUM"
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS_ENV = "WATCHKEEPER_SCREENSHOTS"
# Pages ask for fresh data every second here (the default is 2 s), so a test waits less.
REFRESH = 1.0
WIDTH = 1400

CRITICAL = 2
# The screenshots this run took, for the summary at its end.
TAKEN: list[Path] = []


def chromium_path() -> str:
    """The Chromium binary the tests drive; an AssertionError that says how to get it."""
    path = os.environ.get(CHROMIUM_ENV) or CHROMIUM
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise AssertionError(
            f"no Chromium at {path}: install Debian's chromium (apt-get install chromium "
            f"chromium-driver) or point {CHROMIUM_ENV} at a Chromium binary")
    return path


def launch_chromium(playwright: Playwright) -> Browser:
    """A headless Chromium from the system, never one downloaded by Playwright."""
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True)


def screenshot_dir() -> Path:
    """Where the screenshots go (made if missing)."""
    configured = os.environ.get(SCREENSHOTS_ENV)
    directory = Path(configured) if configured else REPOSITORY / "build" / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory.resolve()


def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot of ``page`` as ``<name>.png`` in the screenshot directory."""
    path = screenshot_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    TAKEN.append(path)
    return path


def new_page(browser: Browser, width: int = WIDTH) -> tuple[BrowserContext, Page]:
    """A fresh browser profile (no cookies) and its page, ``width`` pixels wide."""
    context = browser.new_context(viewport={"width": width, "height": 900},
                                  locale="en-GB", timezone_id="UTC")
    page = context.new_page()
    page.set_default_timeout(10_000)
    return context, page


# ----------------------------------------------------------------------------- collector


def dashboard_config(extra: str = "") -> str:
    """The ticket engine's fast settings plus a page refresh of ``REFRESH`` seconds."""
    return collector_config(smtp=None, extra=f'[dashboard]\nrefresh = "{REFRESH}s"\n\n{extra}')


def dashboard_collector(workdir: Path, *, extra: str = "") -> TicketCollector:
    """A collector process (SQLite store) whose clock runs ahead through ``workdir``'s
    offset file; not started."""
    workdir.mkdir(parents=True, exist_ok=True)
    clock = ClockFile(workdir / "clock-offset")
    return TicketCollector(workdir / "collector", clock=clock, config=dashboard_config(extra))


def add_user(collector: TicketCollector, name: str, role: str, password: str,
             customer: str | None = None) -> None:
    """A dashboard user, added as an administrator does (``user add --password-stdin``)."""
    args = ["user", "add", name, "--role", role, "--password-stdin"]
    if customer is not None:
        args += ["--customer", customer]
    done = subprocess.run(collector_command(*args, "--config", str(collector.config)),
                          input=password + "\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"user add {name}: {done.stderr}"


class PasswordApi(Api):
    """The collector's API as a dashboard user, with its password (HTTP Basic): no token
    to create first."""

    def __init__(self, url: str, name: str, password: str) -> None:
        super().__init__(url, base64.b64encode(f"{name}:{password}".encode()).decode())

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Basic {self.token}"}


def log_in(page: Page, url: str, name: str, password: str, *, then: str = "/") -> None:
    """Log in through the login form, as a person does; lands on ``then``."""
    page.goto(f"{url}{then}")
    assert page.url.startswith(f"{url}/login"), f"no login asked for: {page.url}"
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("form[action='/login'] button[type=submit]")
    assert page.url == f"{url}{then}", f"after the login the browser is at {page.url}"


def open_ticket(collector: TicketCollector, api: Api, host: Host, *, check_target: str = "/srv",
                at: Callable[[], float] | None = None) -> int:
    """Two CRITICAL disk results from ``host`` (a hard problem): the ticket's id."""
    now = at or collector.clock.now
    for _ in range(2):
        host.push([disk_result(host, CRITICAL, now(), target=check_target)])
        time.sleep(0.2)
    wait_for(lambda: _tickets(api, host.fqdn, check_target), 30,
             f"the ticket for {host.fqdn} {check_target}", tail=collector.log_tail)
    ticket = only(_tickets(api, host.fqdn, check_target), f"ticket of {host.fqdn}")
    return int(ticket["id"])


def _tickets(api: Api, fqdn: str, target: str) -> list[dict[str, Any]]:
    return [t for t in api.tickets_for(fqdn, "disk") if t.get("target", target) == target]


def attributes(page: Page, selector: str, name: str) -> list[str]:
    """The values of attribute ``name`` on every element matching ``selector``."""
    values: Iterable[Any] = page.eval_on_selector_all(
        selector, f"els => els.map(e => e.getAttribute({name!r}))")
    return [str(v) for v in values]


def wait_for_attribute_above(page: Page, selector: str, name: str, above: float,
                             timeout: float) -> float:
    """Wait until the number in attribute ``name`` of ``selector`` exceeds ``above``
    (polled from here: the pages' CSP forbids the eval behind ``wait_for_function``)."""
    seen: list[float] = []

    def above_now() -> bool:
        value = page.locator(selector).get_attribute(name, timeout=1_000)
        seen.append(float(value) if value else float("nan"))
        return seen[-1] > above

    try:
        wait_for(above_now, timeout, f"{selector} {name} above {above:.3f}")
    except AssertionError as exc:
        lost = page.locator("#lost-contact")
        why = lost.get_attribute("data-why") if lost.count() and lost.is_visible() else None
        raise AssertionError(f"{str(exc).strip()}; last seen {seen[-1:]}"
                             + (f"; the page lost contact: {why}" if why else "")) from None
    return seen[-1]
