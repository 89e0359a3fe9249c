"""The dashboard's tickets pages and a support engineer's forms, on both stores, as a browser
gets them: logged in through /login, forms posted with the session's CSRF token, the API
asked afterwards what really changed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

import pytest

from collector.db import create_db_engine, write_transaction
from collector.people import service as people
from collector.policy import build_policy
from collector.settings import DashboardSettings
from collector.sla.clock import ClockKind
from collector.tickets import clocks
from collector.tickets.models import TicketBreach, TicketEscalation
from tests.collector.conftest import AppClient
from tests.collector.test_tickets_api import START, Desk, _open, desk  # noqa: F401

PASSWORD = "correct horse battery"
NAMES = {"admin": "root", "tse": "tess", "noc": "nick", "acme": "acme-ops",
         "globex": "globex-ops"}


# ------------------------------------------------------------------ reading a page's HTML


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    content: list[Element | str] = field(default_factory=list)

    @property
    def children(self) -> list[Element]:
        return [part for part in self.content if isinstance(part, Element)]

    @property
    def text(self) -> str:
        """The text inside, blanks folded as a browser shows them."""
        parts = (part if isinstance(part, str) else f" {part.text} " for part in self.content)
        return " ".join("".join(parts).split())

    def walk(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            yield from child.walk()

    def all(self, tag: str | None = None, **attrs: str | bool) -> list[Element]:
        """Elements below (and including) this one with the tag and attributes given
        (``True``: the attribute is there; ``data_x`` stands for ``data-x``)."""
        wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
        return [e for e in self.walk()
                if (tag is None or e.tag == tag) and all(
                    name in e.attrs if value is True else e.attrs.get(name) == value
                    for name, value in wanted.items())]

    def one(self, tag: str | None = None, **attrs: str | bool) -> Element:
        found = self.all(tag, **attrs)
        assert len(found) == 1, f"{len(found)} <{tag or '*'} {attrs}> on the page"
        return found[0]


VOID = {"br", "hr", "img", "input", "link", "meta", "area", "base", "col", "source", "wbr"}


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].content.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].content.append(data)


def parse(html: str) -> Element:
    tree = _Tree()
    tree.feed(html)
    return tree.root


# ------------------------------------------------------------------------------ fixtures


@dataclass
class Web:
    desk: Desk
    browsers: dict[str, AppClient] = field(default_factory=dict)

    def browser(self, who: str) -> AppClient:
        if who not in self.browsers:
            self.browsers[who] = self.desk.client.browser(NAMES[who], PASSWORD)
        return self.browsers[who]

    def page(self, path: str, who: str = "tse", status: int = 200, **params: Any) -> Element:
        answer = self.browser(who).get(path, params=params or None,
                                       headers={"Accept": "text/html"})
        assert answer.status_code == status, answer.text
        return parse(answer.text)

    def number(self, name: str) -> int:
        return self.desk.tickets[name]

    def post(self, name: str, action: str, who: str = "tse", with_token: bool = True,
             **fields: str) -> Any:
        """Post a ticket page's form as the browser does (the CSRF token from the page)."""
        number = self.number(name)
        if with_token:
            page = self.page(f"/tickets/{number}", who)
            fields["csrf"] = page.one("form", data_action="reply").one(
                "input", name="csrf").attrs["value"]
        return self.browser(who).post(f"/tickets/{number}/{action}", data=fields,
                                      headers={"Accept": "text/html"})

    def api(self, name: str) -> Any:
        return self.desk.get(f"/api/v1/tickets/{self.number(name)}")


@pytest.fixture
def web(desk: Desk) -> Web:  # noqa: F811
    """The tickets API's desk, its users able to log in to the dashboard."""
    engine = create_db_engine(desk.settings)
    try:
        with write_transaction(engine) as conn:
            for name in NAMES.values():
                people.set_password(conn, name, PASSWORD)
    finally:
        engine.dispose()
    return Web(desk)


def row_ids(page: Element) -> list[int]:
    return [int(row.attrs["data-ticket"]) for row in page.all("tr", data_ticket=True)]


def at(iso_text: str) -> float:
    return datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------------------------- list


def test_the_list_is_in_the_api_s_order_with_clocks_and_escalations(web):
    engine = create_db_engine(web.desk.settings)
    try:
        with write_transaction(engine) as conn:
            conn.execute(TicketEscalation.__table__.insert().values(
                ticket_id=web.number("acme-load"), role="tsm", step="P1/1h", due_at=START,
                decided_at=START))
            conn.execute(TicketBreach.__table__.insert().values(
                ticket_id=web.number("acme-load"), kind="first_response", due_at=START - 100,
                priority="P1", noticed_at=START - 50))
    finally:
        engine.dispose()
    page = web.page("/tickets", "noc")
    api = [t["id"] for t in web.desk.get("/api/v1/tickets")]
    assert row_ids(page) == api == [web.number(n) for n in (
        "acme-load", "globex-disk", "acme-disk", "acme-mysql")]
    load = page.one("tr", data_ticket=str(web.number("acme-load")))
    assert [a.attrs["href"] for a in load.all("a")] == [
        f"/tickets/{web.number('acme-load')}", "/hosts/db1.acme.example"]
    assert load.one("span", data_priority="P1").text == "▮▮▮▮ P1"
    assert "db1.acme.example" in load.text and "load" in load.text
    first = load.one(data_clock="first-response")
    assert first.attrs["data-state"] in ("running", "soon", "breached")
    due = web.desk.get(f"/api/v1/tickets/{web.number('acme-load')}")["first_response_due"]
    assert float(first.attrs["data-due"]) == pytest.approx(at(due))
    assert load.one(data_clock="next-update").attrs["data-state"] == "none"
    assert load.one(data_escalation="tsm").text.startswith("tsm 09:00:00 UTC")
    assert not page.all(data_escalation="tsm")[1:]
    assert load.one("span", **{"class": "breach"}).attrs["data-breached"] == "first_response"
    assert [row.all("span", **{"class": "breach"}) for row in page.all("tr", data_ticket=True)
            ].count([]) == 3


@pytest.mark.parametrize(("params", "expected"), [
    ({"customer": "globex"}, ["globex-disk"]),
    ({"priority": "P3"}, ["acme-disk", "acme-mysql"]),
    ({"state": "resolved"}, ["acme-old"]),
    ({"state": "all", "customer": "acme"},
     ["acme-load", "acme-disk", "acme-mysql", "acme-old"]),
    ({"host": "GLOBEX"}, ["globex-disk"]),
    ({"host": "db1.acme", "priority": "P1"}, ["acme-load"]),
    ({"host": "%"}, []),
])
def test_the_list_filters(web, params, expected):
    page = web.page("/tickets", "noc", **params)
    assert row_ids(page) == [web.number(n) for n in expected]


@pytest.mark.parametrize(("params", "named"), [
    ({"state": "closed"}, "state"), ({"priority": "S1"}, "priority"),
    ({"customer": "initech"}, "customer"), ({"page": "0"}, "page"),
])
def test_a_bad_filter_is_a_page_naming_it(web, params, named):
    page = web.page("/tickets", "noc", status=422, **params)
    assert page.one("p", **{"class": "error"}).text.startswith(f"{named} ")


def test_the_list_is_paged(web):
    engine = create_db_engine(web.desk.settings)
    try:  # fifteen more P4 tickets, oldest first: 19 active tickets in all, 10 a page
        with write_transaction(engine) as conn:
            for n in range(15):
                _open(conn, web.desk.settings, customer="acme", host="db1.acme.example",
                      check=f"extra{n:02d}", priority="P4", at=START - 100 + n)
    finally:
        engine.dispose()
    runtime = web.desk.client.app.state.runtime  # ten rows a page, as [dashboard] page_size
    runtime.settings = runtime.settings.model_copy(
        update={"dashboard": DashboardSettings(page_size=10)})
    everything = [t["id"] for t in web.desk.get("/api/v1/tickets", limit=100)]
    first, second = web.page("/tickets", "noc"), web.page("/tickets", "noc", page="2")
    assert row_ids(first) + row_ids(second) == everything and len(everything) == 19
    assert "rows 11–19 of 19 · page 2 of 2" in second.one("nav", **{"class": "pager"}).text
    assert first.one("a", rel="next").attrs["href"] == "/tickets?page=2"
    assert row_ids(web.page("/tickets", "noc", page="9")) == row_ids(second)  # the last
    live = web.browser("noc").get("/tickets?page=2", headers={"X-Live": "1"})
    assert "<html" not in live.text and 'name="host"' not in live.text  # no filter form
    assert row_ids(parse(live.text)) == row_ids(second)


def test_a_viewer_sees_its_customer_s_tickets_only(web):
    page = web.page("/tickets", "acme", state="all")
    assert row_ids(page) == [web.number(n) for n in (
        "acme-load", "acme-disk", "acme-mysql", "acme-old")]
    assert not page.all("select", name="customer")
    web.page("/tickets", "acme", status=422, customer="globex")
    other = web.browser("acme").get(f"/tickets/{web.number('globex-disk')}",
                                    headers={"Accept": "text/html"})
    missing = web.browser("acme").get("/tickets/999999", headers={"Accept": "text/html"})
    assert other.status_code == missing.status_code == 404
    assert f"no ticket #{web.number('globex-disk')}" in other.text


# ---------------------------------------------------------------------------- the ticket


def test_the_ticket_page_shows_facts_clocks_history_and_notices_to_staff(web):
    page = web.page(f"/tickets/{web.number('acme-disk')}", "noc")
    ticket = page.one("section", id="ticket")
    assert ticket.attrs["data-ticket"] == str(web.number("acme-disk"))
    assert ticket.all(data_state=True)[0].text == "new"
    assert ticket.one("a", href="/hosts/db1.acme.example").text == "db1.acme.example"
    assert ticket.one(data_clock="first-response").attrs["data-state"] == "running"
    assert [e.attrs["data-event"] for e in ticket.all("li", data_event=True)] == ["opened"]
    assert ticket.one("table", **{"class": "notices"})
    assert not page.all("form", data_action=True)  # the NOC reads, does not act


def test_a_tse_s_reply_is_the_first_response_and_stops_its_clock(web):
    web.desk.clock.advance(600)
    page = web.page(f"/tickets/{web.number('acme-disk')}")
    assert page.one(data_clock="first-response").attrs["data-state"] == "running"
    form = page.one("form", data_action="reply")
    assert form.attrs["action"] == f"/tickets/{web.number('acme-disk')}/reply"
    assert form.one("textarea", name="text")
    sent = web.post("acme-disk", "reply", text="We are looking at /var.")
    assert sent.status_code == 303
    assert sent.headers["location"] == f"/tickets/{web.number('acme-disk')}?done=reply"
    api = web.api("acme-disk")
    assert api["first_response_at"] == "2026-11-25T09:10:00.000Z" and api["state"] == "open"
    assert api["events"][-1]["actor"] == "tess"
    after = web.page(sent.headers["location"])
    assert after.one("p", **{"class": "flash"}).text == "Reply sent to the customer."
    first = after.one(data_clock="first-response")
    assert first.attrs["data-state"] == "stopped" and "data-due" not in first.attrs
    assert first.text == "✓ done 09:10:00 UTC"
    assert after.one(data_clock="next-update").attrs["data-state"] == "running"
    assert after.all(data_state=True)[0].text == "open"
    listed = web.page("/tickets").one("tr", data_ticket=str(web.number("acme-disk")))
    assert listed.one(data_clock="first-response").attrs["data-state"] == "stopped"


def test_a_comment_is_internal(web):
    assert web.post("acme-disk", "comment", text="customer's RAID is old").status_code == 303
    staff = web.page(f"/tickets/{web.number('acme-disk')}?done=comment", "noc")
    assert "customer's RAID is old" in staff.one("ol", **{"class": "history"}).text
    assert staff.one("p", **{"class": "flash"}).text == "Internal comment added."
    seen = web.page(f"/tickets/{web.number('acme-disk')}", "acme")
    assert "RAID" not in seen.text and not seen.all("table", **{"class": "notices"})
    assert [e["kind"] for e in web.desk.get(f"/api/v1/tickets/{web.number('acme-disk')}",
                                            "acme")["events"]] == []


def test_a_priority_change_needs_a_reason_restarts_the_clock_and_is_audited(web):
    policy = build_policy(web.desk.settings)
    web.desk.clock.advance(900)
    changed = web.post("acme-mysql", "priority", priority="P1", reason="all billing stopped")
    assert changed.status_code == 303
    api = web.api("acme-mysql")
    expected = clocks.due(kind=ClockKind.FIRST_RESPONSE, start=web.desk.clock.now,
                          priority="P1", calendar=policy.calendar_for("acme"), sla=policy.sla)
    assert api["priority"] == "P1" and at(api["first_response_due"]) == pytest.approx(expected)
    entry = web.desk.get("/api/v1/audit", kind="priority_changed")[0]
    assert (entry["actor"], entry["data"]["reason"]) == ("tess", "all billing stopped")
    page = web.page(changed.headers["location"])
    assert page.one("p", **{"class": "flash"}).text == "Priority set to P1."
    assert float(page.one(data_clock="first-response").attrs["data-due"]) == pytest.approx(
        expected)


@pytest.mark.parametrize(("action", "fields", "named", "kept"), [
    ("reply", {"text": "   "}, "text:", ("textarea", "text", "   ")),
    ("comment", {"text": ""}, "text:", ("textarea", "text", "")),
    ("priority", {"priority": "P2", "reason": ""}, "reason:", ("select", "priority", "P2")),
    ("priority", {"priority": "", "reason": "the whole shop is down"}, "priority:",
     ("input", "reason", "the whole shop is down")),
    ("priority", {"priority": "P3", "reason": "no change really"}, "P3 already",
     ("input", "reason", "no change really")),
    ("resolve", {"text": " "}, "text:", ("textarea", "text", " ")),
])
def test_a_refused_action_says_why_and_keeps_what_was_typed(web, action, fields, named, kept):
    before = web.api("acme-disk")
    answer = web.post("acme-disk", action, **fields)
    assert answer.status_code == 422
    page = parse(answer.text)
    form = page.one("form", data_action=action)
    assert named in form.one("p", **{"class": "error"}).text
    marked = [e.attrs["name"] for e in form.all(aria_invalid="true")]
    assert marked == ([named[:-1]] if named.endswith(":") else [])
    tag, name, value = kept
    element = form.one(tag, name=name)
    if tag == "textarea":
        assert element.text == value.strip() and f">{value}</textarea>" in answer.text
    elif tag == "select":
        assert element.one("option", selected=True).attrs["value"] == value
    else:
        assert element.attrs["value"] == value
    assert page.one("section", id="ticket") and not page.all("p", **{"class": "flash"})
    assert web.api("acme-disk") == before


def test_resolving_then_resolving_again_is_refused_and_reopen_is_offered(web):
    done = web.post("acme-disk", "resolve", text="Cleaned up /var; 40% used now.")
    assert done.status_code == 303
    api = web.api("acme-disk")
    assert api["state"] == "resolved" and api["resolved_at"]
    assert api["events"][-1]["text"] == "new -> resolved: Cleaned up /var; 40% used now."
    page = web.page(done.headers["location"])
    assert page.one("p", **{"class": "flash"}).text == "Ticket resolved; the customer is told."
    assert page.all(data_state=True)[0].text == "resolved"
    assert page.one(data_clock="next-update").text == "‖ resolved"
    assert not page.all("form", data_action="resolve")
    assert page.one("button", value="reopen")
    again = web.post("acme-disk", "resolve", text="twice")
    assert again.status_code == 422
    error = parse(again.text).one("form", data_action="resolve").one("p", **{"class": "error"})
    assert "resolved" in error.text
    reopened = web.post("acme-disk", "state", state="reopen", reason="it came back")
    assert reopened.status_code == 303 and web.api("acme-disk")["state"] == "new"


def test_stall_open_and_assign_from_the_page(web):
    assert web.post("acme-disk", "reply", text="On it.").status_code == 303
    assert web.post("acme-disk", "state", state="stalled", reason="waiting").status_code == 303
    page = web.page(f"/tickets/{web.number('acme-disk')}?done=state")
    assert page.one("p", **{"class": "flash"}).text == "Ticket is stalled now."
    assert page.one(data_clock="next-update").text == "‖ stalled"
    assert web.post("acme-disk", "state", state="open").status_code == 303
    assert web.api("acme-disk")["next_update_due"] is not None
    assert web.post("acme-disk", "assign", assignee="tess").status_code == 303
    assert web.api("acme-disk")["assignee"] == "tess"
    same = web.post("acme-disk", "assign", assignee="tess")
    assert same.status_code == 422 and "already" in same.text
    assert web.post("acme-disk", "assign", assignee="").status_code == 303
    assert web.api("acme-disk")["assignee"] is None


def test_a_form_without_the_csrf_token_changes_nothing(web):
    before = web.api("acme-disk")
    answer = web.post("acme-disk", "reply", with_token=False, text="sneaky")
    assert answer.status_code == 403 and "CSRF" in answer.text
    forged = web.post("acme-disk", "reply", with_token=False, text="sneaky", csrf="forged")
    assert forged.status_code == 403
    assert web.api("acme-disk") == before


@pytest.mark.parametrize("who", ["noc", "acme"])
def test_noc_and_viewers_see_no_forms_and_may_not_post(web, who):
    number = web.number("acme-disk")
    page = web.page(f"/tickets/{number}", who)
    assert not page.all("form", data_action=True)
    csrf = page.one("input", name="csrf").attrs["value"]  # the logout form's
    before = web.api("acme-disk")
    for action, fields in (("reply", {"text": "hi"}), ("comment", {"text": "hi"}),
                           ("priority", {"priority": "P1", "reason": "because"}),
                           ("resolve", {"text": "done"}), ("state", {"state": "stalled"}),
                           ("assign", {"assignee": "nick"})):
        answer = web.browser(who).post(f"/tickets/{number}/{action}",
                                       data={"csrf": csrf, **fields})
        assert answer.status_code == 403, action
    assert web.api("acme-disk") == before


def test_an_unknown_action_or_ticket_is_not_found(web):
    assert web.post("acme-disk", "close", text="x").status_code == 404
    page = web.page("/tickets/999999", status=404)
    assert "no ticket #999999" in page.one("p", **{"class": "error"}).text


def test_an_admin_acts_too_and_a_viewer_sees_the_reply(web):
    assert web.post("acme-disk", "reply", "admin", text="Disk cleaned.").status_code == 303
    seen = web.page(f"/tickets/{web.number('acme-disk')}", "acme")
    history = seen.one("ol", **{"class": "history"})
    assert [e.attrs["data-event"] for e in history.all("li")] == ["reply"]
    assert "Disk cleaned." in history.text


def test_the_live_part_of_a_ticket_and_of_a_refused_form_s_address(web):
    number = web.number("acme-disk")
    browser = web.browser("tse")
    live = browser.get(f"/tickets/{number}", headers={"X-Live": "1"})
    assert live.status_code == 200 and "<html" not in live.text
    assert 'id="ticket"' in live.text and 'data-action="reply"' not in live.text
    after = browser.get(f"/tickets/{number}/reply", headers={"X-Live": "1"})
    assert after.status_code == 200 and 'id="ticket"' in after.text
    back = browser.get(f"/tickets/{number}/reply")
    assert back.status_code == 303 and back.headers["location"] == f"/tickets/{number}"
