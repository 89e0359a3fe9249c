"""Users, roles and API tokens: who may read what, on both stores.

Every read endpoint wants a user (API token or HTTP Basic); a host token only pushes; a
viewer sees its own customer and nothing of another (404, never 403, and absent from lists).
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from sqlalchemy import select

from collector.cli import main as collector_main
from collector.db import create_db_engine, write_transaction
from collector.people import service as people
from collector.people.models import ApiToken
from tests.collector.conftest import add_user, bearer

READ_PATHS = ["/api/v1/hosts", "/api/v1/hosts/db1.acme.example", "/api/v1/problems",
              "/api/v1/tickets", "/api/v1/tickets/1", "/api/v1/audit"]


def basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


@pytest.fixture
def two_customers(settings, enroll_host, start_collector, make_batch, result):
    """acme (db1, failing disk) and globex (db2, failing load), pushed by their agents."""
    client = start_collector(settings, role=None)
    for fqdn, customer, check in (("db1.acme.example", "acme", "disk"),
                                  ("db2.globex.example", "globex", "load")):
        token = enroll_host(settings, fqdn, customer)
        answer = client.post("/api/v1/results", headers=bearer(token),
                             json=make_batch(fqdn, [result(check=check, status=2)]))
        assert answer.status_code == 202, answer.text
    return client


def test_every_read_endpoint_wants_a_user(two_customers):
    client = two_customers
    for path in READ_PATHS:
        answer = client.get(path)
        assert answer.status_code == 401, path
        assert answer.json()["error"] == "not_authenticated"
        assert "Bearer" in answer.json()["detail"], path
        assert 'Basic realm="watchkeeper"' in answer.headers["WWW-Authenticate"], path
    page = client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2F"
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_a_host_token_pushes_but_reads_nothing(settings, enroll_host, two_customers,
                                               make_batch, result):
    client = two_customers
    token = enroll_host(settings, "db3.acme.example", "acme")
    for path in READ_PATHS:
        answer = client.get(path, headers=bearer(token))
        assert answer.status_code == 401, path
        assert "host token" in answer.json()["detail"]
    pushed = client.post("/api/v1/results", headers=bearer(token),
                         json=make_batch("db3.acme.example", [result()]))
    assert pushed.status_code == 202


@pytest.mark.parametrize("role", ["admin", "tse", "noc"])
def test_staff_read_every_customer(settings, two_customers, role):
    headers = bearer(add_user(settings, f"someone-{role}", role, password="staff horse"))
    client = two_customers
    hosts = client.get("/api/v1/hosts", headers=headers).json()
    assert [h["fqdn"] for h in hosts] == ["db1.acme.example", "db2.globex.example"]
    problems = client.get("/api/v1/problems", headers=headers).json()
    assert {p["host"] for p in problems} == {"db1.acme.example", "db2.globex.example"}
    assert client.get("/api/v1/hosts/db2.globex.example", headers=headers).status_code == 200
    page = client.browser(f"someone-{role}", "staff horse").get("/")
    assert page.status_code == 200 and "db2.globex.example" in page.text


def test_a_viewer_sees_its_customer_only(settings, two_customers):
    client = two_customers
    headers = bearer(add_user(settings, "acme-ops", "viewer", customer="acme",
                              password="acme horse"))
    hosts = client.get("/api/v1/hosts", headers=headers).json()
    assert [h["fqdn"] for h in hosts] == ["db1.acme.example"]
    problems = client.get("/api/v1/problems", headers=headers).json()
    assert [(p["customer"], p["host"]) for p in problems] == [("acme", "db1.acme.example")]
    own = client.get("/api/v1/hosts/db1.acme.example", headers=headers)
    assert own.status_code == 200 and own.json()["checks"][0]["status"] == 2
    other = client.get("/api/v1/hosts/db2.globex.example", headers=headers)
    unknown = client.get("/api/v1/hosts/nope.globex.example", headers=headers)
    assert other.status_code == unknown.status_code == 404
    assert other.json()["error"] == unknown.json()["error"] == "not_found"
    page = client.browser("acme-ops", "acme horse").get("/")
    assert "db1.acme.example" in page.text and "globex" not in page.text


def test_a_viewer_needs_a_known_customer_and_only_a_viewer_has_one(settings):
    engine = create_db_engine(settings)
    try:
        with pytest.raises(people.PeopleError, match="customer: a viewer needs"):
            with write_transaction(engine) as conn:
                people.create_user(conn, name="v", role="viewer", now=1.0)
        with pytest.raises(people.PeopleError, match="customer: no customer 'initech'"):
            with write_transaction(engine) as conn:
                people.create_user(conn, name="v", role="viewer", customer="initech", now=1.0)
        with pytest.raises(people.PeopleError, match="customer: only a viewer"):
            with write_transaction(engine) as conn:
                people.create_user(conn, name="n", role="noc", customer="initech", now=1.0)
        with write_transaction(engine) as conn:  # configured, not yet enrolled: fine
            people.create_user(conn, name="v", role="viewer", customer="initech",
                               known_customers={"initech"}, now=1.0)
        with pytest.raises(people.UserExists, match="name: a user 'v' exists"):
            with write_transaction(engine) as conn:
                people.create_user(conn, name="v", role="noc", now=1.0)
        with pytest.raises(people.PeopleError, match="role: must be one of"):
            with write_transaction(engine) as conn:
                people.create_user(conn, name="w", role="root", now=1.0)
    finally:
        engine.dispose()


def test_expired_revoked_and_disabled_are_refused(settings, start_collector, clock):
    client = start_collector(settings, clock, role=None)
    expiring = add_user(settings, "temp", "noc", expires_at=clock.now + 3600)
    assert client.get("/api/v1/hosts", headers=bearer(expiring)).status_code == 200
    clock.advance(3601)
    expired = client.get("/api/v1/hosts", headers=bearer(expiring))
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]

    token = add_user(settings, "leaver", "tse")
    assert client.get("/api/v1/hosts", headers=bearer(token)).status_code == 200
    engine = create_db_engine(settings)
    try:
        with write_transaction(engine) as conn:
            people.set_disabled(conn, "leaver")
        refused = client.get("/api/v1/hosts", headers=bearer(token))
        assert refused.status_code == 401 and "disabled" in refused.json()["detail"]
        with write_transaction(engine) as conn:
            people.set_disabled(conn, "leaver", disabled=False)
        assert client.get("/api/v1/hosts", headers=bearer(token)).status_code == 200
        with write_transaction(engine) as conn:
            token_id = people.list_tokens(conn, user="leaver")[0].id
            people.revoke_token(conn, token_id)
        revoked = client.get("/api/v1/hosts", headers=bearer(token))
        assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
    finally:
        engine.dispose()


def test_basic_login_with_the_password_only(settings, start_collector):
    client = start_collector(settings, role=None)
    add_user(settings, "nina", "noc", password="correct horse")
    add_user(settings, "tokenonly", "noc")
    assert client.get("/api/v1/hosts", headers=basic("nina", "correct horse")).status_code == 200
    for name, password in (("nina", "wrong horse"), ("nobody", "correct horse"),
                           ("tokenonly", "")):
        answer = client.get("/api/v1/hosts", headers=basic(name, password))
        assert answer.status_code == 401, name
        assert answer.json()["detail"] == "wrong user name or password"
    garbled = client.get("/api/v1/hosts", headers={"Authorization": "Basic !!!"})
    assert garbled.status_code == 401 and "base64" in garbled.json()["detail"]
    other = client.get("/api/v1/hosts", headers={"Authorization": "Token abc"})
    assert other.status_code == 401 and "Bearer" in other.json()["detail"]


def test_a_new_password_or_a_disabled_user_counts_at_once(settings, start_collector):
    """A login verified a moment ago is not trusted after the password changed or the user
    was disabled."""
    client = start_collector(settings, role=None)
    add_user(settings, "nina", "noc", password="first password")
    assert client.get("/api/v1/hosts", headers=basic("nina", "first password")).status_code == 200
    engine = create_db_engine(settings)
    try:
        with write_transaction(engine) as conn:
            people.set_password(conn, "nina", "second password")
        old = client.get("/api/v1/hosts", headers=basic("nina", "first password"))
        assert old.status_code == 401
        new = client.get("/api/v1/hosts", headers=basic("nina", "second password"))
        assert new.status_code == 200
        with write_transaction(engine) as conn:
            people.set_disabled(conn, "nina")
        gone = client.get("/api/v1/hosts", headers=basic("nina", "second password"))
        assert gone.status_code == 401 and "disabled" in gone.json()["detail"]
    finally:
        engine.dispose()


def test_passwords_are_salted_scrypt():
    first, second = people.hash_password("same password"), people.hash_password("same password")
    assert first != second and first.startswith("scrypt$")
    assert people.verify_password("same password", first)
    assert not people.verify_password("same passworD", first)
    assert not people.verify_password("anything", None)
    with pytest.raises(people.PeopleError, match="password: must be at least 8"):
        people.hash_password("short")


def test_last_use_is_written_at_most_once_a_minute(settings, start_collector, clock):
    client = start_collector(settings, clock, role=None)
    token = add_user(settings, "ops", "noc")
    engine = create_db_engine(settings)

    def last_used() -> float | None:
        with engine.connect() as conn:
            return conn.execute(select(ApiToken.last_used_at)).scalar_one()

    try:
        assert last_used() is None
        client.get("/api/v1/hosts", headers=bearer(token))
        first = last_used()
        assert first == pytest.approx(clock.now)
        clock.advance(30)
        client.get("/api/v1/hosts", headers=bearer(token))
        assert last_used() == first
        clock.advance(31)
        client.get("/api/v1/hosts", headers=bearer(token))
        assert last_used() == pytest.approx(clock.now)
    finally:
        engine.dispose()


def _config(settings, tmp_path: Path) -> str:
    path = tmp_path / "collector.toml"
    path.write_text(f'[database]\nurl = "{settings.database.url}"\n\n[customers.acme]\n')
    return str(path)


def test_cli_round_trip(settings, tmp_path, start_collector, capsys, monkeypatch):
    config = _config(settings, tmp_path)
    client = start_collector(settings, role=None)
    monkeypatch.setattr("sys.stdin", _Lines("s3cret-enough\n"))
    assert collector_main(["user", "add", "tess", "--role", "tse", "--email", "t@example.net",
                           "--password-stdin", "--config", config]) == 0
    assert collector_main(["user", "add", "vic", "--role", "viewer", "--customer", "acme",
                           "--config", config]) == 0
    capsys.readouterr()
    assert collector_main(["token", "create", "--user", "tess", "--name", "laptop",
                           "--expires", "90d", "--config", config]) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("wkp_") and "shown only once" in out.err
    assert client.get("/api/v1/hosts", headers=bearer(token)).status_code == 200
    assert client.get("/api/v1/hosts", headers=basic("tess", "s3cret-enough")).status_code == 200

    assert collector_main(["user", "list", "--config", config]) == 0
    listing = capsys.readouterr().out
    assert "tess\ttse\t-\tt@example.net\tpassword" in listing
    assert "vic\tviewer\tacme\t" in listing
    assert collector_main(["token", "list", "--config", config]) == 0
    token_id = capsys.readouterr().out.split("\t")[0]
    assert token not in listing
    assert collector_main(["token", "revoke", token_id, "--config", config]) == 0
    assert client.get("/api/v1/hosts", headers=bearer(token)).status_code == 401
    assert collector_main(["user", "disable", "tess", "--config", config]) == 0
    assert client.get("/api/v1/hosts", headers=basic("tess", "s3cret-enough")).status_code == 401


@pytest.mark.parametrize(("argv", "named"), [
    (["user", "add", "v2", "--role", "viewer"], "--customer: a viewer needs"),
    (["user", "add", "n2", "--role", "noc", "--customer", "acme"], "--customer: only a viewer"),
    (["user", "add", "v3", "--role", "viewer", "--customer", "nope"], "--customer: no customer"),
    (["token", "create", "--user", "ghost"], "--user: no user 'ghost'"),
    (["token", "create", "--user", "admin1", "--expires", "soon"], "--expires"),
    (["token", "create", "--user", "admin1", "--expires", "0"], "--expires"),
    (["token", "revoke", "x"], "ID: a token id is a number"),
    (["token", "revoke", "999"], "ID: no token with id 999"),
    (["user", "disable", "ghost"], "NAME: no user 'ghost'"),
])
def test_cli_errors_name_the_argument(settings, tmp_path, capsys, argv, named):
    config = _config(settings, tmp_path)
    assert collector_main(["user", "add", "admin1", "--role", "admin", "--config", config]) == 0
    capsys.readouterr()
    assert collector_main([*argv, "--config", config]) == 2
    assert named in capsys.readouterr().err


def test_cli_refuses_an_unknown_role(settings, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        collector_main(["user", "add", "x", "--role", "root",
                        "--config", _config(settings, tmp_path)])
    assert exit_info.value.code == 2
    assert "--role" in capsys.readouterr().err


def test_cli_refuses_a_short_password_and_adds_nobody(settings, tmp_path, capsys, monkeypatch):
    config = _config(settings, tmp_path)
    monkeypatch.setattr("sys.stdin", _Lines("short\n"))
    assert collector_main(["user", "add", "pat", "--role", "noc", "--password-stdin",
                           "--config", config]) == 2
    assert "--password-stdin: must be at least 8 characters" in capsys.readouterr().err
    assert collector_main(["user", "list", "--config", config]) == 0
    assert "pat" not in capsys.readouterr().out


class _Lines:
    def __init__(self, text: str) -> None:
        self._lines = text.splitlines(keepends=True)

    def readline(self) -> str:
        return self._lines.pop(0) if self._lines else ""
