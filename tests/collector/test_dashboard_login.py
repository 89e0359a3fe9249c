"""The dashboard's login, forms and live refresh, on both stores (a browser's view through
HTTP: cookies, redirects, headers). The pages themselves: test_dashboard_*.py; a real
Chromium: tests/browser/."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from collector.dashboard.sessions import SESSIONS, USERS
from collector.dashboard.web import COOKIE, age, safe_next
from collector.db import create_db_engine, write_transaction
from collector.ingest.scheduled import prune_job
from collector.people import service as people
from collector.settings import DashboardSettings
from tests.collector.conftest import add_user


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def test_a_page_without_a_login_goes_to_the_login_page_and_back(settings, start_collector):
    client = start_collector(settings, role=None)
    add_user(settings, "nina", "noc", password="correct horse")
    browser = client.browser()
    answer = browser.get("/?customer=acme", headers={"Accept": "text/html"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2F%3Fcustomer%3Dacme"
    form = browser.get(answer.headers["location"])
    assert form.status_code == 200 and 'name="password"' in form.text
    assert 'value="/?customer=acme"' in form.text
    logged = browser.post("/login", data={"name": "nina", "password": "correct horse",
                                          "next": "/?customer=acme"})
    assert logged.status_code == 303 and logged.headers["location"] == "/?customer=acme"
    cookie = logged.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie
    assert "samesite=lax" in cookie.lower() and "Secure" not in cookie
    page = browser.get("/")
    assert page.status_code == 200 and "nina" in page.text and "noc" in page.text


def test_a_wrong_password_is_refused_with_the_same_words_for_every_mistake(
        settings, start_collector):
    client = start_collector(settings, role=None)
    add_user(settings, "nina", "noc", password="correct horse")
    add_user(settings, "tokenonly", "noc")
    browser = client.browser()
    for name, password in (("nina", "wrong horse"), ("nobody", "correct horse"),
                           ("tokenonly", ""), ("", "")):
        answer = browser.post("/login", data={"name": name, "password": password})
        assert answer.status_code == 401, name
        assert "wrong user name or password" in answer.text
        assert COOKIE not in answer.headers.get("set-cookie", "")
    assert browser.get("/").status_code == 303


@pytest.mark.parametrize("target, expected", [
    ("/tickets/4", "/tickets/4"), ("https://evil.example/", "/"), ("//evil.example/", "/"),
    ("/\\evil.example", "/"), ("", "/"), (None, "/"), ("tickets", "/"),
])
def test_after_the_login_the_browser_goes_only_to_a_page_of_this_collector(target, expected):
    assert safe_next(target) == expected


def test_logging_out_ends_the_login_for_good(settings, start_collector):
    client = start_collector(settings, role=None)
    add_user(settings, "nina", "noc", password="correct horse")
    browser = client.browser("nina", "correct horse")
    token = browser._client.cookies[COOKIE]
    page = browser.get("/")
    out = browser.post("/logout", data={"csrf": csrf_of(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    stolen = client.browser()
    stolen._client.cookies.set(COOKIE, token)
    assert stolen.get("/").status_code == 303
    assert stolen.get("/", headers={"X-Live": "1"}).status_code == 401


def test_a_form_without_the_sessions_csrf_token_or_from_another_site_is_refused(
        settings, start_collector):
    client = start_collector(settings, role=None)
    add_user(settings, "nina", "noc", password="correct horse")
    browser = client.browser("nina", "correct horse")
    csrf = csrf_of(browser.get("/").text)
    missing = browser.post("/logout", data={"next": "/"}, headers={"Accept": "text/html"})
    assert missing.status_code == 403 and "CSRF" in missing.text
    foreign = browser.post("/logout", data={"csrf": csrf},
                           headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and "evil.example" in foreign.text
    assert browser.get("/").status_code == 200  # still logged in: nothing was done


def test_a_disabled_user_or_a_login_left_idle_is_logged_out(settings, start_collector, clock):
    settings = settings.model_copy(update={"dashboard": DashboardSettings(session_idle=3600)})
    client = start_collector(settings, clock, role=None)
    add_user(settings, "nina", "noc", password="correct horse")
    add_user(settings, "omar", "noc", password="another horse")
    nina = client.browser("nina", "correct horse")
    omar = client.browser("omar", "another horse")
    clock.advance(3000)
    assert nina.get("/").status_code == 200  # renews nina's idle clock, not omar's
    clock.advance(1000)
    assert nina.get("/").status_code == 200
    assert omar.get("/").status_code == 303
    engine = create_db_engine(settings)
    try:
        with write_transaction(engine) as conn:
            people.set_disabled(conn, "nina")
    finally:
        engine.dispose()
    assert nina.get("/").status_code == 303


def test_the_live_refresh_gets_only_the_changing_part_with_the_collectors_time(
        settings, start_collector, clock):
    client = start_collector(settings, clock, role=None)
    add_user(settings, "nina", "noc", password="correct horse")
    browser = client.browser("nina", "correct horse")
    page = browser.get("/")
    assert "<html" in page.text and 'id="live"' in page.text and "/static/live.js" in page.text
    fragment = browser.get("/", headers={"X-Live": "1"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and "Log out" not in fragment.text
    assert float(fragment.headers["X-Server-Time"]) == pytest.approx(clock.now, abs=0.01)
    assert fragment.headers["Cache-Control"] == "no-store"
    csp = fragment.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


def test_the_pages_script_and_style_are_served_without_a_login(settings, start_collector):
    client = start_collector(settings, role=None)
    script = client.get("/static/live.js")
    assert script.status_code == 200 and "X-Live" in script.text
    assert client.get("/static/dashboard.css").status_code == 200


def test_a_missing_page_is_a_page_that_says_so_and_the_api_keeps_its_json(
        settings, start_collector):
    client = start_collector(settings)
    assert client.get("/api/v1/hosts/nope.example").json()["error"] == "not_found"


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (59.9, "59s"), (61, "1m 01s"), (3600, "1h 00m"), (7385, "2h 03m"),
    (90000, "1d 1h"), (-5, "0s"),
])
def test_durations_read_at_a_glance(seconds, text):
    assert age(seconds) == text


def test_ended_logins_are_removed_by_the_pruning_job(settings, start_collector, clock):
    settings = settings.model_copy(update={"dashboard": DashboardSettings(session_idle=3600)})
    client = start_collector(settings, clock, role=None)
    add_user(settings, "nina", "noc", password="correct horse")
    add_user(settings, "omar", "noc", password="another horse")
    client.browser("nina", "correct horse")
    omar = client.browser("omar", "another horse")
    clock.advance(3500)
    assert omar.get("/").status_code == 200
    clock.advance(200)  # nina idle for 3700 s, omar for 200 s
    prune_job(client.app.state.runtime)
    with client.app.state.engine.connect() as conn:
        left = conn.execute(select(SESSIONS.c.user_id).join(
            USERS, USERS.c.id == SESSIONS.c.user_id).add_columns(USERS.c.name)).all()
    assert [row.name for row in left] == ["omar"]
    assert omar.get("/").status_code == 200
