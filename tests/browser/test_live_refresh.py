"""The overview in a real Chromium, fed by a real ``watchkeeper-agent run`` pushing to a real
collector process on loopback.

What a NOC engineer would notice:

- the login form lets a user in (and a wrong password does not);
- a check that turns CRITICAL while the overview is open shows up on it within 5 seconds,
  without the page reloading;
- the "Updated" time moves on with every refresh;
- when the collector stops answering, the page says it lost contact, and the sign goes
  once the collector is back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.dashboard import (
    REFRESH,
    PasswordApi,
    add_user,
    dashboard_collector,
    log_in,
    screenshot,
    wait_for_attribute_above,
)
from tests.e2e.ticketing import Api, TicketCollector, agent_config, start_agent, wait_for
from tests.support.processes import Proc, kill_tree_on_exit

pytestmark = pytest.mark.e2e

HOST = "db1.acme.example"
USER, PASSWORD = "nora", "night shift 24/7"


@dataclass
class Scene:
    collector: TicketCollector
    agent: Proc
    backups: Path
    api: Api

    def logs(self) -> str:
        return f"collector:\n{self.collector.log_tail()}\nagent:\n{self.agent.tail(20)}"

    def backup_status(self) -> int | None:
        answer = self.api.get(f"/api/v1/hosts/{HOST}")
        if answer.status_code != 200:
            return None
        found = [c["status"] for c in answer.json()["checks"] if c["check"] == "backup"]
        return found[0] if found else None


def backup_check(directory: Path) -> str:
    """A backup check run every second on ``directory``: OK while a dump is there,
    CRITICAL once none is."""
    return (
        '[checks.backup]\ntype = "backup"\ninterval = "1s"\njitter = "0s"\n\n'
        f'[[checks.backup.sets]]\nname = "nightly"\ndirectory = "{directory}"\n'
        'pattern = "db-*.sql"\nsettle = "0s"\nverify = false\n'
    )


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    root = tmp_path_factory.mktemp("live")
    collector = dashboard_collector(root)
    token = collector.enroll("acme", HOST)
    add_user(collector, USER, "noc", PASSWORD)
    api = PasswordApi(collector.url, USER, PASSWORD)
    backups = root / "backups"
    backups.mkdir()
    (backups / "db-20261126.sql").write_text("-- dump\nCREATE TABLE t (id int);\n")
    collector.start()
    config = agent_config(root / "agent", host=HOST, url=collector.url, token=token,
                          checks=backup_check(backups))
    agent = start_agent(config)
    scene = Scene(collector, agent, backups, api)
    try:
        wait_for(lambda: scene.backup_status() == 0, 30, "the agent's first OK backup result",
                 tail=scene.logs)
        yield scene
    finally:
        agent.stop()
        collector.stop()
        kill_tree_on_exit([agent] + ([collector.proc] if collector.proc else []))


def test_a_user_logs_in_through_the_login_form(scene: Scene, page: Page) -> None:
    url = scene.collector.url
    page.goto(f"{url}/")
    assert page.url == f"{url}/login?next=%2F"
    page.fill("input[name=name]", USER)
    page.fill("input[name=password]", "not the password")
    page.click("form[action='/login'] button[type=submit]")
    expect(page.locator(".login .error")).to_contain_text("wrong user name or password")
    assert page.locator("nav.main-nav").count() == 0

    log_in(page, url, USER, PASSWORD)
    expect(page.locator("header .user")).to_contain_text(USER)
    expect(page.locator("header .user")).to_have_attribute("data-role", "noc")
    expect(page.locator("nav.main-nav a[aria-current=page]")).to_have_text("Overview")
    screenshot(page, "login-overview")


def test_a_check_turning_critical_appears_on_the_open_page_without_a_reload(
        scene: Scene, page: Page) -> None:
    log_in(page, scene.collector.url, USER, PASSWORD)
    row = page.locator(f'tr[data-problem][data-customer="acme"][data-host="{HOST}"]'
                       '[data-check="backup"][data-target="nightly"]'
                       '[data-status="CRITICAL"]')
    expect(row).to_have_count(0)
    loads: list[str] = []
    page.on("load", lambda: loads.append(page.url))
    page.evaluate("window.watchkeeperTestMarker = 'still the same page'")

    for dump in scene.backups.glob("db-*.sql"):
        dump.unlink()
    turned = time.monotonic()
    expect(row).to_be_visible(timeout=5_000)
    seen_after = time.monotonic() - turned
    # Told by text and shape, not by colour alone.
    expect(row.locator(".status")).to_contain_text("CRITICAL")
    expect(row.locator(".status .shape")).to_have_text("■")
    assert page.evaluate("window.watchkeeperTestMarker") == "still the same page"
    assert loads == [], f"the page reloaded: {loads}"
    assert seen_after < 5.0
    screenshot(page, "critical-appears-live")


def test_the_updated_time_moves_on_with_each_refresh(scene: Scene, page: Page) -> None:
    log_in(page, scene.collector.url, USER, PASSWORD)
    updated = page.locator("#last-updated")
    first = float(updated.get_attribute("data-at") or 0)
    first_text = updated.inner_text()
    assert first_text.startswith("Updated ")
    wait_for_attribute_above(page, "#last-updated", "data-at", first + 1.5, REFRESH * 5)
    assert updated.inner_text() != first_text
    expect(page.locator("#lost-contact")).to_be_hidden()
    screenshot(page, "updated-time")


def test_the_page_says_it_lost_contact_while_the_collector_is_stopped(
        scene: Scene, page: Page) -> None:
    log_in(page, scene.collector.url, USER, PASSWORD)
    banner = page.locator("#lost-contact")
    expect(banner).to_be_hidden()
    page.evaluate("window.watchkeeperTestMarker = 'kept through the outage'")

    scene.collector.stop()
    try:
        expect(banner).to_be_visible(timeout=int(REFRESH * 5_000) + 5_000)
        expect(banner).to_contain_text("Lost contact with the collector")
        expect(banner).to_have_attribute("role", "alert")  # a screen reader says it too
        expect(banner.locator(".lost-text")).to_contain_text("No answer since")
        stalled = float(page.locator("#last-updated").get_attribute("data-at") or 0)
        screenshot(page, "lost-contact")
    finally:
        scene.collector.start()

    expect(banner).to_be_hidden(timeout=int(REFRESH * 5_000) + 5_000)
    wait_for_attribute_above(page, "#last-updated", "data-at", stalled, REFRESH * 5)
    assert page.evaluate("window.watchkeeperTestMarker") == "kept through the outage"
    wait_for(lambda: scene.agent.alive() and scene.backup_status() is not None, 30,
             "the agent pushing again after the restart", tail=scene.logs)
