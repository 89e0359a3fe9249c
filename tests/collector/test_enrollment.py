"""Enrollment by secret (POST /api/v1/enroll) as a host and an operator see it, on both
stores: the token comes once and pushes, a secret never replaces a token, a wrong or
another customer's secret is refused with a clear error, and the audit log says who
enrolled; the secret itself is stored nowhere in the database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from collector.db import create_db_engine, migrate
from collector.settings import EnrollmentSettings, Settings
from tests.collector.conftest import AppClient, bearer, settings_for

GLOBAL_SECRET = "global-enrollment-secret-0123456789"
ACME_SECRET = "acme-enrollment-secret-9876543210"


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "global").write_text(GLOBAL_SECRET + "\n")
    (folder / "acme").write_text(ACME_SECRET + "\n")
    return folder


def with_enrollment(settings: Settings, **keys: Any) -> Settings:
    return settings.model_copy(update={"enrollment": EnrollmentSettings(**keys)})


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """Settings on a migrated SQLite store, for what does not depend on the store."""
    built = settings_for(f"sqlite:///{tmp_path / 'watchkeeper.db'}")
    engine = create_db_engine(built)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    return built


def _collector(settings: Settings, secrets_dir: Path,
               start_collector: Callable[..., AppClient]) -> AppClient:
    enrolling = with_enrollment(settings, secret_file=secrets_dir / "global",
                                secret_files={"acme": secrets_dir / "acme"})
    return start_collector(enrolling, role=None)


@pytest.fixture
def collector(settings: Settings, secrets_dir: Path,
              start_collector: Callable[..., AppClient]) -> AppClient:
    """A collector taking the global secret and acme's own, on each store."""
    return _collector(settings, secrets_dir, start_collector)


@pytest.fixture
def sqlite_collector(sqlite_settings: Settings, secrets_dir: Path,
                     start_collector: Callable[..., AppClient]) -> AppClient:
    """The same on SQLite only: the secret checks do not depend on the store."""
    return _collector(sqlite_settings, secrets_dir, start_collector)


def enroll(client: AppClient, secret: str | None, customer: str = "acme",
           fqdn: str = "web1.acme.example", **extra: Any) -> Any:
    headers = bearer(secret) if secret is not None else {}
    return client.post("/api/v1/enroll", headers=headers,
                       json={"customer": customer, "fqdn": fqdn, **extra})


def audit(client: AppClient, settings: Settings) -> list[dict[str, Any]]:
    from tests.collector.conftest import add_user

    admin = bearer(add_user(settings, "auditor", "admin"))
    answer = client.get("/api/v1/audit", headers=admin, params={"kind": "host_enrolled"})
    assert answer.status_code == 200, answer.text
    entries: list[dict[str, Any]] = answer.json()
    return entries


def test_a_host_enrolls_once_and_its_token_pushes(collector, settings, make_batch) -> None:
    answer = enroll(collector, GLOBAL_SECRET, tags=["billing", "db"])
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["fqdn"] == "web1.acme.example" and body["customer"] == "acme"
    token = body["token"]
    assert len(token) >= 40

    pushed = collector.post("/api/v1/results", headers=bearer(token),
                            json=make_batch("web1.acme.example"))
    assert pushed.status_code == 202, pushed.text

    again = enroll(collector, GLOBAL_SECRET)
    assert again.status_code == 409
    assert again.json()["error"] == "already_enrolled"
    assert "does not replace a token" in again.json()["detail"]
    # The first token still pushes: the refused enrollment changed nothing.
    assert collector.post("/api/v1/results", headers=bearer(token),
                          json=make_batch("web1.acme.example")).status_code == 202

    entries = audit(collector, settings)
    assert len(entries) == 1
    entry = entries[0]
    assert entry["customer"] == "acme"
    assert entry["actor"] == "enrollment secret global from 127.0.0.1"
    assert entry["data"]["fqdn"] == "web1.acme.example"
    assert entry["data"]["tags"] == ["billing", "db"]


def test_the_secret_and_the_token_are_stored_nowhere(collector, settings) -> None:
    token = enroll(collector, ACME_SECRET).json()["token"]
    engine = create_db_engine(settings)
    try:
        with engine.connect() as conn:
            rows = [
                repr(tuple(row))
                for table in ("hosts", "customers", "ticket_events")
                for row in conn.execute(text(f"SELECT * FROM {table}"))
            ]
    finally:
        engine.dispose()
    dump = "\n".join(rows)
    assert "web1.acme.example" in dump
    assert ACME_SECRET not in dump and GLOBAL_SECRET not in dump
    assert token not in dump


def test_a_customer_secret_enrolls_that_customer_only(collector, settings) -> None:
    refused = enroll(collector, ACME_SECRET, customer="globex", fqdn="db1.globex.example")
    assert refused.status_code == 403
    assert refused.json() == {
        "error": "forbidden",
        "detail": "this enrollment secret does not enroll hosts of customer 'globex'"}
    accepted = enroll(collector, ACME_SECRET)
    assert accepted.status_code == 201, accepted.text
    assert [e["actor"] for e in audit(collector, settings)] == [
        "enrollment secret customer:acme from 127.0.0.1"]
    # The global secret enrolls any customer, a new one included.
    assert enroll(collector, GLOBAL_SECRET, customer="globex",
                  fqdn="db1.globex.example").status_code == 201


@pytest.mark.parametrize("secret, detail", [
    (None, "no enrollment secret: send 'Authorization: Bearer <secret>'"),
    ("not-the-secret-at-all-0000000", "the enrollment secret is not valid"),
])
def test_a_missing_or_wrong_secret_is_401(sqlite_collector, secret, detail) -> None:
    collector = sqlite_collector
    answer = enroll(collector, secret)
    assert answer.status_code == 401
    assert answer.json() == {"error": "not_authenticated", "detail": detail}
    assert answer.headers["www-authenticate"].startswith("Bearer")
    # Nothing was enrolled: the right secret still can.
    assert enroll(collector, ACME_SECRET).status_code == 201


def test_an_unusable_body_is_422_naming_the_field(sqlite_collector) -> None:
    collector = sqlite_collector
    bad_name = enroll(collector, GLOBAL_SECRET, fqdn="web 1; rm -rf /")
    assert bad_name.status_code == 422
    assert "fqdn" in bad_name.json()["detail"]
    extra = enroll(collector, GLOBAL_SECRET, critical=True)
    assert extra.status_code == 422
    assert "critical" in extra.json()["detail"]


def test_enrollment_is_off_without_a_secret(sqlite_settings, start_collector) -> None:
    client = start_collector(sqlite_settings, role=None)
    answer = enroll(client, GLOBAL_SECRET)
    assert answer.status_code == 403
    assert "enrollment by secret is off" in answer.json()["detail"]


@pytest.mark.parametrize("content", [None, "short"])
def test_an_unreadable_or_short_secret_file_stops_enrollment(
    sqlite_settings, start_collector, tmp_path, content, caplog,
) -> None:
    secret_file = tmp_path / "enroll-secret"
    if content is not None:
        secret_file.write_text(content)
    client = start_collector(with_enrollment(sqlite_settings, secret_file=secret_file),
                             role=None)
    answer = enroll(client, "short" if content else GLOBAL_SECRET)
    assert answer.status_code == 503
    assert answer.json()["error"] == "enrollment_unavailable"
    # The path is in the collector's log, not in the answer to an unauthenticated client.
    assert str(secret_file) not in answer.text
    assert str(secret_file) in caplog.text
