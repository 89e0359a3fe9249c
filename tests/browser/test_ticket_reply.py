"""A ticket worked from its page in a real Chromium: a support engineer's reply stops the
first-response countdown.

The ticket is opened as a host would cause it (two CRITICAL disk results pushed to a real
collector process); the collector's clock is then run 90 minutes ahead, so the P2 ticket's
first response is due in about half an hour and its countdown visibly ticks every second.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from tests.browser.dashboard import (
    REFRESH,
    PasswordApi,
    add_user,
    dashboard_collector,
    log_in,
    open_ticket,
    screenshot,
)
from tests.e2e.ticketing import Api, Host, TicketCollector, stays
from tests.support.processes import kill_tree_on_exit

pytestmark = pytest.mark.e2e

HOST = "web1.acme.example"
TSE, PASSWORD = "tess", "first line, second line"


@dataclass
class Scene:
    collector: TicketCollector
    api: Api
    ticket_id: int


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    collector = dashboard_collector(tmp_path_factory.mktemp("ticket"))
    host = Host(collector.url, HOST, collector.enroll("acme", HOST))
    add_user(collector, TSE, "tse", PASSWORD)
    api = PasswordApi(collector.url, TSE, PASSWORD)
    collector.start()
    try:
        ticket_id = open_ticket(collector, api, host)
        collector.clock.set(90 * 60)
        yield Scene(collector, api, ticket_id)
    finally:
        collector.stop()
        kill_tree_on_exit([collector.proc] if collector.proc else [])


def test_a_reply_from_the_ticket_page_stops_the_first_response_countdown(
        scene: Scene, page: Page) -> None:
    ticket = f"/tickets/{scene.ticket_id}"
    log_in(page, scene.collector.url, TSE, PASSWORD, then=ticket)
    root = page.locator(f'section#ticket[data-ticket="{scene.ticket_id}"]')
    expect(root).to_be_visible()
    expect(root.locator("[data-state]").first).to_have_text("new")
    clock = root.locator('[data-clock="first-response"]')
    expect(clock).to_have_count(1)
    assert clock.get_attribute("data-state") in ("running", "soon"), clock.get_attribute(
        "data-state")
    due = float(clock.get_attribute("data-due") or "nan")
    assert 25 * 60 < due - scene.collector.clock.now() < 31 * 60, due
    # The countdown runs: its text changes from one second to the next.
    counting = clock.inner_text()
    expect(clock).not_to_have_text(counting, timeout=3_000)

    words = "We are freeing space on /srv now; next update within the hour."
    form = page.locator('form[data-action="reply"]')
    form.locator('[name="text"]').fill(words)
    with page.expect_navigation():
        form.locator('[type="submit"]').click()

    expect(page.locator(".flash")).to_contain_text(re.compile("reply", re.IGNORECASE))
    root = page.locator(f'section#ticket[data-ticket="{scene.ticket_id}"]')
    expect(root.locator("[data-state]").first).to_have_text("open")
    clock = root.locator('[data-clock="first-response"]')
    expect(clock).to_have_attribute("data-state", "stopped")
    assert clock.get_attribute("data-due") is None
    expect(page.locator(f'section#ticket[data-ticket="{scene.ticket_id}"]')).to_contain_text(
        words)
    # The answer starts the next-update clock.
    expect(root.locator('[data-clock="next-update"]')).to_have_attribute(
        "data-state", re.compile("^(running|soon)$"))
    stopped = clock.inner_text()
    # Through two refreshes of the page and the countdown's ticks, nothing moves any more.
    stays(lambda: clock.inner_text() == stopped
          and clock.get_attribute("data-state") == "stopped",
          2.5 * REFRESH + 1, "the first-response clock running on after the reply")
    answered = scene.api.ticket(scene.ticket_id)
    assert answered["first_response_at"], answered
    screenshot(page, "ticket-replied")

