"""The sender: delivers the outbox's due notices, run every ``notifications.send_every``.

A pass claims a few due notices in a short transaction (a conditional UPDATE sets
``lease_until``, so two collectors never claim the same row), delivers them with no
transaction open, then records each outcome: sent, retried later with exponential
backoff, or dead after ``max_attempts`` (or at once when the receiver refused it for
good). Delivery is at least once:

- a collector that stops after deciding a notice and before sending it leaves the row
  pending, and the next pass (of any collector) sends it;
- a collector that stops while sending leaves the row claimed; once the lease expires
  another pass sends it again. The receiver can tell the two sends apart as one notice:
  the email's Message-ID and the webhook's ``Idempotency-Key`` are the same both times.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
from sqlalchemy import Connection, Engine, RowMapping, Table, and_, or_, select, update

from collector.db import is_postgres, write_transaction
from collector.errors import CollectorError
from collector.notify.models import DEAD, EMAIL, PENDING, SENT, WEBHOOK, Notification
from collector.notify.senders import SendError, build_email, send_email, send_webhook
from collector.problems.keys import ProblemKey
from collector.runtime import Runtime
from collector.scheduling import retry_delay, run_every
from collector.settings import NotificationSettings
from collector.tickets.models import SYSTEM_ACTOR
from collector.tickets.service import record_event, ticket_row

log = logging.getLogger(__name__)
CLAIM_BATCH = 10
MAX_PER_PASS = 500
ERROR_MAX = 2000

_table = cast(Table, Notification.__table__)
_c = _table.c


@dataclass
class SendReport:
    """What one pass did: ids of the notices sent, retried later, and given up."""

    sent: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)

    @property
    def claimed(self) -> int:
        return len(self.sent) + len(self.retried) + len(self.dead)


def backoff(attempts: int, config: NotificationSettings, rnd: Callable[[], float]) -> float:
    """Seconds until a notice's next try: ``retry_first`` doubled up to ``retry_max``."""
    return retry_delay(attempts, first=config.retry_first, maximum=config.retry_max, rnd=rnd)


def claim(
    engine: Engine, *, now: float, lease: float, limit: int,
    skip_channels: tuple[str, ...] = (),
) -> list[RowMapping]:
    """Claim up to ``limit`` due notices (pending, due, lease free or expired) until
    ``now + lease``; the claimed rows, with ``attempts`` already counting this try."""
    due = and_(_c.state == PENDING, _c.next_attempt_at <= now,
               or_(_c.lease_until.is_(None), _c.lease_until <= now))
    if skip_channels:
        due = and_(due, _c.channel.not_in(skip_channels))
    until = now + lease
    with write_transaction(engine) as conn:
        query = select(_c.id).where(due).order_by(_c.next_attempt_at, _c.id).limit(limit)
        if is_postgres(conn):
            query = query.with_for_update(skip_locked=True)
        ids = list(conn.execute(query).scalars())
        if not ids:
            return []
        # Conditional: a row another collector claimed meanwhile no longer matches.
        conn.execute(update(_table).where(_c.id.in_(ids), due).values(
            lease_until=until, attempts=_c.attempts + 1))
        rows = conn.execute(select(_table).where(
            _c.id.in_(ids), _c.lease_until == until, _c.state == PENDING)).mappings().all()
    return list(rows)


def deliver(row: RowMapping, config: NotificationSettings, *, now: float,
            client: httpx.Client | None = None) -> None:
    """Send one claimed notice over its channel; SendError when it did not go out."""
    if row["channel"] == EMAIL:
        if config.smtp is None:
            raise SendError("an email notice, but [notifications.smtp] is not configured")
        payload: dict[str, Any] = row["payload"] or {}
        headers = {}
        if row["ticket_id"] is not None:
            headers["X-Watchkeeper-Ticket"] = str(row["ticket_id"])
        headers["X-Watchkeeper-Kind"] = row["kind"]
        if payload.get("roles"):
            headers["X-Watchkeeper-Roles"] = ", ".join(payload["roles"])
        msg = build_email(config.smtp, to=row["recipient"], subject=row["subject"],
                          body=row["body"], dedup_key=row["dedup_key"], now=now,
                          headers=headers)
        send_email(config.smtp, msg)
    elif row["channel"] == WEBHOOK:
        if config.webhook is None:
            raise SendError("a webhook notice, but [notifications.webhook] is not configured")
        send_webhook(config.webhook, payload=row["payload"], dedup_key=row["dedup_key"],
                     client=client)
    else:
        raise SendError(f"unknown channel {row['channel']!r}", permanent=True)


def send_due(
    engine: Engine,
    config: NotificationSettings,
    *,
    clock: Callable[[], float],
    rnd: Callable[[], float] = random.random,
    limit: int = MAX_PER_PASS,
) -> SendReport:
    """One sender pass: claim and deliver due notices in batches until none is due.

    When a channel fails in a way that may pass (the server down, a login refused), the
    pass stops using it: its other claimed notices are put back untried, due when the
    failed one is retried, so a dead server costs one timeout per pass, not one per notice.
    """
    report = SendReport()
    down: dict[str, tuple[float, str]] = {}  # channel -> (retry at, error)
    while report.claimed < limit:
        rows = claim(engine, now=clock(), lease=config.lease,
                     limit=min(CLAIM_BATCH, limit - report.claimed),
                     skip_channels=tuple(down))
        if not rows:
            break
        for row in rows:
            if row["channel"] in down:
                _put_back(engine, row, *down[row["channel"]])
                continue
            timeout = _timeout(config, row["channel"])
            if timeout < config.lease and clock() + timeout > row["lease_until"]:
                # Earlier sends of this batch were slow: a send now could outlast the
                # claim and be repeated by another sender. Claimed again, afresh.
                _put_back(engine, row, row["next_attempt_at"], None)
                continue
            failed = _attempt(engine, config, row, clock=clock, rnd=rnd, report=report)
            if failed is not None:
                down[row["channel"]] = failed
    return report


def _timeout(config: NotificationSettings, channel: str) -> float:
    if channel == EMAIL and config.smtp is not None:
        return config.smtp.timeout
    if channel == WEBHOOK and config.webhook is not None:
        return config.webhook.timeout
    return 0.0


def _put_back(engine: Engine, row: RowMapping, retry_at: float, error: str | None) -> None:
    """Return a claimed notice untried (its try not counted), due at ``retry_at``."""
    values: dict[str, Any] = {"lease_until": None, "attempts": _c.attempts - 1,
                              "next_attempt_at": max(retry_at, row["next_attempt_at"])}
    if error is not None:
        values["last_error"] = f"not tried: the channel failed just before: {error}"[
            :ERROR_MAX]
    with write_transaction(engine) as conn:
        conn.execute(update(_table).where(_mine(row)).values(**values))


def _mine(row: RowMapping) -> Any:
    """The row while the claim is ours: a lease that ran out may have been claimed again."""
    return and_(_c.id == row["id"], _c.lease_until == row["lease_until"], _c.state == PENDING)


def _attempt(engine: Engine, config: NotificationSettings, row: RowMapping, *,
             clock: Callable[[], float], rnd: Callable[[], float],
             report: SendReport) -> tuple[float, str] | None:
    """Deliver one notice and record the outcome; (retry at, error) when it may be retried."""
    error: SendError | None = None
    try:
        deliver(row, config, now=clock())
    except SendError as exc:
        error = exc
    now = clock()
    attempts = row["attempts"]
    label = f"notice {row['id']} ({row['kind']}, {row['channel']} to {row['recipient']})"
    retry: tuple[float, str] | None = None
    if error is None:
        values: dict[str, Any] = {"state": SENT, "sent_at": now, "lease_until": None,
                                  "last_error": None}
        report.sent.append(row["id"])
        log.info("%s sent", label)
    elif error.permanent or attempts >= config.max_attempts:
        why = "refused for good" if error.permanent else f"failed {attempts} times"
        values = {"state": DEAD, "lease_until": None, "last_error": str(error)[:ERROR_MAX]}
        report.dead.append(row["id"])
        log.error("%s given up, %s: %s", label, why, error)
    else:
        retry = (now + backoff(attempts, config, rnd), str(error))
        values = {"next_attempt_at": retry[0], "lease_until": None,
                  "last_error": str(error)[:ERROR_MAX]}
        report.retried.append(row["id"])
        log.warning("%s not sent (try %d of %d), retried later: %s", label, attempts,
                    config.max_attempts, error)
    with write_transaction(engine) as conn:
        done = conn.execute(update(_table).where(_mine(row)).values(**values)).rowcount
        if done and values.get("state") == DEAD and row["ticket_id"] is not None:
            _audit_dead(conn, row, str(error), now)
    if not done:
        log.warning("%s: its claim ran out while sending; another pass owns it now", label)
    return retry


def _audit_dead(conn: Connection, row: RowMapping, error: str, now: float) -> None:
    """A notice about a ticket given up: said in the ticket's audit log, for its engineer."""
    try:
        ticket = ticket_row(conn, row["ticket_id"])
    except CollectorError:  # the ticket is gone
        return
    record_event(
        conn, ticket_id=ticket["id"], customer_id=ticket["customer_id"],
        problem_key=str(ProblemKey(ticket["customer"], ticket["host"], ticket["check"],
                                   ticket["target"])),
        at=now, kind="notice_failed", actor=SYSTEM_ACTOR,
        text=(f"{row['kind']} notice by {row['channel']} to {row['recipient']} not "
              f"delivered after {row['attempts']} tries: {error}")[:ERROR_MAX],
        data={"notice": row["id"], "kind": row["kind"], "channel": row["channel"],
              "recipient": row["recipient"], "attempts": row["attempts"]})


def send_job(runtime: Runtime) -> SendReport:
    """One sender pass at the runtime's clock."""
    return send_due(runtime.engine, runtime.settings.notifications, clock=runtime.clock)


async def run_sender(runtime: Runtime) -> None:
    """Send forever (cancelled by the app's lifespan)."""
    await run_every(runtime.settings.notifications.send_every, lambda: send_job(runtime),
                    name="notify")
