"""What the ticket engine's end-to-end tests share: a collector process whose clock can be
run ahead, its API seen by a support engineer, pushes made as a host would make them, an
agent watching a real MariaDB replica, and the mail the collector sent.

The collector's clock is ``time.time()`` plus the seconds in a file
(``WATCHKEEPER_CLOCK_OFFSET_FILE``); writing a larger offset makes hours pass for the SLA
and escalation clocks in seconds. Agents keep their real time, so the collectors here are
configured never to call a host silent while the clock runs ahead.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from collector.settings import normalize_database_url
from collector.timefmt import CLOCK_OFFSET_ENV
from tests.support.processes import Collector, Proc, agent_command, collector_command, wait_until

HOUR = 3600.0
CUSTOMER = "acme"
CONTACT = "noc@acme.example"
RECIPIENTS = {"tsm": "tsm@support.example", "crm": "crm@support.example",
              "cto": "cto@support.example"}
# The roles as the escalation list of a ticket may spell them.
ROLE_SPELLINGS = {
    "tsm": "tsm", "technical_support_manager": "tsm", "technical support manager": "tsm",
    "crm": "crm", "customer_relations_manager": "crm", "customer relations manager": "crm",
    "cto": "cto",
}


class ClockFile:
    """The offset file a collector's clock reads: the seconds it runs ahead of real time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0.0
        self.set(0.0)

    def set(self, offset: float) -> None:
        # Written under another name and renamed: a collector never reads half a number.
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(f"{offset:.3f}\n")
        os.replace(tmp, self.path)
        self.offset = offset

    def now(self) -> float:
        """What the collectors' clock reads now."""
        return time.time() + self.offset


def collector_config(*, smtp: Mailbox | None, extra: str = "") -> str:
    """The ticket engine's settings for fast tests (everything after [server]/[database])."""
    mail = ""
    if smtp is not None:
        mail = (
            f'[notifications.smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
            'security = "starttls"\nsender = "watchkeeper@support.example"\n'
            f'timeout = "3s"\nusername = "{SMTP_USER}"\n'
            f'password_file = "{smtp.password_file}"\nca_file = "{smtp.ca_file}"\n\n'
        )
    recipients = "".join(f'{role} = ["{address}"]\n' for role, address in RECIPIENTS.items())
    return (
        # Agents keep real time while the collector's clock runs hours ahead: no silence.
        '[silence]\nmin_silence = "3650d"\nstartup_grace = "3650d"\ncheck_every = "1s"\n\n'
        '[tickets]\nengine_every = "0.5s"\n\n'
        # A notice claimed by a collector that was killed is free again after the lease.
        '[notifications]\nsend_every = "0.5s"\nretry_first = "1s"\nretry_max = "2s"\n'
        'lease = "5s"\n\n'
        f"{mail}"
        f"[notifications.recipients]\n{recipients}\n"
        f'[customers.{CUSTOMER}]\ncontacts = ["{CONTACT}"]\n\n'
        f"{extra}"
    )


class TicketCollector(Collector):
    """A collector process that reads its clock offset from ``clock``."""

    def __init__(self, workdir: Path, *, clock: ClockFile, config: str,
                 database_url: str | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir, database_url=database_url, extra_config=config)
        self.clock = clock

    def start(self, timeout: float = 30.0) -> TicketCollector:
        self.starts += 1
        self.proc = Proc(
            collector_command("serve", "--config", str(self.config)),
            self.workdir / "collector.log",
            env={CLOCK_OFFSET_ENV: str(self.clock.path)},
        ).start()
        wait_until(self.healthy, timeout, f"collector on {self.url}\n{self.proc.tail()}")
        return self

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything it was doing."""
        if self.proc is not None:
            self.proc.kill()

    def enroll(self, customer: str, host: str) -> str:
        """Enroll ``host`` and return its token; a failure shows the command's error."""
        out = subprocess.run(
            collector_command("enroll", "--config", str(self.config),
                              "--customer", customer, "--host", host),
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, f"enroll {host}: {out.stderr}"
        token = out.stdout.strip().splitlines()[-1].strip()
        assert token, out.stderr
        return token

    def user_token(self, name: str, role: str) -> str:
        """Add a user with ``role`` and create an API token for it, as an administrator does
        (``user add``, ``token create``); the token."""
        for args in (("user", "add", name, "--role", role),
                     ("token", "create", "--user", name, "--name", "e2e")):
            out = subprocess.run(collector_command(*args, "--config", str(self.config)),
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, f"{' '.join(args)}: {out.stderr}"
        token = out.stdout.strip().splitlines()[-1].strip()
        assert token, out.stderr
        return token

    def log_tail(self, lines: int = 60) -> str:
        return self.proc.tail(lines) if self.proc is not None else ""


# ----------------------------------------------------------------------------- the store


class Store:
    """Direct reads of the collector's database (the rows behind what the API shows)."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(normalize_database_url(url))

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(text(sql), params).mappings()]

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def emails(self) -> list[dict[str, Any]]:
        """Every email notice in the outbox."""
        return self.rows("SELECT id, dedup_key, recipient, kind, subject, state, ticket_id "
                         "FROM notifications WHERE channel = 'email' ORDER BY id")

    def unsent(self) -> list[dict[str, Any]]:
        """Email notices not (yet) marked sent, with what the sender recorded on them."""
        return self.rows("SELECT id, recipient, kind, state, attempts, lease_until, last_error "
                         "FROM notifications WHERE channel = 'email' AND state <> 'sent' "
                         "ORDER BY id")

    def escalation_rows(self, ticket_id: int) -> list[dict[str, Any]]:
        return self.rows("SELECT role, step, due_at, decided_at FROM ticket_escalations "
                         "WHERE ticket_id = :t ORDER BY decided_at", t=ticket_id)

    def dispose(self) -> None:
        self.engine.dispose()


# ----------------------------------------------------------------------------- the API


def parse_time(value: Any) -> float:
    """Epoch seconds from the API's time (an ISO 8601 string, or a number)."""
    if isinstance(value, int | float):
        return float(value)
    assert isinstance(value, str), value
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _items(body: Any, *names: str) -> list[dict[str, Any]]:
    """The list in an answer that is a list, or an object holding one under ``names``."""
    if isinstance(body, list):
        return body
    assert isinstance(body, dict), body
    for name in names:
        if isinstance(body.get(name), list):
            return list(body[name])
    raise AssertionError(f"no list under {names} in {json.dumps(body)[:500]}")


@dataclass
class Api:
    """The collector's HTTP API as a user with an API token sees it."""

    url: str
    token: str

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", params=params, headers=self._headers(),
                         timeout=10)

    def post(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=dict(body), headers=self._headers(),
                          timeout=10)

    def tickets(self, **params: Any) -> list[dict[str, Any]]:
        answer = self.get("/api/v1/tickets", **params)
        assert answer.status_code == 200, answer.text
        return _items(answer.json(), "tickets", "items")

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        answer = self.get(f"/api/v1/tickets/{ticket_id}")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def tickets_for(self, host: str, check: str) -> list[dict[str, Any]]:
        return [t for t in self.tickets(state="all")
                if t["host"] == host and t["check"] == check]

    def audit(self, **params: Any) -> list[dict[str, Any]]:
        answer = self.get("/api/v1/audit", **params)
        assert answer.status_code == 200, answer.text
        return _items(answer.json(), "events", "items")


def escalated_roles(ticket: Mapping[str, Any]) -> list[str]:
    """The roles a ticket's escalations list names, in the short form (tsm, crm, cto)."""
    roles = []
    for escalation in ticket["escalations"]:
        role = str(escalation["role"]).strip().lower()
        roles.append(ROLE_SPELLINGS.get(role, role))
    return roles


# ----------------------------------------------------------------------------- pushes


@dataclass
class Host:
    """A host pushing results itself over HTTP with its token, as its agent would."""

    url: str
    fqdn: str
    token: str
    seq: int = 0
    interval: float = 60.0

    def result(self, *, check: str, type: str, target: str, status: int, at: float,
               summary: str | None = None, details: Mapping[str, Any] | None = None,
               ) -> dict[str, Any]:
        self.seq += 1
        return {
            "id": str(uuid.uuid4()), "seq": self.seq, "type": type, "check": check,
            "target": target, "status": status,
            "summary": summary or f"{check} {target}: status {status}",
            "metrics": [], "details": dict(details or {}), "produced_at": at,
            "duration": 0.01, "status_changed": True,
        }

    def push(self, results: Iterable[dict[str, Any]], *, url: str | None = None) -> None:
        batch = list(results)
        now = time.time()
        body = {
            "batch_id": str(uuid.uuid4()), "host": self.fqdn,
            "agent": {"version": "0.1.0", "started_at": now - 60, "interval": self.interval},
            "sent_at": now, "results": batch,
        }
        answer = httpx.post(f"{url or self.url}/api/v1/results", json=body, timeout=30,
                            headers={"Authorization": f"Bearer {self.token}"})
        assert answer.status_code == 202, answer.text


def disk_result(host: Host, status: int, at: float, target: str = "/srv") -> dict[str, Any]:
    """A disk result for ``target``: CRITICAL means over the space threshold."""
    used = {0: 50.0, 1: 90.0, 2: 97.0}.get(status, 0.0)
    return host.result(
        check="disk", type="disk", target=target, status=status, at=at,
        summary=f"{target} {used:.1f}% used",
        details={"condition": "space" if status else "ok", "used_pct": used},
    )


# ----------------------------------------------------------------------------- agents


def agent_config(workdir: Path, *, host: str, url: str, token: str, checks: str) -> Path:
    """An agent config pushing fast to ``url``; ``checks`` are its [checks.*] tables."""
    workdir.mkdir(parents=True, exist_ok=True)
    token_file = workdir / "token"
    token_file.write_text(token + "\n")
    config = workdir / "agent.toml"
    config.write_text(
        f'[agent]\nhost = "{host}"\nstate_dir = "{workdir / "state"}"\n\n'
        f'[collector]\nurl = "{url}"\ntoken_file = "{token_file}"\n'
        'push_interval = "0.3s"\nbackoff_initial = "0.1s"\nbackoff_max = "0.5s"\n'
        'timeout = "5s"\ngzip = false\n\n'
        '[checks.agent]\ninterval = "30s"\n\n' + checks
    )
    return config


def start_agent(config: Path) -> Proc:
    return Proc(agent_command("run", "--config", str(config)),
                config.parent / "agent.log").start()


def replication_check(port: int, password_file: Path, *, name: str = "replication") -> str:
    from tests.services.mariadb import MONITOR_USER

    return (
        f'[checks.{name}]\ntype = "mysql_replication"\ninterval = "1s"\ntimeout = "5s"\n'
        f'jitter = "0s"\nhost = "127.0.0.1"\nport = {port}\nuser = "{MONITOR_USER}"\n'
        f'password_file = "{password_file}"\nconnect_timeout = 1\n'
    )


# ----------------------------------------------------------------------------- mail

SMTP_USER = "watchkeeper"
SMTP_PASSWORD = "mail-secret"


@dataclass
class Mail:
    """One message the SMTP server accepted."""

    recipients: tuple[str, ...]
    subject: str
    message_id: str
    body: str
    tls: bool
    login: str | None


@dataclass
class Mailbox:
    """A real SMTP server (STARTTLS, AUTH required) and counts over what it accepted."""

    server: Any  # tests.services.smtp.SmtpServer
    password_file: Path

    @property
    def port(self) -> int:
        return int(self.server.port)

    @property
    def ca_file(self) -> Path:
        return Path(self.server.ca_file)

    def messages(self) -> list[Mail]:
        return [Mail(tuple(m.rcpt_tos), " ".join(m.subject.split()),
                     str(m.message["Message-ID"]), m.body, m.tls, m.login)
                for m in self.server.messages]

    def to(self, address: str) -> list[Mail]:
        return [m for m in self.messages() if address in m.recipients]

    def per_recipient_subject(self) -> Counter[tuple[str, str]]:
        counts: Counter[tuple[str, str]] = Counter()
        for mail in self.messages():
            for rcpt in mail.recipients:
                counts[(rcpt, mail.subject)] += 1
        return counts

    def outage(self) -> None:
        """The SMTP server stops listening (what it received stays)."""
        self.server.stop()

    def back(self) -> None:
        """The SMTP server listens again on the same port."""
        self.server.start()

    def authenticated(self) -> bool:
        """Every message came over TLS from the configured login, and no login failed."""
        mails = self.messages()
        return bool(mails) and all(m.tls and m.login == SMTP_USER for m in mails) and all(
            ok for _user, ok in self.server.logins)


@contextlib.contextmanager
def start_mail_server(directory: Path) -> Iterator[Mailbox]:
    """An SMTP server on loopback requiring STARTTLS and AUTH; stopped on leaving."""
    from tests.services.smtp import start_smtp

    directory.mkdir(parents=True, exist_ok=True)
    password_file = directory / "smtp.password"
    password_file.write_text(SMTP_PASSWORD + "\n")
    password_file.chmod(0o600)
    server = start_smtp(directory, username=SMTP_USER, password=SMTP_PASSWORD)
    try:
        yield Mailbox(server, password_file)
    finally:
        server.stop()


def mentions_number(mail: Mail, number: int) -> bool:
    """The mail names request number ``number`` (as ``#123``)."""
    pattern = re.compile(rf"#{number}(?!\d)")
    return bool(pattern.search(mail.subject) or pattern.search(mail.body))


def sent_once(store: Store, mail: Mailbox) -> bool:
    """Every email notice in the outbox is marked sent, and the SMTP server received each
    exactly once (per recipient and subject): nothing lost, nothing sent twice."""
    rows = store.emails()
    if any(r["state"] != "sent" for r in rows):
        return False
    stored = Counter((r["recipient"], r["subject"]) for r in rows)
    return stored == mail.per_recipient_subject()


def settle(store: Store, mail: Mailbox, *, tail: Any = None) -> None:
    """Wait until every notice decided so far is sent.

    Done before the clock is moved on or a collector is killed on purpose at a quiet
    moment: a sender's claim on a notice is a lease on the collector's clock, so hours
    added while a mail is on its way would let another sender repeat it, a test artefact
    that a real clock never produces.
    """
    wait_for(lambda: sent_once(store, mail), 30,
             "every notice decided so far to be sent exactly once",
             tail=lambda: f"unsent: {store.unsent()}\nreceived: "
                          f"{sorted(mail.per_recipient_subject().items())}\n"
                          + (tail() if callable(tail) else ""))


def wait_for(predicate: Any, timeout: float, what: str, *, tail: Any = None) -> None:
    """``wait_until`` that adds a process log to the failure message."""
    try:
        wait_until(predicate, timeout, what, interval=0.1)
    except AssertionError as exc:
        extra = tail() if callable(tail) else ""
        raise AssertionError(f"{exc}\n{extra}") from None


def stays(predicate: Any, seconds: float, what: str) -> None:
    """``predicate()`` holds throughout ``seconds`` (polled); fails naming ``what``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), what
        time.sleep(0.1)


def only(items: Iterable[Any], what: str) -> Any:
    found = list(items)
    assert len(found) == 1, f"expected exactly one {what}, got {len(found)}: {found}"
    return found[0]


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
