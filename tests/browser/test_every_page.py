"""Every page of the dashboard in a real Chromium: it refreshes itself in place without an
error, never shows the lost-contact sign while the collector answers, and the browser
reports nothing wrong (no script error, no resource refused by the Content-Security-Policy,
which forbids inline scripts and styles)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from playwright.sync_api import ConsoleMessage, Page, Response, expect

from tests.browser.dashboard import (
    REFRESH,
    PasswordApi,
    add_user,
    dashboard_collector,
    log_in,
    open_ticket,
    wait_for_attribute_above,
)
from tests.e2e.ticketing import Host, TicketCollector
from tests.support.processes import kill_tree_on_exit

pytestmark = pytest.mark.e2e

HOST = "sw1.acme.example"
TSE, PASSWORD = "tomas", "every page, every refresh"


@dataclass
class Scene:
    collector: TicketCollector
    ticket_id: int


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    collector = dashboard_collector(tmp_path_factory.mktemp("pages"))
    host = Host(collector.url, HOST, collector.enroll("acme", HOST))
    add_user(collector, TSE, "tse", PASSWORD)
    api = PasswordApi(collector.url, TSE, PASSWORD)
    collector.start()
    try:
        ticket_id = open_ticket(collector, api, host)
        # A check with metric values and evidence, as the host page shows them.
        load = host.result(check="load", type="load", target="-", status=0,
                           at=collector.clock.now(), summary="load 0.42 on 8 CPUs",
                           details={"cpus": 8, "per_cpu": [0.1, 0.6]})
        load["metrics"] = [
            {"name": "load1", "value": 0.42, "unit": "", "warn": 8, "crit": 16},
            {"name": "uptime", "value": 1234567.0, "unit": "s"}]
        host.push([load])
        now = collector.clock.now()
        window = api.post("/api/v1/maintenance", {
            "customer": "acme", "host": HOST, "reason": "switch firmware upgrade",
            "starts_at": datetime.fromtimestamp(now + 3600, UTC).isoformat(),
            "ends_at": datetime.fromtimestamp(now + 7200, UTC).isoformat()})
        assert window.status_code in (200, 201), window.text
        yield Scene(collector, ticket_id)
    finally:
        collector.stop()
        kill_tree_on_exit([collector.proc] if collector.proc else [])


def test_every_page_refreshes_in_place_without_an_error(scene: Scene, page: Page) -> None:
    url = scene.collector.url
    complaints: list[str] = []

    def console(message: ConsoleMessage) -> None:
        # A failed resource is reported by its response below, with its URL.
        if message.type in ("error", "warning") and not message.text.startswith(
                "Failed to load resource"):
            complaints.append(f"{page.url}: console {message.type}: {message.text}")

    def response(answer: Response) -> None:
        if answer.status >= 400:
            complaints.append(f"{page.url}: {answer.status} for {answer.url}")

    page.on("console", console)
    page.on("response", response)
    page.on("pageerror", lambda error: complaints.append(f"{page.url}: {error}"))
    log_in(page, url, TSE, PASSWORD)
    pages = ["/", "/problems", "/hosts", f"/hosts/{HOST}", "/tickets",
             f"/tickets/{scene.ticket_id}", "/maintenance"]
    for path in pages:
        answer = page.goto(f"{url}{path}")
        assert answer is not None and answer.status == 200, (path, answer and answer.status)
        loaded = float(page.locator("#last-updated").get_attribute("data-at") or "nan")
        # A refresh answered: the live part came back and was put in place.
        wait_for_attribute_above(page, "#last-updated", "data-at", loaded + 0.5 * REFRESH,
                                 REFRESH * 6)
        expect(page.locator("#lost-contact")).to_be_hidden()
        expect(page.locator("#live")).not_to_be_empty()
        assert page.url == f"{url}{path}", f"{path} went to {page.url}"
    assert complaints == [], "\n".join(complaints)
