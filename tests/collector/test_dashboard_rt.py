"""The Request Tracker connector on the dashboard and in /metrics, on both stores, as a
browser and a Prometheus get them: the backlog card, the RT column, a ticket's RT link and
its changes not in RT; nothing of RT when the connector is not configured."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from collector.db import create_db_engine, write_transaction
from collector.people import service as people
from collector.policy import build_policy
from collector.rt.models import CHANGES, DEAD, DONE, LINKS, set_enabled
from collector.settings import RequestTrackerSettings, Settings
from collector.tickets import service
from tests.collector.conftest import AppClient, FakeClock, add_user
from tests.collector.test_dashboard_tickets import Element, parse
from tests.collector.test_tickets_api import START, _open

PASSWORD = "correct horse battery"
RT_URL = "https://rt.example.net/rt"
RT_NUMBER = 4711
# A failure text as RT or a proxy might give it: markup that must reach the page as text.
HOSTILE_ERROR = "POST /REST/2.0/ticket: RT answered 503: <b>Service Unavailable</b> & 'so'"
GIVEN_UP = "PUT /REST/2.0/ticket/77: RT answered 400: Queue 'Nope' not found"


def rt_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"request_tracker": RequestTrackerSettings(
        url=RT_URL, user="watchkeeper", token="not-used-here")})


@dataclass
class Desk:
    client: AppClient
    clock: FakeClock
    settings: Settings
    tickets: dict[str, int]
    browsers: dict[str, AppClient] = field(default_factory=dict)

    def get(self, path: str, who: str = "nick", **headers: str) -> Any:
        if who not in self.browsers:
            self.browsers[who] = self.client.browser(who, PASSWORD)
        answer = self.browsers[who].get(path, headers={"Accept": "text/html", **headers})
        assert answer.status_code == 200, answer.text
        return answer

    def page(self, path: str, who: str = "nick") -> Element:
        return parse(self.get(path, who).text)

    def sql(self, *statements: Any) -> None:
        engine = create_db_engine(self.settings)
        try:
            with write_transaction(engine) as conn:
                for statement in statements:
                    conn.execute(statement)
        finally:
            engine.dispose()


def make_desk(settings: Settings, enroll_host: Any, start_collector: Any, *,
              rt: bool) -> Desk:
    """acme: disk (opened, then a reply), mysql (opened), load (opened, in RT as #4711),
    all with the connector on when ``rt``; users nick (noc), tess (tse), acme-ops (viewer)."""
    if rt:
        settings = rt_settings(settings)
    clock = FakeClock(START)
    client = start_collector(settings, clock, role=None)
    enroll_host(settings, "db1.acme.example", "acme")
    for name, role, customer in (("nick", "noc", None), ("tess", "tse", None),
                                 ("acme-ops", "viewer", "acme")):
        add_user(settings, name, role, customer=customer)
    engine = create_db_engine(settings)
    tickets = {}
    try:
        if rt:
            set_enabled(engine, True, now=START - 4000)
        with write_transaction(engine) as conn:
            for name in people_names():
                people.set_password(conn, name, PASSWORD)
            for check, priority, age in (("disk", "P2", 3000), ("mysql", "P3", 2000),
                                         ("load", "P1", 1000)):
                tickets[check] = _open(conn, settings, customer="acme",
                                       host="db1.acme.example", check=check,
                                       priority=priority, at=START - age)
            service.reply(conn, tickets["disk"], text="We are on it.", actor="tess",
                          policy=build_policy(settings), settings=settings, now=START - 2500)
    finally:
        engine.dispose()
    return Desk(client, clock, settings, tickets)


def people_names() -> tuple[str, ...]:
    return ("nick", "tess", "acme-ops")


@pytest.fixture
def desk(settings, enroll_host, start_collector) -> Desk:
    """The connector configured; disk's opening failed twice (RT answered 503) and waits,
    its reply waits behind it; mysql's opening was given up; load is RT #4711."""
    desk = make_desk(settings, enroll_host, start_collector, rt=True)
    c = CHANGES.c
    desk.sql(
        update(CHANGES).where(c.ticket_id == desk.tickets["disk"], c.attempts == 0,
                              c.id == _first_change(desk, "disk"))
        .values(attempts=2, last_error=HOSTILE_ERROR, next_attempt_at=START + 90),
        update(CHANGES).where(c.ticket_id == desk.tickets["mysql"])
        .values(state=DEAD, attempts=10, last_error=GIVEN_UP),
        update(CHANGES).where(c.ticket_id == desk.tickets["load"])
        .values(state=DONE, done_at=START - 900),
        LINKS.insert().values(ticket_id=desk.tickets["load"], rt_id=RT_NUMBER,
                              created_at=START - 900, seen_txn=0),
    )
    return desk


def _first_change(desk: Desk, ticket: str) -> int:
    engine = create_db_engine(desk.settings)
    try:
        with engine.connect() as conn:
            found = conn.execute(CHANGES.select().where(
                CHANGES.c.ticket_id == desk.tickets[ticket]).order_by(CHANGES.c.id)).first()
    finally:
        engine.dispose()
    assert found is not None, f"no RT change queued for {ticket}: is the connector on?"
    return int(found.id)


def words(element: Element | str) -> str:
    """Text as a browser shows it: the parser puts blanks around inner elements, a
    browser puts none inside parentheses."""
    text = element if isinstance(element, str) else element.text
    return text.replace("( ", "(").replace(" )", ")")


def metrics(desk: Desk) -> dict[str, float]:
    text = desk.client.get("/metrics").text
    return {s.name: s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name.startswith("watchkeeper_rt_")}


# ----------------------------------------------------------------------------- overview


def test_the_card_says_what_waits_what_fails_and_what_was_given_up(desk):
    answer = desk.get("/")
    card = parse(answer.text).one("article", data_rt_card=True)
    # disk: the opening and the reply wait (one ticket), since the opening at START - 3000
    assert words(card.one(data_rt_state="waiting")) == (
        "2 changes waiting for RT (1 ticket), oldest 50m 00s")
    assert card.one(data_rt_failing=True).text == "1"
    assert card.one(data_rt_error=True).text == HOSTILE_ERROR
    assert card.one(data_rt_dead=True).text == "1"
    assert "rt-trouble" in card.attrs["class"]
    # the error is on the page as text, its markup escaped
    assert "<b>Service" not in answer.text
    assert "&lt;b&gt;Service Unavailable&lt;/b&gt; &amp;" in answer.text


def test_the_card_and_metrics_say_the_same(desk):
    assert metrics(desk) == {
        "watchkeeper_rt_backlog": 2, "watchkeeper_rt_backlog_tickets": 1,
        "watchkeeper_rt_failing": 1, "watchkeeper_rt_dead": 1,
        "watchkeeper_rt_oldest_pending_seconds": 3000,
    }
    desk.clock.advance(60)
    assert metrics(desk)["watchkeeper_rt_oldest_pending_seconds"] == 3060
    assert parse(desk.get("/").text).one(data_rt_oldest=True).text == "51m 00s"


def test_the_card_is_in_step_once_nothing_waits(desk):
    desk.sql(update(CHANGES).where(CHANGES.c.state == "pending")
             .values(state=DONE, done_at=START, last_error=None))
    card = desk.page("/").one("article", data_rt_card=True)
    assert card.one(data_rt_state="in-step").text == "✓ in step"
    assert not card.all(data_rt_error=True)
    assert card.one(data_rt_failing=True).text == "0"
    assert card.one(data_rt_dead=True).text == "1"  # a given-up change stays counted
    assert metrics(desk)["watchkeeper_rt_backlog"] == 0
    assert metrics(desk)["watchkeeper_rt_oldest_pending_seconds"] == 0


def test_the_card_refreshes_live(desk):
    fragment = desk.get("/", **{"X-Live": "1"}).text
    assert "<html" not in fragment
    assert parse(fragment).one("article", data_rt_card=True).one(
        data_rt_backlog=True).text == "2"
    desk.sql(update(CHANGES).where(CHANGES.c.ticket_id == desk.tickets["disk"])
             .values(state=DONE, done_at=START, last_error=None))
    fragment = desk.get("/", **{"X-Live": "1"}).text
    assert parse(fragment).one(data_rt_state="in-step")


def test_a_viewer_gets_no_card(desk):
    # The backlog counts every customer's tickets and names their errors.
    page = desk.get("/", "acme-ops").text
    assert "data-rt-card" not in page and "Request Tracker" not in page


# ------------------------------------------------------------------------------ tickets


def test_the_list_links_each_ticket_in_rt(desk):
    page = desk.page("/tickets")
    header = [th.text for th in page.all("th")]
    assert header[-1] == "RT"
    load = page.one("tr", data_ticket=str(desk.tickets["load"])).one(data_rt=True)
    link = load.one("a")
    assert link.attrs["href"] == f"{RT_URL}/Ticket/Display.html?id={RT_NUMBER}"
    assert link.text == f"RT #{RT_NUMBER}"
    for name in ("disk", "mysql"):
        cell = page.one("tr", data_ticket=str(desk.tickets[name])).one(data_rt=True)
        assert not cell.all("a") and cell.text == "–"


def test_a_ticket_shows_its_rt_link_and_its_changes_not_in_rt(desk):
    disk = desk.page(f"/tickets/{desk.tickets['disk']}", "tess")
    assert disk.one("dd", data_rt=True).text == "not in RT yet"
    rows = disk.one("table", **{"class": "rt-changes"}).all("tr", data_rt_change=True)
    cells = [[words(td) for td in row.all("td")] for row in rows]
    # The opening failed twice and is tried again in 90 s; the reply waits behind it.
    assert cells == [
        ["opened", "waiting", "2", "08:10:00 UTC", "09:01:30 UTC (in 1m 30s)", HOSTILE_ERROR],
        ["reply", "waiting", "0", "08:18:20 UTC", "now", ""],
    ]
    mysql = desk.page(f"/tickets/{desk.tickets['mysql']}")
    [row] = mysql.all("tr", data_rt_change=True)
    assert row.attrs["data-rt-state"] == "dead"
    assert [td.text for td in row.all("td")][:3] == ["opened", "given up", "10"]
    assert [td.text for td in row.all("td")][4:] == ["never", GIVEN_UP]

    load = desk.page(f"/tickets/{desk.tickets['load']}")
    link = load.one("dd", data_rt=True).one("a")
    assert link.attrs["href"] == f"{RT_URL}/Ticket/Display.html?id={RT_NUMBER}"
    assert not load.all("tr", data_rt_change=True)
    assert "No change of this ticket waits for RT." in load.text


def test_a_viewer_sees_the_rt_number_but_not_the_connector_s_work(desk):
    page = desk.page(f"/tickets/{desk.tickets['disk']}", "acme-ops")
    assert page.one("dd", data_rt=True).text == "not in RT yet"
    assert not page.all("table", **{"class": "rt-changes"})
    assert HOSTILE_ERROR not in page.text


def test_a_ticket_s_live_refresh_keeps_its_rt_changes(desk):
    path = f"/tickets/{desk.tickets['disk']}"
    fragment = parse(desk.get(path, "tess", **{"X-Live": "1"}).text)
    assert len(fragment.all("tr", data_rt_change=True)) == 2


# ------------------------------------------------------------------------ not configured


def test_without_the_connector_nothing_of_rt_is_shown(settings, enroll_host, start_collector):
    desk = make_desk(settings, enroll_host, start_collector, rt=False)
    for path in ("/", "/tickets", f"/tickets/{desk.tickets['disk']}"):
        for who in ("nick", "tess"):
            text = desk.get(path, who).text
            assert not re.search(r"data-rt|Request Tracker|>RT<", text), (path, who)
    # nothing was queued, and the gauges say so (they are there all the same)
    assert metrics(desk) == {
        "watchkeeper_rt_backlog": 0, "watchkeeper_rt_backlog_tickets": 0,
        "watchkeeper_rt_failing": 0, "watchkeeper_rt_dead": 0,
        "watchkeeper_rt_oldest_pending_seconds": 0,
    }
