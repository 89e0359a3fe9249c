"""The dashboard's maintenance page, on both stores: the windows active, upcoming and over
as each role sees them, and a TSE creating and deleting windows from it."""

from __future__ import annotations

from typing import Any

import pytest

from collector.db import create_db_engine, write_transaction
from collector.people import service as people
from tests.collector.test_dashboard_tickets import Element, parse
from tests.collector.test_maintenance_api import NOW, api, get, post  # noqa: F401

PASSWORD = "correct horse battery"
HOUR = 3600.0


class Desk:
    """The maintenance API's collector (acme on Kyiv time with db1 and db2, globex with
    gx1), its users ``admin1``, ``tse1``, ``noc1`` and acme's ``viewer1`` logged in."""

    def __init__(self, api: Any) -> None:  # noqa: F811
        self.api = api
        self.browsers: dict[str, Any] = {}

    def browser(self, role: str) -> Any:
        if role not in self.browsers:
            self.browsers[role] = self.api.browser(f"{role}1", PASSWORD)
        return self.browsers[role]

    def page(self, role: str = "tse", status: int = 200, **params: str) -> Element:
        answer = self.browser(role).get("/maintenance", params=params or None,
                                        headers={"Accept": "text/html"})
        assert answer.status_code == status, answer.text
        return parse(answer.text)

    def csrf(self, role: str) -> str:
        """The session's CSRF token, as every form of the page carries it."""
        return self.page(role).all("input", name="csrf")[0].attrs["value"]

    def create(self, role: str = "tse", **fields: str) -> Any:
        form = {"customer": "acme", "host": "", "check": "", "starts_at": "2027-03-01T11:00",
                "ends_at": "2027-03-01T14:00", "recurrence": "once", "timezone": "",
                "until": "", "reason": "storage firmware", "csrf": self.csrf(role)}
        form.update(fields)
        return self.browser(role).post("/maintenance", data=form,
                                       headers={"Accept": "text/html"})

    def delete(self, window_id: int, role: str = "tse", **fields: str) -> Any:
        return self.browser(role).post(f"/maintenance/{window_id}/delete",
                                       data={"csrf": self.csrf(role), **fields},
                                       headers={"Accept": "text/html"})

    def windows(self) -> list[dict[str, Any]]:
        answer = get(self.api, "admin")
        assert answer.status_code == 200, answer.text
        result: list[dict[str, Any]] = answer.json()
        return result


@pytest.fixture
def desk(api: Any) -> Desk:  # noqa: F811
    engine = create_db_engine(api.app.state.runtime.settings)
    try:
        with write_transaction(engine) as conn:
            for role in ("admin", "tse", "noc", "viewer"):
                people.set_password(conn, f"{role}1", PASSWORD)
    finally:
        engine.dispose()
    return Desk(api)


def rows(page: Element, when: str) -> list[int]:
    section = page.one("section", data_windows=when)
    return [int(row.attrs["data-window"]) for row in section.all("tr", data_window=True)]


def test_a_tse_creates_a_window_read_in_the_customer_s_time_zone(desk):
    answer = desk.create(host="db1.acme.example", recurrence="daily")
    assert answer.status_code == 303
    [window] = desk.windows()
    assert answer.headers["location"] == f"/maintenance?done=created&window={window['id']}"
    assert (window["starts_at"], window["ends_at"]) == ("2027-03-01T09:00:00.000Z",
                                                        "2027-03-01T12:00:00.000Z")
    assert (window["timezone"], window["recurrence"], window["host"], window["created_by"]) == (
        "Europe/Kyiv", "daily", "db1.acme.example", "tse1")
    page = parse(desk.browser("tse").get(answer.headers["location"]).text)
    assert page.one("p", **{"class": "flash"}).text == f"Maintenance window {window['id']} created."
    assert rows(page, "active") == [window["id"]]  # 12:00 in Kyiv: inside 11:00-14:00
    row = page.one("tr", data_window=str(window["id"]))
    assert "2027-03-01 11:00 – 2027-03-01 14:00" in row.text and "Europe/Kyiv" in row.text
    assert "ends in 2h 00m" in row.text and "daily" in row.text
    assert row.one("a").attrs["href"] == "/hosts/db1.acme.example"
    audit = desk.api.get("/api/v1/audit", params={"kind": "maintenance_created"},
                         headers=desk.api.headers["admin"]).json()
    assert [(e["actor"], e["customer"]) for e in audit] == [("tse1", "acme")]


def test_an_offset_or_a_time_zone_given_in_the_form_wins(desk):
    assert desk.create(starts_at="2027-03-01T11:00+00:00", ends_at="2027-03-01T12:00+00:00",
                       reason="UTC given").status_code == 303
    assert desk.create(timezone="UTC", reason="zone given").status_code == 303
    starts = {w["reason"]: w["starts_at"] for w in desk.windows()}
    assert starts == {"UTC given": "2027-03-01T11:00:00.000Z",
                      "zone given": "2027-03-01T11:00:00.000Z"}


def test_windows_are_sorted_into_active_upcoming_and_over(desk):
    made = {}
    for name, body in (
        ("now", {"starts_at": "2027-03-01T11:00:00+02:00",
                 "ends_at": "2027-03-01T13:00:00+02:00"}),
        ("soon", {"starts_at": "2027-03-01T15:00:00+02:00",
                  "ends_at": "2027-03-01T16:00:00+02:00"}),
        ("later", {"starts_at": "2027-03-02T15:00:00+02:00",
                   "ends_at": "2027-03-02T16:00:00+02:00"}),
        ("globex", {"customer": "globex", "starts_at": "2027-03-01T09:30:00+00:00",
                    "ends_at": "2027-03-01T12:00:00+00:00"}),
    ):
        answer = post(desk.api, "admin", reason=name, **body)
        assert answer.status_code == 201, answer.text
        made[name] = answer.json()["id"]
    page = desk.page("noc")
    assert rows(page, "active") == [made["now"], made["globex"]]
    assert rows(page, "upcoming") == [made["soon"], made["later"]]
    assert rows(page, "past") == []
    desk.api.clock.now = NOW + 2 * HOUR  # 14:00 in Kyiv: "now" and globex's are over
    page = desk.page("noc")
    assert rows(page, "active") == []
    assert rows(page, "past") == [made["globex"], made["now"]]  # the latest over first
    assert rows(desk.page("noc", customer="globex"), "past") == [made["globex"]]
    seen = desk.page("viewer")
    assert made["globex"] not in rows(seen, "past") and not seen.all("select", name="customer")
    assert "globex" not in seen.one("div", id="live").text
    desk.page("viewer", status=422, customer="globex")
    live = desk.browser("noc").get("/maintenance", headers={"X-Live": "1"})
    assert live.status_code == 200 and "<html" not in live.text and "data-windows" in live.text


@pytest.mark.parametrize(("fields", "named"), [
    ({"ends_at": "2027-03-01T10:00"}, "ends_at"),
    ({"starts_at": "tomorrow"}, "starts_at"),
    ({"starts_at": ""}, "starts_at"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"host": "gx1.globex.example"}, "host"),
    ({"host": "", "check": "disk"}, "check"),
    ({"reason": "  "}, "reason"),
    ({"customer": ""}, "customer"),
    ({"customer": "umbrella"}, "customer"),
    ({"recurrence": "hourly"}, "recurrence"),
    ({"recurrence": "daily", "until": "2027-02-01T00:00"}, "until"),
])
def test_a_refused_window_names_the_field_and_keeps_what_was_typed(desk, fields, named):
    typed = {"host": "db2.acme.example", "check": "", "reason": "kernel update",
             "timezone": "Europe/Kyiv", **fields}
    answer = desk.create(**typed)
    assert answer.status_code == 422, answer.text
    page = parse(answer.text)
    form = page.one("form", data_action="create-window")
    error = form.one("p", **{"class": "error"})
    assert error.attrs["data-field"] == named and error.text.startswith(f"{named}:")
    assert [e.attrs["name"] for e in form.all(aria_invalid="true")] == [named]
    for name in ("host", "check", "reason", "timezone", "starts_at", "ends_at", "until"):
        if name in typed:
            assert form.one("input", name=name).attrs["value"] == typed[name], name
    chosen = form.one("select", name="customer").all("option", selected=True)
    if typed.get("customer", "acme") in ("acme", "globex", "initech"):
        assert chosen[0].attrs["value"] == typed.get("customer", "acme")
    assert desk.windows() == []


def test_a_tse_deletes_a_window(desk):
    window_id = post(desk.api, "admin").json()["id"]
    answer = desk.delete(window_id)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/maintenance?done=deleted&window={window_id}"
    assert desk.windows() == []
    page = parse(desk.browser("tse").get(answer.headers["location"]).text)
    assert page.one("p", **{"class": "flash"}).text == f"Maintenance window {window_id} deleted."
    audit = desk.api.get("/api/v1/audit", params={"kind": "maintenance_deleted"},
                         headers=desk.api.headers["admin"]).json()
    assert [e["actor"] for e in audit] == ["tse1"]
    assert desk.delete(window_id).status_code == 404


@pytest.mark.parametrize("role", ["noc", "viewer"])
def test_noc_and_viewers_see_no_forms_and_may_not_change_windows(desk, role):
    window_id = post(desk.api, "admin").json()["id"]
    page = desk.page(role)
    assert rows(page, "active") == [window_id]
    assert not page.all("form", data_action="create-window")
    assert not page.all("form", data_action="delete-window")
    assert desk.create(role).status_code == 403
    assert desk.delete(window_id, role).status_code == 403
    assert [w["id"] for w in desk.windows()] == [window_id]


def test_a_form_without_the_csrf_token_changes_nothing(desk):
    window_id = post(desk.api, "admin").json()["id"]
    assert desk.create(csrf="").status_code == 403
    assert desk.delete(window_id, csrf="forged").status_code == 403
    assert [w["id"] for w in desk.windows()] == [window_id]
