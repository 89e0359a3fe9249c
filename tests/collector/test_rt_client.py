"""The REST2 client against a real Request Tracker 5 (Debian's request-tracker5, SQLite).

The session's private RT (``rt_server``, tests/conftest.py), loaded with
deploy/rt/watchkeeper.initialdata; the client acts as the connector user ``watchkeeper``,
staff work is done as ``alice``. One test stops RT for a while and starts it again.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from collector.rt.client import RtClient, RtError
from collector.settings import RequestTrackerSettings
from tests.services import rt as rt_service
from tests.services.rt import (
    CONNECTOR_USER,
    KEY_FIELD,
    STAFF_PASSWORD,
    STAFF_USER,
    FaultProxy,
    RtServer,
)


def settings_for(url: str, **credentials: Any) -> RequestTrackerSettings:
    return RequestTrackerSettings(url=url, user=credentials.pop("user", CONNECTOR_USER),
                                  timeout=10.0, **credentials)


@pytest.fixture
def client(rt_server: RtServer, rt_token: str) -> Iterator[RtClient]:
    with RtClient(settings_for(rt_server.url, token=rt_token)) as rt:
        yield rt


@pytest.fixture
def staff(rt_server: RtServer) -> Iterator[RtClient]:
    """The staff user alice, with her password (basic authentication)."""
    with RtClient(settings_for(rt_server.url, user=STAFF_USER, password=STAFF_PASSWORD)) as rt:
        yield rt


def as_root(server: RtServer, path: str) -> Any:
    """Read RT as its administrator, independently of the client under test."""
    response = httpx.get(f"{server.url}/REST/2.0{path}", auth=("root", server.root_password),
                         timeout=30)
    response.raise_for_status()
    return response.json()


def as_staff(server: RtServer, path: str, body: dict[str, Any]) -> Any:
    """POST as the staff user alice, the way RT's web pages or her own tools would."""
    response = httpx.post(f"{server.url}/REST/2.0{path}", json=body,
                          auth=(STAFF_USER, STAFF_PASSWORD), timeout=30)
    response.raise_for_status()
    return response.json()


def new_key() -> str:
    return f"disk:web1/{uuid.uuid4().hex[:8]} #1"


def open_ticket(client: RtClient, key: str | None = None, priority: int = 80) -> int:
    return client.create(queue="General", subject="web1: disk / is 95% full",
                         requestors=["ops@customer.example"], priority=priority,
                         content="Disk / on web1 is 95% full.", key_value=key or new_key())


def test_create_sets_priority_requestor_and_key_in_rt(client: RtClient,
                                                       rt_server: RtServer) -> None:
    key = new_key()
    rt_id = open_ticket(client, key, priority=80)
    ticket = as_root(rt_server, f"/ticket/{rt_id}")
    assert ticket["Priority"] == "80"  # RT answers priorities as strings
    assert ticket["Subject"] == "web1: disk / is 95% full"
    assert ticket["Status"] == "new"
    assert ticket["Creator"]["id"] == CONNECTOR_USER
    assert [r["id"] for r in ticket["Requestor"]] == ["ops@customer.example"]
    keys = {f["name"]: f["values"] for f in ticket["CustomFields"]}
    assert keys[KEY_FIELD] == [key]
    create = client.history(rt_id)[0]
    assert create.type == "Create"
    assert client.content(create.id) == "Disk / on web1 is 95% full."


def test_find_by_key_matches_exactly(client: RtClient) -> None:
    key = new_key()
    rt_id = open_ticket(client, key)
    assert client.find_by_key(key) == rt_id
    assert client.find_by_key(new_key()) is None
    # RT's custom field search ignores case; a key differing in case is another key.
    assert client.find_by_key(key.upper()) is None
    odd = f"it's a \\ path '{uuid.uuid4().hex[:6]}' OR 1=1"
    odd_id = open_ticket(client, odd)
    assert client.find_by_key(odd) == odd_id
    assert client.find_by_key(odd[:-1]) is None


def test_find_by_key_with_two_tickets_gives_the_lowest_id(client: RtClient) -> None:
    key = new_key()
    first = open_ticket(client, key)
    open_ticket(client, key)
    assert client.find_by_key(key) == first


def test_comment_and_correspond_appear_in_history(client: RtClient) -> None:
    rt_id = open_ticket(client)
    before = client.history(rt_id)[-1].id
    client.comment(rt_id, subject="Priority raised [wk-note-1]", content="Now P1: disk 99%.")
    client.correspond(rt_id, subject="We are on it [wk-note-2]", content="Engineers notified.")
    since_before = client.history(rt_id, after=before)
    notes = [t for t in since_before if t.type in ("Comment", "Correspond")]
    assert [(t.type, t.creator, t.subject) for t in notes] == [
        ("Comment", CONNECTOR_USER, "Priority raised [wk-note-1]"),
        ("Correspond", CONNECTOR_USER, "We are on it [wk-note-2]"),
    ]
    # RT's own scrip opens a new ticket on a reply, as its system user.
    assert ("Status", "RT_System", "new", "open") in [
        (t.type, t.creator, t.old, t.new) for t in since_before]
    assert [t.id for t in since_before] == sorted(t.id for t in since_before)
    assert abs(notes[0].created - time.time()) < 120
    assert client.content(notes[0].id) == "Now P1: disk 99%."
    assert client.content(notes[1].id) == "Engineers notified."
    assert client.history(rt_id, after=since_before[-1].id) == []


def test_has_note_finds_a_stored_note_by_its_marker(client: RtClient) -> None:
    rt_id = open_ticket(client)
    assert not client.has_note(rt_id, "[wk-42]")
    client.comment(rt_id, subject="Escalated [wk-42]", content="To the on-call engineer.")
    assert client.has_note(rt_id, "[wk-42]")
    assert not client.has_note(rt_id, "[wk-43]")


def test_staff_html_reply_is_read_as_text(client: RtClient, rt_server: RtServer) -> None:
    rt_id = open_ticket(client)
    answer = as_staff(rt_server, f"/ticket/{rt_id}/correspond", {
        "Subject": "Grüße", "ContentType": "text/html",
        "Content": "<p>Disk cleaned &amp; <b>fixed</b>.</p><p>Grüße, Alice</p>"})
    assert answer == ["Correspondence added"]
    reply = next(t for t in client.history(rt_id) if t.type == "Correspond")
    assert (reply.type, reply.creator, reply.subject) == ("Correspond", STAFF_USER, "Grüße")
    assert client.content(reply.id) == "Disk cleaned & fixed.\nGrüße, Alice"


def test_content_of_a_reply_with_a_file_is_its_text(client: RtClient,
                                                    rt_server: RtServer) -> None:
    rt_id = open_ticket(client)
    as_staff(rt_server, f"/ticket/{rt_id}/correspond", {
        "Subject": "Report", "ContentType": "text/plain", "Content": "See the report.",
        "Attachments": [{"FileName": "report.pdf", "FileType": "application/pdf",
                         "FileContent": base64.b64encode(b"%PDF-1.4 \x00\x01").decode()}]})
    reply = next(t for t in client.history(rt_id) if t.type == "Correspond")
    assert client.content(reply.id) == "See the report."


def test_update_priority_and_status(client: RtClient, rt_server: RtServer) -> None:
    rt_id = open_ticket(client, priority=80)
    client.update(rt_id, {"Priority": 60, "Status": "open"})
    ticket = as_root(rt_server, f"/ticket/{rt_id}")
    assert (ticket["Priority"], ticket["Status"]) == ("60", "open")
    changes = [(t.type, t.field, t.old, t.new) for t in client.history(rt_id)[1:]]
    assert ("Set", "Priority", "80", "60") in changes
    assert ("Status", "Status", "new", "open") in changes


def test_setting_the_same_values_again_is_no_error(client: RtClient,
                                                   rt_server: RtServer) -> None:
    rt_id = open_ticket(client, priority=40)
    client.update(rt_id, {"Priority": 20, "Status": "resolved"})
    before = client.history(rt_id)
    client.update(rt_id, {"Priority": 20, "Status": "resolved"})  # a retried update
    assert client.history(rt_id) == before
    assert as_root(rt_server, f"/ticket/{rt_id}")["Status"] == "resolved"


def test_refused_update_is_permanent_and_names_rts_message(client: RtClient,
                                                           rt_server: RtServer) -> None:
    rt_id = open_ticket(client)
    with pytest.raises(RtError) as refused:
        client.update(rt_id, {"Status": "bogus"})
    assert refused.value.permanent
    assert "Status 'bogus' isn't a valid status" in str(refused.value)
    assert as_root(rt_server, f"/ticket/{rt_id}")["Status"] == "new"


def test_unknown_field_is_refused_before_rt_ignores_it(client: RtClient) -> None:
    rt_id = open_ticket(client)
    with pytest.raises(RtError) as refused:
        client.update(rt_id, {"Prio": 20})
    assert refused.value.permanent and "Prio" in str(refused.value)


def test_missing_ticket_is_permanent(client: RtClient) -> None:
    with pytest.raises(RtError) as missing:
        client.update(999_999, {"Priority": 20})
    assert missing.value.permanent and missing.value.status == 404
    with pytest.raises(RtError) as note:
        client.comment(999_999, subject="x", content="y")
    assert note.value.permanent and "could not be recorded" in str(note.value)


def test_create_in_a_queue_it_may_not_use_is_permanent(client: RtClient) -> None:
    with pytest.raises(RtError) as refused:
        client.create(queue="No Such Queue", subject="s", requestors=[], priority=20,
                      content="c", key_value=new_key())
    assert refused.value.permanent and refused.value.status == 403
    assert "No Such Queue" in str(refused.value)


def test_changed_since_finds_tickets_with_a_key_updated_since(
        client: RtClient, staff: RtClient, rt_server: RtServer) -> None:
    # RT's own time zone is America/New_York here: a date sent in the wrong zone would
    # move the limit by hours and miss the ticket changed just now.
    since = time.time() - 1
    with_key = open_ticket(client)
    without_key = int(as_staff(rt_server, "/ticket", {
        "Queue": "General", "Subject": "printer", "Content": "jammed",
        "ContentType": "text/plain"})["id"])
    changed = client.changed_since(since)
    assert with_key in changed
    assert without_key not in changed
    assert changed == sorted(changed)
    assert with_key not in client.changed_since(time.time() + 3600)
    # Staff work on an older ticket brings it back.
    older = open_ticket(client)
    time.sleep(1.1)  # RT keeps LastUpdated to the second
    later = time.time()
    assert older not in client.changed_since(later)
    staff.comment(older, subject="Looking", content="On it.")
    assert older in client.changed_since(later)


def test_token_authentication_and_a_wrong_token(rt_server: RtServer, rt_token: str) -> None:
    with RtClient(settings_for(rt_server.url, token=rt_token)) as good:
        assert good.find_by_key(new_key()) is None
    wrong = "1-28-" + "0" * 32
    with RtClient(settings_for(rt_server.url, token=wrong)) as bad, \
            pytest.raises(RtError) as refused:
        bad.find_by_key(new_key())
    assert not refused.value.permanent and refused.value.status == 401
    assert "RT refused the credentials of user 'watchkeeper'" in str(refused.value)
    assert wrong not in str(refused.value)


def test_wrong_password_is_the_same_clear_error(rt_server: RtServer) -> None:
    with RtClient(settings_for(rt_server.url, password="not-it")) as bad, \
            pytest.raises(RtError) as refused:
        bad.comment(1, subject="s", content="c")
    assert refused.value.status == 401 and "not-it" not in str(refused.value)


def test_rt_stopped_is_not_permanent(client: RtClient, rt_server: RtServer) -> None:
    rt_id = open_ticket(client)
    rt_server.stop()
    try:
        with pytest.raises(RtError) as down:
            client.update(rt_id, {"Priority": 60})
        assert not down.value.permanent and down.value.status is None
        assert rt_server.url in str(down.value)
    finally:
        rt_server.start()
    client.update(rt_id, {"Priority": 60})
    assert client.history(rt_id)[-1].new == "60"


def test_lost_answer_to_create_leaves_the_ticket_findable(rt_server: RtServer,
                                                          rt_token: str) -> None:
    with FaultProxy(rt_server.port) as proxy, \
            RtClient(settings_for(proxy.url, token=rt_token)) as client:
        key = new_key()
        proxy.drop_response_of("POST", "/REST/2.0/ticket", times=1)
        with pytest.raises(RtError) as lost:
            open_ticket(client, key)
        assert not lost.value.permanent
        assert proxy.requests[("POST", "/REST/2.0/ticket")] == 1
        # RT did create it: the retry looks it up instead of opening a second one.
        found = client.find_by_key(key)
        assert found is not None
        assert as_root(rt_server, f"/ticket/{found}")["Priority"] == "80"


def test_connection_refused_while_down_is_not_permanent(rt_server: RtServer,
                                                        rt_token: str) -> None:
    with FaultProxy(rt_server.port) as proxy, \
            RtClient(settings_for(proxy.url, token=rt_token)) as client:
        proxy.down()
        with pytest.raises(RtError) as refused:
            client.find_by_key(new_key())
        assert not refused.value.permanent
        proxy.up()
        assert client.find_by_key(new_key()) is None


def test_check_passes_on_a_set_up_rt_and_names_a_missing_queue(client: RtClient) -> None:
    lines = client.check("General")
    assert [what for what, _, _ in lines] == [
        "reachable", "authenticated", "time zone", "queue", "key field", "search"]
    assert all(ok for _, ok, _ in lines), lines
    assert "as watchkeeper" in lines[1][2]
    missing = client.check("No Such Queue")
    assert missing[-1][0] == "queue" and not missing[-1][1]
    assert "No Such Queue" in missing[-1][2]


def test_loading_the_setup_file_again_adds_no_second_key_field(client: RtClient,
                                                                rt_server: RtServer) -> None:
    rt_service.load_initialdata(rt_server, rt_service.WATCHKEEPER_INITIALDATA)
    response = httpx.post(f"{rt_server.url}/REST/2.0/customfields", params={"fields": "Name"},
                          json=[{"field": "Name", "value": KEY_FIELD}],
                          auth=("root", rt_server.root_password), timeout=30)
    assert [f["Name"] for f in response.json()["items"]] == [KEY_FIELD]
    assert all(ok for _, ok, _ in client.check("General"))


def test_check_reports_refused_credentials(rt_server: RtServer) -> None:
    with RtClient(settings_for(rt_server.url, token="1-28-" + "0" * 32)) as bad:
        lines = bad.check("General")
    assert lines[0][:2] == ("reachable", True)
    assert lines[1][:2] == ("authenticated", False)
    assert "refused the credentials" in lines[1][2]


def test_a_missing_rt_names_the_debian_packages(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rt_service, "SETUP_DATABASE", tmp_path / "rt-setup-database-5")
    with pytest.raises(rt_service.RtUnavailable) as missing:
        rt_service.start_rt(tmp_path / "rt")
    assert "request-tracker5" in str(missing.value) and "rt5-db-sqlite" in str(missing.value)
