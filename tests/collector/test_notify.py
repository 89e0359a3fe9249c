"""The outbox: who is told, stored once, delivered over real SMTP and a real webhook.

The SMTP server is aiosmtpd with STARTTLS and AUTH (tests/services/smtp.py); the webhook
receiver is Python's http.server in a thread. Both listen on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from collector.db import create_db_engine, migrate, write_transaction
from collector.notify.models import Notification
from collector.notify.scheduled import backoff, claim, deliver, send_due
from collector.notify.senders import message_id
from collector.notify.service import OutboxSummary, notify, outbox_summary, recipients_for
from collector.settings import Settings
from tests.collector.conftest import FakeClock, settings_for
from tests.services.smtp import SmtpServer, start_smtp
from tests.support.ports import free_port
from tests.support.tls import self_signed

T0 = 1_795_000_000.0


# ---------------------------------------------------------------------------- helpers


@dataclass
class Hook:
    """One request the webhook receiver got."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class WebhookReceiver:
    """A real HTTP(S) server on 127.0.0.1 that records POSTs and answers ``status``."""

    port: int
    scheme: str = "http"
    requests: list[Hook] = field(default_factory=list)
    status: int = 200
    on_request: Callable[[Hook], None] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/hooks/watchkeeper"


@contextmanager
def serve_webhook(tls: tuple[Path, Path] | None = None) -> Iterator[WebhookReceiver]:
    """A receiver running in a thread; HTTPS with ``tls`` = (cert, key)."""
    receiver = WebhookReceiver(port=free_port(), scheme="https" if tls else "http")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            hook = Hook(self.path, dict(self.headers.items()), body)
            receiver.requests.append(hook)
            if receiver.on_request is not None:
                receiver.on_request(hook)
            self.send_response(receiver.status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if receiver.status < 300 else b"no thanks")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", receiver.port), Handler)
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with serve_webhook() as receiver:
        yield receiver


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = start_smtp(tmp_path, username="watchkeeper", password="s3cret")
    try:
        yield server
    finally:
        server.stop()


def make_settings(db_url: str, tmp_path: Path, *, smtp: SmtpServer | None = None,
                  webhook: WebhookReceiver | None = None, password: str = "s3cret",
                  security: str = "starttls", webhook_ca: Path | None = None,
                  **notifications: Any) -> Settings:
    section: dict[str, Any] = {
        "recipients": {"tsm": ["tsm@support.example"], "crm": ["crm@support.example"],
                       "cto": ["cto@support.example"]},
        "retry_first": 30, "retry_max": 600, "max_attempts": 5, "lease": 60,
        **notifications,
    }
    if smtp is not None:
        secret = tmp_path / "smtp-password"
        secret.write_text(password + "\n")
        section["smtp"] = {"host": "127.0.0.1", "port": smtp.port, "security": security,
                           "username": "watchkeeper", "password_file": str(secret),
                           "ca_file": str(smtp.ca_file) if smtp.ca_file else None,
                           "sender": "watchkeeper@support.example", "timeout": 5}
        if smtp.ca_file is None:
            del section["smtp"]["ca_file"]
    if webhook is not None:
        token = tmp_path / "webhook-token"
        token.write_text("hook-token-1\n")
        section["webhook"] = {"url": webhook.url, "token_file": str(token), "timeout": 5}
        if webhook_ca is not None:
            section["webhook"]["ca_file"] = str(webhook_ca)
    return settings_for(
        db_url, notifications=section,
        customers={"acme": {"contacts": ["noc@acme.example", "ops@acme.example"],
                            "recipients": {"crm": ["acme-crm@support.example"]}},
                   "globex": {"contacts": [], "recipients": {"cto": []}}})


@pytest.fixture
def engine_for() -> Iterator[Any]:
    engines: list[Engine] = []

    def _make(settings: Settings) -> Engine:
        engine = create_db_engine(settings)
        migrate(engine)
        engines.append(engine)
        return engine

    yield _make
    for engine in engines:
        engine.dispose()


def decide(engine: Engine, settings: Settings, *, key: str = "opened/1", kind: str = "opened",
           roles: tuple[str, ...] = ("customer",), customer: str = "acme",
           subject: str = "db1.acme.example: replication CRITICAL", now: float = T0) -> int:
    with write_transaction(engine) as conn:
        return notify(conn, key=key, kind=kind, roles=roles, customer=customer,
                      ticket_id=None, subject=subject,
                      body=f"Monitoring opened a request.\n\nKey: {key}\n",
                      data={"n": 1}, settings=settings, now=now)


def rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(Notification).order_by(Notification.id)).mappings()]


# ---------------------------------------------------------------------------- recipients


def test_recipients_come_from_the_customer_then_the_defaults(tmp_path):
    settings = make_settings("sqlite:///unused.db", tmp_path)
    assert recipients_for(settings, customer="acme", role="customer") == [
        "noc@acme.example", "ops@acme.example"]
    assert recipients_for(settings, customer="acme", role="crm") == ["acme-crm@support.example"]
    assert recipients_for(settings, customer="acme", role="tsm") == ["tsm@support.example"]
    # an empty list of the customer's own means nobody, not the default
    assert recipients_for(settings, customer="globex", role="cto") == []
    # a customer not in the config: the defaults, and no contacts
    assert recipients_for(settings, customer="initech", role="cto") == ["cto@support.example"]
    assert recipients_for(settings, customer="initech", role="customer") == []
    # the escalation matrix's full role names mean the same roles
    assert recipients_for(settings, customer="acme",
                          role="technical_support_manager") == ["tsm@support.example"]
    with pytest.raises(ValueError, match="'ceo'"):
        recipients_for(settings, customer="acme", role="ceo")


# ---------------------------------------------------------------------------- deciding


def test_a_notice_decided_twice_is_stored_once(db_url, tmp_path, smtp, webhook, engine_for):
    settings = make_settings(db_url, tmp_path, smtp=smtp, webhook=webhook)
    engine = engine_for(settings)
    # two contacts by mail, and the webhook
    assert decide(engine, settings) == 3
    assert decide(engine, settings, now=T0 + 5) == 0
    stored = rows(engine)
    assert sorted((r["channel"], r["recipient"]) for r in stored) == [
        ("email", "noc@acme.example"), ("email", "ops@acme.example"),
        ("webhook", webhook.url)]
    assert {r["dedup_key"] for r in stored} == {
        "opened/1/email/noc@acme.example", "opened/1/email/ops@acme.example",
        f"opened/1/webhook/{webhook.url}"}
    assert all(r["state"] == "pending" and r["created_at"] == T0 for r in stored)


def test_an_address_in_several_roles_gets_one_mail(db_url, tmp_path, smtp, engine_for):
    settings = make_settings(db_url, tmp_path, smtp=smtp,
                             recipients={"tsm": ["boss@support.example"],
                                         "cto": ["boss@support.example"]})
    engine = engine_for(settings)
    assert decide(engine, settings, key="x/1", roles=("tsm", "cto"), customer="initech") == 1
    (row,) = rows(engine)
    assert row["recipient"] == "boss@support.example"
    assert row["payload"]["roles"] == ["tsm", "cto"]


def test_a_notice_with_nobody_to_tell_stores_nothing(db_url, tmp_path, smtp, webhook,
                                                     engine_for):
    # mail configured, but the role has no address for this customer, and no webhook
    settings = make_settings(db_url, tmp_path, smtp=smtp)
    engine = engine_for(settings)
    assert decide(engine, settings, key="esc/9/cto", roles=("cto",), customer="globex") == 0
    # no channel configured at all
    bare = make_settings(db_url, tmp_path)
    assert decide(engine, bare, key="esc/9/tsm", roles=("tsm",)) == 0
    assert rows(engine) == []


def test_a_long_key_is_shortened_yet_unique(db_url, tmp_path, webhook, engine_for):
    settings = make_settings(db_url, tmp_path, webhook=webhook)
    engine = engine_for(settings)
    long_a, long_b = "k/" + "a" * 400, "k/" + "a" * 399 + "b"
    assert decide(engine, settings, key=long_a) == 1
    assert decide(engine, settings, key=long_b) == 1
    assert decide(engine, settings, key=long_a) == 0
    assert all(len(r["dedup_key"]) <= 255 for r in rows(engine))


# ---------------------------------------------------------------------------- SMTP


def test_the_customer_gets_the_mail_over_starttls_with_auth(db_url, tmp_path, smtp,
                                                             engine_for):
    settings = make_settings(db_url, tmp_path, smtp=smtp)
    engine = engine_for(settings)
    with write_transaction(engine) as conn:
        notify(conn, key="opened/123", kind="opened", roles=["customer"], customer="acme",
               ticket_id=None, subject="[watchkeeper #123] db1: replication CRITICAL",
               body="Request #123 was opened.\n", data={}, settings=settings, now=T0)
    clock = FakeClock(T0 + 1)
    report = send_due(engine, settings.notifications, clock=clock)
    assert len(report.sent) == 2 and not report.retried and not report.dead
    mails = smtp.wait_for(2)
    assert sorted(m.rcpt_tos[0] for m in mails) == ["noc@acme.example", "ops@acme.example"]
    for mail in mails:
        assert mail.tls and mail.login == "watchkeeper"
        assert mail.subject == "[watchkeeper #123] db1: replication CRITICAL"
        assert mail.message["From"] == "watchkeeper@support.example"
        assert "Request #123 was opened." in mail.body
        key = f"opened/123/email/{mail.rcpt_tos[0]}"
        assert mail.message["Message-ID"] == message_id(key, "watchkeeper@support.example")
    assert {(r["state"], r["sent_at"], r["attempts"]) for r in rows(engine)} == {
        ("sent", T0 + 1, 1)}
    # nothing more to send
    assert send_due(engine, settings.notifications, clock=clock).claimed == 0
    assert len(smtp.messages) == 2


def test_smtp_down_is_retried_with_backoff_and_nothing_is_lost(db_url, tmp_path, smtp,
                                                                engine_for):
    settings = make_settings(db_url, tmp_path, smtp=smtp)
    engine = engine_for(settings)
    decide(engine, settings, key="opened/1")
    decide(engine, settings, key="opened/2")
    smtp.stop()
    clock = FakeClock(T0)
    first = send_due(engine, settings.notifications, clock=clock, rnd=lambda: 0.5)
    # one try failed; the other three were put back untried, due with it
    assert len(first.retried) == 1 and not first.sent and not first.dead
    stored = rows(engine)
    assert all(r["state"] == "pending" for r in stored)
    assert sum(r["attempts"] for r in stored) == 1
    assert {r["next_attempt_at"] for r in stored} == {T0 + 30}
    with engine.connect() as conn:
        assert outbox_summary(conn, now=T0) == OutboxSummary(
            pending=4, due=0, sent=0, dead=0, oldest_due_seconds=0.0)
        assert outbox_summary(conn, now=T0 + 40) == OutboxSummary(
            pending=4, due=4, sent=0, dead=0, oldest_due_seconds=10.0)
    assert all("Connection" in r["last_error"] or "refused" in r["last_error"]
               for r in stored)
    # before the backoff ends nothing is tried
    clock.now = T0 + 29
    assert send_due(engine, settings.notifications, clock=clock).claimed == 0
    clock.now = T0 + 30
    second = send_due(engine, settings.notifications, clock=clock, rnd=lambda: 0.5)
    assert len(second.retried) == 1
    tried = max(rows(engine), key=lambda r: r["attempts"])
    assert tried["attempts"] == 2 and tried["next_attempt_at"] == T0 + 30 + 60
    # the server comes back: everything goes out, once
    smtp.start()
    clock.now = T0 + 90
    third = send_due(engine, settings.notifications, clock=clock)
    assert len(third.sent) == 4
    assert sorted(m.rcpt_tos[0] for m in smtp.wait_for(4)) == [
        "noc@acme.example", "noc@acme.example", "ops@acme.example", "ops@acme.example"]
    assert all(r["state"] == "sent" and r["last_error"] is None for r in rows(engine))
    clock.now = T0 + 10_000
    assert send_due(engine, settings.notifications, clock=clock).claimed == 0
    assert len(smtp.messages) == 4


def test_a_recipient_the_server_refuses_for_good_is_dead_the_others_go(db_url, tmp_path,
                                                                      smtp, engine_for):
    settings = make_settings(db_url, tmp_path, smtp=smtp)
    engine = engine_for(settings)
    smtp.refuse("ops@acme.example")
    decide(engine, settings)
    report = send_due(engine, settings.notifications, clock=FakeClock(T0))
    assert (len(report.sent), len(report.dead), len(report.retried)) == (1, 1, 0)
    by_address = {r["recipient"]: r for r in rows(engine)}
    assert by_address["noc@acme.example"]["state"] == "sent"
    dead = by_address["ops@acme.example"]
    assert dead["state"] == "dead" and "550" in dead["last_error"]
    assert "ops@acme.example" in dead["last_error"]
    assert [m.rcpt_tos for m in smtp.wait_for(1)] == [["noc@acme.example"]]


def test_backoff_doubles_up_to_the_maximum_with_jitter(tmp_path):
    config = make_settings("sqlite:///unused.db", tmp_path).notifications
    mid = [backoff(n, config, lambda: 0.5) for n in range(1, 7)]
    assert mid == [30, 60, 120, 240, 480, 600]
    assert backoff(3, config, lambda: 0.0) == pytest.approx(96)
    assert backoff(3, config, lambda: 1.0) == pytest.approx(144)


def test_a_wrong_smtp_password_is_retried_with_the_error_recorded(db_url, tmp_path, smtp,
                                                                   engine_for):
    settings = make_settings(db_url, tmp_path, smtp=smtp, password="wrong")
    engine = engine_for(settings)
    decide(engine, settings, roles=("tsm",), key="esc/1/tsm", kind="escalation")
    report = send_due(engine, settings.notifications, clock=FakeClock(T0))
    assert len(report.retried) == 1
    (row,) = rows(engine)
    assert row["state"] == "pending" and row["next_attempt_at"] > T0
    assert "refused the login of 'watchkeeper'" in row["last_error"]
    assert "535" in row["last_error"]
    # smtplib tries each mechanism the server offers (PLAIN, LOGIN): all refused
    assert smtp.logins and set(smtp.logins) == {("watchkeeper", False)}
    assert smtp.messages == []


def test_after_max_attempts_a_notice_is_dead(db_url, tmp_path, smtp, engine_for):
    settings = make_settings(db_url, tmp_path, smtp=smtp, password="wrong", max_attempts=3)
    engine = engine_for(settings)
    decide(engine, settings, roles=("tsm",), key="esc/1/tsm", kind="escalation")
    clock = FakeClock(T0)
    states = []
    for _ in range(4):
        report = send_due(engine, settings.notifications, clock=clock)
        states.append((len(report.retried), len(report.dead)))
        clock.advance(10_000)
    assert states == [(1, 0), (1, 0), (0, 1), (0, 0)]
    (row,) = rows(engine)
    assert (row["state"], row["attempts"]) == ("dead", 3)
    assert "refused the login" in row["last_error"]


def test_starttls_missing_means_no_credentials_and_no_mail(db_url, tmp_path, engine_for):
    plain = start_smtp(tmp_path, tls=False)
    try:
        settings = make_settings(db_url, tmp_path, smtp=plain)
        engine = engine_for(settings)
        decide(engine, settings)
        report = send_due(engine, settings.notifications, clock=FakeClock(T0))
        assert len(report.retried) == 1 and not report.sent
        assert plain.messages == [] and plain.logins == []
        assert all("does not offer STARTTLS" in (r["last_error"] or "")
                   for r in rows(engine))
    finally:
        plain.stop()


def test_implicit_tls_with_auth_delivers(db_url, tmp_path, engine_for):
    smtps = start_smtp(tmp_path, username="watchkeeper", password="s3cret", implicit_tls=True)
    try:
        settings = make_settings(db_url, tmp_path, smtp=smtps, security="tls")
        engine = engine_for(settings)
        decide(engine, settings, roles=("tsm",), key="esc/3/tsm")
        assert len(send_due(engine, settings.notifications, clock=FakeClock(T0)).sent) == 1
        (mail,) = smtps.wait_for(1)
        assert mail.tls and mail.login == "watchkeeper"
    finally:
        smtps.stop()


def test_a_server_certificate_not_from_the_ca_file_is_refused(db_url, tmp_path, smtp,
                                                               engine_for):
    other_ca, _ = self_signed(tmp_path / "other-ca")
    settings = make_settings(db_url, tmp_path, smtp=smtp)
    mail = settings.notifications.smtp
    assert mail is not None
    settings = settings.model_copy(update={"notifications": settings.notifications.model_copy(
        update={"smtp": mail.model_copy(update={"ca_file": other_ca})})})
    engine = engine_for(settings)
    decide(engine, settings, roles=("tsm",), key="esc/4/tsm")
    assert len(send_due(engine, settings.notifications, clock=FakeClock(T0)).retried) == 1
    (row,) = rows(engine)
    assert "CERTIFICATE_VERIFY_FAILED" in row["last_error"]
    assert smtp.messages == [] and smtp.logins == []


# ---------------------------------------------------------------------------- webhook


def test_the_webhook_gets_json_with_an_idempotency_key(db_url, tmp_path, webhook, engine_for):
    settings = make_settings(db_url, tmp_path, webhook=webhook)
    engine = engine_for(settings)
    with write_transaction(engine) as conn:
        notify(conn, key="escalation/7/crm", kind="escalation", roles=["crm"],
               customer="acme", ticket_id=None, subject="P1 escalation", body="text",
               data={"role": "crm", "step": "P1 1h"}, settings=settings, now=T0)
    report = send_due(engine, settings.notifications, clock=FakeClock(T0))
    assert len(report.sent) == 1
    (hook,) = webhook.requests
    assert hook.path == "/hooks/watchkeeper"
    assert hook.headers["Idempotency-Key"] == f"escalation/7/crm/webhook/{webhook.url}"
    assert hook.headers["Authorization"] == "Bearer hook-token-1"
    assert hook.headers["Content-Type"] == "application/json"
    assert hook.body == {"kind": "escalation", "roles": ["crm"], "customer": "acme",
                         "ticket": None, "subject": "P1 escalation", "body": "text",
                         "data": {"role": "crm", "step": "P1 1h"}}


def test_a_webhook_4xx_is_dead_at_once(db_url, tmp_path, webhook, engine_for):
    settings = make_settings(db_url, tmp_path, webhook=webhook)
    engine = engine_for(settings)
    decide(engine, settings)
    webhook.status = 400
    report = send_due(engine, settings.notifications, clock=FakeClock(T0))
    assert len(report.dead) == 1
    (row,) = rows(engine)
    assert (row["state"], row["attempts"]) == ("dead", 1)
    assert "answered 400: no thanks" in row["last_error"]
    with engine.connect() as conn:
        assert outbox_summary(conn, now=T0) == OutboxSummary(
            pending=0, due=0, sent=0, dead=1, oldest_due_seconds=0.0)


@pytest.mark.parametrize("status", [500, 503, 429, 408])
def test_a_webhook_5xx_or_throttle_is_retried(db_url, tmp_path, webhook, engine_for, status):
    settings = make_settings(db_url, tmp_path, webhook=webhook)
    engine = engine_for(settings)
    decide(engine, settings)
    webhook.status = status
    clock = FakeClock(T0)
    assert len(send_due(engine, settings.notifications, clock=clock).retried) == 1
    webhook.status = 204
    clock.advance(3600)
    assert len(send_due(engine, settings.notifications, clock=clock).sent) == 1
    keys = {h.headers["Idempotency-Key"] for h in webhook.requests}
    assert len(webhook.requests) == 2 and len(keys) == 1


def test_an_https_webhook_is_verified_against_its_ca_file(db_url, tmp_path, engine_for):
    cert, key = self_signed(tmp_path / "hook-tls")
    with serve_webhook(tls=(cert, key)) as receiver:
        trusted = make_settings(db_url, tmp_path, webhook=receiver, webhook_ca=cert)
        engine = engine_for(trusted)
        decide(engine, trusted, key="k/1")
        assert len(send_due(engine, trusted.notifications, clock=FakeClock(T0)).sent) == 1
        assert [h.headers["Idempotency-Key"] for h in receiver.requests] == [
            f"k/1/webhook/{receiver.url}"]
        # the system's trust store does not know this certificate: not sent, retried
        untrusted = make_settings(db_url, tmp_path, webhook=receiver)
        decide(engine, untrusted, key="k/2")
        report = send_due(engine, untrusted.notifications, clock=FakeClock(T0))
        assert len(report.retried) == 1 and len(receiver.requests) == 1
        (row,) = [r for r in rows(engine) if r["dedup_key"].startswith("k/2/")]
        assert "CERTIFICATE_VERIFY_FAILED" in row["last_error"]


# ---------------------------------------------------------------------------- crashes


def test_a_crash_between_deciding_and_sending_sends_once(db_url, tmp_path, smtp, engine_for):
    settings = make_settings(db_url, tmp_path, smtp=smtp)
    decider = engine_for(settings)
    decide(decider, settings, roles=("tsm",), key="esc/5/tsm")
    decider.dispose()  # the deciding collector is gone before its sender ran
    sender = engine_for(settings)  # a new collector process
    clock = FakeClock(T0 + 3)
    assert len(send_due(sender, settings.notifications, clock=clock).sent) == 1
    clock.advance(3600)
    assert send_due(sender, settings.notifications, clock=clock).claimed == 0
    (mail,) = smtp.wait_for(1)
    assert mail.rcpt_tos == ["tsm@support.example"]


def test_a_crash_while_sending_resends_after_the_lease_with_the_same_message_id(
        db_url, tmp_path, smtp, engine_for):
    settings = make_settings(db_url, tmp_path, smtp=smtp)
    engine = engine_for(settings)
    decide(engine, settings, roles=("tsm",), key="esc/5/tsm")
    # the first sender claims and delivers, and dies before recording it
    (row,) = claim(engine, now=T0, lease=settings.notifications.lease, limit=10)
    deliver(row, settings.notifications, now=T0)
    # another sender: nothing to do while the lease runs
    clock = FakeClock(T0 + 59)
    assert send_due(engine, settings.notifications, clock=clock).claimed == 0
    clock.now = T0 + 60
    assert len(send_due(engine, settings.notifications, clock=clock).sent) == 1
    first, second = smtp.wait_for(2)
    assert first.message["Message-ID"] == second.message["Message-ID"]
    (stored,) = rows(engine)
    assert (stored["state"], stored["attempts"]) == ("sent", 2)


def test_no_send_starts_that_could_outlast_its_claim(db_url, tmp_path, webhook, engine_for):
    # every send takes 30 s of the collector's clock; a claim lasts 60 s, a send may take 5
    settings = make_settings(db_url, tmp_path, webhook=webhook, lease=60)
    engine = engine_for(settings)
    for n in range(3):
        decide(engine, settings, key=f"k/{n}")
    clock = FakeClock(T0)
    seen: list[tuple[float, float]] = []

    def slow(hook: Hook) -> None:
        with engine.connect() as conn:
            lease = conn.execute(select(Notification.lease_until).where(
                Notification.dedup_key == hook.headers["Idempotency-Key"])).scalar_one()
        seen.append((clock.now, lease))
        clock.advance(30)

    webhook.on_request = slow
    report = send_due(engine, settings.notifications, clock=clock)
    assert len(report.sent) == 3
    # each send began with at least its timeout left on its claim
    assert len(seen) == 3 and all(lease >= at + 5 for at, lease in seen)
    assert [r["attempts"] for r in rows(engine)] == [1, 1, 1]
    assert len({h.headers["Idempotency-Key"] for h in webhook.requests}) == 3


def test_two_senders_never_claim_the_same_notice(db_url, tmp_path, webhook, engine_for):
    settings = make_settings(db_url, tmp_path, webhook=webhook)
    engine = engine_for(settings)
    for n in range(40):
        decide(engine, settings, key=f"k/{n}")
    a, b = create_db_engine(settings), create_db_engine(settings)
    claimed: dict[str, list[int]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)

    def run(name: str, eng: Engine) -> None:
        barrier.wait()
        while got := claim(eng, now=T0, lease=60, limit=3):
            claimed[name].extend(r["id"] for r in got)

    try:
        threads = [threading.Thread(target=run, args=(n, e)) for n, e in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        a.dispose()
        b.dispose()
    both = claimed["a"] + claimed["b"]
    assert len(both) == 40 and len(set(both)) == 40
