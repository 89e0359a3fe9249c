"""/api/v1/maintenance: who may create, read and delete windows; what the API answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from collector.db import create_db_engine, migrate, write_transaction
from collector.maintenance import views
from collector.people import service as people
from collector.settings import Settings

NOW = datetime.fromisoformat("2027-03-01T10:00Z").timestamp()


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api(db_url: str, enroll_host: Any, start_collector: Any) -> Any:
    """A collector on a store with acme (Kyiv calendar; db1, db2) and globex (gx1), and an
    API token per role: ``api.headers[role]``."""
    settings = Settings.model_validate({
        "database": {"url": db_url},
        "calendars": {"kyiv": {"timezone": "Europe/Kyiv"}},
        "customers": {"acme": {"calendar": "kyiv"}, "initech": {}},
    })
    engine = create_db_engine(settings)
    try:
        migrate(engine)
        for fqdn, customer in (("db1.acme.example", "acme"), ("db2.acme.example", "acme"),
                               ("gx1.globex.example", "globex")):
            enroll_host(settings, fqdn, customer)
        headers = {}
        with write_transaction(engine) as conn:
            for role in ("admin", "tse", "noc", "viewer"):
                people.create_user(conn, name=f"{role}1", role=role,
                                   customer="acme" if role == "viewer" else None, now=NOW)
                token = people.create_token(conn, user=f"{role}1", now=NOW)[1]
                headers[role] = {"Authorization": f"Bearer {token}"}
    finally:
        engine.dispose()
    clock = Clock()
    client = start_collector(settings, clock)
    if not any(getattr(r, "path", "").startswith(views.router.prefix) for r in client.app.routes):
        client.app.include_router(views.router)
    client.headers = headers
    client.clock = clock
    return client


def post(api: Any, role: str, **body: Any) -> Any:
    window = {"customer": "acme", "starts_at": "2027-03-01T11:00:00+02:00",
              "ends_at": "2027-03-01T14:00:00+02:00", "reason": "storage firmware"}
    window.update(body)
    return api.post("/api/v1/maintenance", json=window, headers=api.headers[role])


def get(api: Any, role: str, path: str = "", **params: Any) -> Any:
    return api.get(f"/api/v1/maintenance{path}", params=params, headers=api.headers[role])


def test_a_tse_creates_a_window_in_the_customers_time_zone_and_everyone_sees_it(api):
    answer = post(api, "tse", host="db1.acme.example", recurrence="daily",
                  until="2027-03-31T23:59:59+03:00")
    assert answer.status_code == 201, answer.text
    window = answer.json()
    assert {k: window[k] for k in ("customer", "host", "check", "scope", "recurrence",
                                   "timezone", "reason", "created_by")} == {
        "customer": "acme", "host": "db1.acme.example", "check": None, "scope": "host",
        "recurrence": "daily", "timezone": "Europe/Kyiv", "reason": "storage firmware",
        "created_by": "tse1"}
    assert (window["starts_at"], window["ends_at"]) == ("2027-03-01T09:00:00.000Z",
                                                        "2027-03-01T12:00:00.000Z")
    assert window["until"] == "2027-03-31T20:59:59.000Z"
    assert window["occurrence"] == {"starts_at": "2027-03-01T09:00:00.000Z",
                                    "ends_at": "2027-03-01T12:00:00.000Z", "active": True}
    for role in ("admin", "noc", "viewer"):
        listed = get(api, role)
        assert listed.status_code == 200, (role, listed.text)
        assert [w["id"] for w in listed.json()] == [window["id"]]
    api.clock.now = datetime.fromisoformat("2027-03-01T13:00Z").timestamp()
    assert get(api, "noc", f"/{window['id']}").json()["occurrence"] == {
        "starts_at": "2027-03-02T09:00:00.000Z", "ends_at": "2027-03-02T12:00:00.000Z",
        "active": False}
    # After the change to summer time (28 March) the window keeps 11:00 local.
    api.clock.now = datetime.fromisoformat("2027-03-29T09:00Z").timestamp()
    assert get(api, "noc", f"/{window['id']}").json()["occurrence"] == {
        "starts_at": "2027-03-29T08:00:00.000Z", "ends_at": "2027-03-29T11:00:00.000Z",
        "active": True}


def test_noc_and_viewer_may_not_create_or_delete_and_nobody_anonymous_may_read(api):
    for role in ("noc", "viewer"):
        answer = post(api, role)
        assert answer.status_code == 403
        assert answer.json()["error"] == "forbidden" and "tse" in answer.json()["detail"]
    created = post(api, "admin").json()
    for role in ("noc", "viewer"):
        answer = api.request("DELETE", f"/api/v1/maintenance/{created['id']}",
                             headers=api.headers[role])
        assert answer.status_code == 403
    assert get(api, "noc", f"/{created['id']}").status_code == 200
    anonymous = api.get("/api/v1/maintenance", headers={"Authorization": ""})
    assert anonymous.status_code == 401 and "WWW-Authenticate" in anonymous.headers


def test_a_viewer_sees_only_its_own_customers_windows(api):
    own = post(api, "tse").json()
    other = post(api, "tse", customer="globex", host="gx1.globex.example").json()
    assert [w["id"] for w in get(api, "noc").json()] == [own["id"], other["id"]]
    assert [w["id"] for w in get(api, "viewer").json()] == [own["id"]]
    assert get(api, "viewer", f"/{own['id']}").status_code == 200
    hidden = get(api, "viewer", f"/{other['id']}")
    assert hidden.status_code == 404
    assert hidden.json() == {"error": "not_found",
                             "detail": f"no maintenance window {other['id']}"}
    assert get(api, "viewer", customer="globex").status_code == 404
    assert [w["id"] for w in get(api, "noc", customer="globex").json()] == [other["id"]]


def test_listing_only_what_is_active_now(api):
    now_window = post(api, "tse").json()
    later = post(api, "tse", starts_at="2027-03-05T00:00:00Z",
                 ends_at="2027-03-05T02:00:00Z").json()
    assert [w["id"] for w in get(api, "noc").json()] == [now_window["id"], later["id"]]
    assert [w["id"] for w in get(api, "noc", active="true").json()] == [now_window["id"]]
    api.clock.now = datetime.fromisoformat("2027-03-05T01:00Z").timestamp()
    assert [w["id"] for w in get(api, "noc", active="true").json()] == [later["id"]]
    listed = {w["id"]: w["occurrence"] for w in get(api, "noc").json()}
    assert listed[now_window["id"]] is None  # over: no occurrence left


def test_a_tse_deletes_a_window_and_it_is_gone(api):
    created = post(api, "tse").json()
    answer = api.request("DELETE", f"/api/v1/maintenance/{created['id']}",
                         headers=api.headers["tse"])
    assert answer.status_code == 200 and answer.json()["id"] == created["id"]
    assert get(api, "noc", f"/{created['id']}").status_code == 404
    assert get(api, "noc").json() == []
    again = api.request("DELETE", f"/api/v1/maintenance/{created['id']}",
                        headers=api.headers["tse"])
    assert again.status_code == 404


@pytest.mark.parametrize(("body", "error", "words"), [
    ({"host": "gx1.globex.example"}, "invalid_window",
     "host: host 'gx1.globex.example' does not belong to customer 'acme'"),
    ({"check": "disk"}, "invalid_window", "check: a window for one check needs the host"),
    ({"timezone": "Kyiv"}, "invalid_window", "timezone: unknown time zone 'Kyiv'"),
    ({"recurrence": "daily", "ends_at": "2027-03-02T12:00:00+02:00"}, "invalid_window",
     "ends_at: a daily window cannot last longer than its period"),
    ({"ends_at": "2027-03-01T10:00:00+02:00"}, "invalid_window",
     "ends_at: the window must end after it starts"),
    ({"customer": "nobody"}, "invalid_window", "customer: no customer 'nobody'"),
    ({"starts_at": "2027-03-01T11:00:00"}, "invalid_request", "starts_at"),
    ({"recurrence": "monthly"}, "invalid_request", "recurrence"),
    ({"colour": "red"}, "invalid_request", "colour"),
])
def test_bad_windows_are_refused_naming_the_field(api, body, error, words):
    answer = post(api, "tse", **body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == error
    assert words in answer.json()["detail"]
    assert get(api, "noc").json() == []


def test_epoch_seconds_are_accepted_and_a_configured_customer_needs_no_host_yet(api):
    answer = post(api, "tse", customer="initech", starts_at=NOW - 60, ends_at=NOW + 600)
    assert answer.status_code == 201, answer.text
    window = answer.json()
    assert (window["timezone"], window["occurrence"]["active"]) == ("UTC", True)
    assert window["ends_at"] == "2027-03-01T10:10:00.000Z"
