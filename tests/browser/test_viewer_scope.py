"""A customer's viewer in a real Chromium sees its own customer and nothing of another:
not on the overview's cards, the problems, the hosts or the tickets, and another
customer's host or ticket page is the same 404 page as one that does not exist."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

from tests.browser.dashboard import (
    PasswordApi,
    add_user,
    attributes,
    dashboard_collector,
    log_in,
    open_ticket,
    screenshot,
)
from tests.e2e.ticketing import Host, TicketCollector, disk_result, wait_for
from tests.support.processes import kill_tree_on_exit

pytestmark = pytest.mark.e2e

OWN, OTHER = "acme", "globex"
OWN_HOSTS = ("app1.acme.example", "app2.acme.example")
OTHER_HOST = "app1.globex.example"
VIEWER, NOC, PASSWORD = "vera", "nils", "see what is mine"
WARNING = 1


@dataclass
class Scene:
    collector: TicketCollector
    own_ticket: int
    other_ticket: int


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    collector = dashboard_collector(tmp_path_factory.mktemp("viewer"))
    hosts = {fqdn: Host(collector.url, fqdn, collector.enroll(OWN, fqdn)) for fqdn in OWN_HOSTS}
    hosts[OTHER_HOST] = Host(collector.url, OTHER_HOST, collector.enroll(OTHER, OTHER_HOST))
    add_user(collector, VIEWER, "viewer", PASSWORD, customer=OWN)
    add_user(collector, NOC, "noc", PASSWORD)
    api = PasswordApi(collector.url, NOC, PASSWORD)
    collector.start()
    try:
        own_ticket = open_ticket(collector, api, hosts[OWN_HOSTS[0]])
        other_ticket = open_ticket(collector, api, hosts[OTHER_HOST])
        # A WARNING on the viewer's second host, OK on the other: every host has a state.
        second = hosts[OWN_HOSTS[1]]
        second.push([disk_result(second, WARNING, collector.clock.now())])
        wait_for(lambda: api.get(f"/api/v1/hosts/{OWN_HOSTS[1]}").status_code == 200, 10,
                 "the second host's result", tail=collector.log_tail)
        yield Scene(collector, own_ticket, other_ticket)
    finally:
        collector.stop()
        kill_tree_on_exit([collector.proc] if collector.proc else [])


def test_a_viewer_sees_only_its_own_customer_on_every_list(scene: Scene, page: Page) -> None:
    url = scene.collector.url
    log_in(page, url, VIEWER, PASSWORD)
    expect(page.locator(f'[data-customer-card="{OWN}"]')).to_be_visible()
    assert attributes(page, "[data-customer-card]", "data-customer-card") == [OWN]
    card = page.locator(f'[data-customer-card="{OWN}"]')
    expect(card.locator('[data-count="CRITICAL"]')).to_have_text("1")
    expect(card.locator('[data-count="WARNING"]')).to_have_text("1")
    expect(page.locator(f'tr[data-problem][data-host="{OWN_HOSTS[0]}"]')).to_be_visible()
    assert set(attributes(page, "tr[data-problem]", "data-customer")) == {OWN}
    screenshot(page, "viewer-overview")

    page.goto(f"{url}/problems")
    expect(page.locator(f'tr[data-problem][data-host="{OWN_HOSTS[1]}"]')).to_be_visible()
    assert set(attributes(page, "tr[data-problem]", "data-customer")) == {OWN}
    assert OTHER_HOST not in attributes(page, "tr[data-problem]", "data-host")

    page.goto(f"{url}/hosts")
    expect(page.locator(f'tr[data-host-row="{OWN_HOSTS[0]}"]')).to_be_visible()
    assert sorted(attributes(page, "tr[data-host-row]", "data-host-row")) == sorted(OWN_HOSTS)
    assert OTHER not in page.locator("#live").inner_text()

    page.goto(f"{url}/tickets")
    expect(page.locator(f'tr[data-ticket="{scene.own_ticket}"]')).to_be_visible()
    assert attributes(page, "tr[data-ticket]", "data-ticket") == [str(scene.own_ticket)]
    assert OTHER not in page.locator("#live").inner_text()


def test_another_customers_host_or_ticket_is_the_not_found_page(
        scene: Scene, page: Page) -> None:
    url = scene.collector.url
    log_in(page, url, VIEWER, PASSWORD)
    # Its own things open ...
    for own in (f"/hosts/{OWN_HOSTS[0]}", f"/tickets/{scene.own_ticket}"):
        answer = page.goto(f"{url}{own}")
        assert answer is not None and answer.status == 200, own
    # ... another customer's answer like things that do not exist, in the same words.
    for other, missing in ((f"/hosts/{OTHER_HOST}", "/hosts/nowhere.globex.example"),
                           (f"/tickets/{scene.other_ticket}", "/tickets/999999")):
        said = []
        for path in (other, missing):
            answer = page.goto(f"{url}{path}")
            assert answer is not None and answer.status == 404, (path, answer and answer.status)
            expect(page.locator("h1")).to_have_text("404")
            text = page.locator(".error-page .error").inner_text()
            said.append(text.replace(path.rsplit("/", 1)[1], "<name>"))
            if path == other and path.startswith("/tickets/"):
                screenshot(page, "viewer-other-customers-ticket")
        assert said[0] == said[1], f"{other} and {missing} answer differently: {said}"
    # Asking for the other customer by name tells no more than asking for one that is not.
    said = []
    for name in (OTHER, "nosuch"):
        answer = page.goto(f"{url}/problems?customer={name}")
        assert answer is not None and answer.status == 422, (name, answer and answer.status)
        said.append(page.locator(".error-page .error").inner_text().replace(name, "<name>"))
    assert said[0] == said[1], said

def test_a_noc_user_sees_both_customers(scene: Scene, page: Page) -> None:
    """The other side of the viewer's limits: the same collector shows everything to
    the NOC, so the viewer's pages above were not empty by accident."""
    url = scene.collector.url
    log_in(page, url, NOC, PASSWORD)
    expect(page.locator(f'[data-customer-card="{OTHER}"]')).to_be_visible()
    cards = attributes(page, "[data-customer-card]", "data-customer-card")
    assert sorted(cards) == sorted((OWN, OTHER)), cards
    assert set(attributes(page, "tr[data-problem]", "data-customer")) == {OWN, OTHER}
    page.goto(f"{url}/tickets/{scene.other_ticket}")
    expect(page.locator(f'section#ticket[data-ticket="{scene.other_ticket}"]')).to_be_visible()
    screenshot(page, "noc-other-customers-ticket")
