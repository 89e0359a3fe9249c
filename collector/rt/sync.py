"""The connector's sender: brings the queued ticket changes into RT, in order, exactly once.

A pass repeatedly claims the oldest due *head* change - the first pending change of its
ticket - by setting its lease in a short transaction (a conditional UPDATE, so two
collectors never take the same ticket), makes its REST2 calls with no transaction open,
and records the outcome. A ticket's next change becomes its head only once this one is
done, so RT sees every ticket's changes in the order they were made.

Exactly once, though any answer can be lost:

- the create searches RT by the key field (``<problem key> #<request number>``) first,
  and the create call sets that field itself, so a create whose answer was lost is found
  on the retry instead of made twice;
- a note (comment, correspondence) carries ``[watchkeeper #<ticket>/<event>]`` in its
  subject; a change tried before looks for that note in the ticket's history first;
- priority and status are set to values, which RT takes twice as once.

RT down or slow: the change is retried with backoff (``retry_first`` doubled up to
``retry_max``) and the pass ends, so a dead RT costs one timeout per pass. Nothing is
dropped: a change RT refuses for good is retried up to ``max_attempts`` and then given up
(recorded in the ticket's history); a create is never given up, since every later change
of the ticket needs it - it waits, in the backlog, for the setup to be fixed.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Engine, RowMapping, Table, and_, or_, select, update
from sqlalchemy.orm import aliased

from collector.db import is_postgres, upsert_insert, write_transaction
from collector.hosts.models import Customer
from collector.rt import changes
from collector.rt.client import KeyFieldMissing, RtClient, RtError
from collector.rt.models import (  # noqa: F401  (Backlog, backlog, set_enabled: re-exported)
    CHANGES,
    DEAD,
    DONE,
    LINKS,
    PENDING,
    RT_ACTOR_PREFIX,
    Backlog,
    backlog,
    instance_name,
    set_enabled,
)
from collector.scheduling import retry_delay
from collector.settings import RequestTrackerSettings, Settings
from collector.tickets.models import Ticket, TicketEvent
from collector.tickets.service import record_event

log = logging.getLogger(__name__)
ERROR_MAX = 2000
MAX_PER_PASS = 500

TICKETS = cast(Table, Ticket.__table__)
EVENTS = cast(Table, TicketEvent.__table__)
CUSTOMERS = cast(Table, Customer.__table__)
_c = CHANGES.c


@dataclass
class SyncReport:
    """What one pass did: change ids done, retried later, given up; RT tickets created."""

    done: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)
    created: list[int] = field(default_factory=list)  # RT ticket ids
    found: list[int] = field(default_factory=list)  # RT ticket ids found by the key field


def _head_due(now: float) -> Any:
    """A pending change that is due, not leased, and the first pending one of its ticket."""
    earlier = aliased(CHANGES)
    first = ~select(earlier.c.id).where(
        earlier.c.ticket_id == _c.ticket_id, earlier.c.state == PENDING,
        earlier.c.id < _c.id).exists()
    return and_(_c.state == PENDING, _c.next_attempt_at <= now,
                or_(_c.lease_until.is_(None), _c.lease_until <= now), first)


def claim(engine: Engine, *, now: float, lease: float) -> RowMapping | None:
    """Claim the oldest due head change until ``now + lease``; None when none is due."""
    due = _head_due(now)
    until = now + lease
    with write_transaction(engine) as conn:
        query = select(_c.id).where(due).order_by(_c.id).limit(1)
        if is_postgres(conn):
            query = query.with_for_update(skip_locked=True)
        found = conn.execute(query).scalar()
        if found is None:
            return None
        # Conditional: a change another collector claimed meanwhile no longer matches.
        conn.execute(update(CHANGES).where(_c.id == found, due).values(
            lease_until=until, attempts=_c.attempts + 1))
        return conn.execute(select(CHANGES).where(
            _c.id == found, _c.lease_until == until, _c.state == PENDING)).mappings().first()


def _mine(row: RowMapping) -> Any:
    return and_(_c.id == row["id"], _c.lease_until == row["lease_until"],
                _c.state == PENDING)


class Syncer:
    """Sends the queued changes of one collector process; keeps its RT client open."""

    def __init__(self, engine: Engine, settings: Settings, *, clock: Callable[[], float],
                 client: RtClient | None = None,
                 rnd: Callable[[], float] = random.random) -> None:
        if settings.request_tracker is None:
            raise ValueError("[request_tracker] is not configured")
        self.engine = engine
        self.settings = settings
        self.config: RequestTrackerSettings = settings.request_tracker
        self.clock = clock
        self.rnd = rnd
        self.client = client if client is not None else RtClient(self.config)
        self.instance: str | None = None  # this database's name in the key field
        self.down_until = 0.0  # RT failed in a way that may pass: no pass before this

    def close(self) -> None:
        self.client.close()

    def sync(self, *, limit: int = MAX_PER_PASS) -> SyncReport:
        """One pass: send due head changes until none is due, RT fails, or ``limit``."""
        report = SyncReport()
        if self.clock() < self.down_until:
            return report
        for _ in range(limit):
            row = claim(self.engine, now=self.clock(), lease=self.config.lease)
            if row is None:
                break
            retry_in = self._attempt(row, report)
            if retry_in is not None:
                self.down_until = self.clock() + retry_in
                break
        return report

    # ------------------------------------------------------------------ one change

    def _attempt(self, row: RowMapping, report: SyncReport) -> float | None:
        """Send one claimed change and record the outcome; seconds to wait when RT failed
        in a way that may pass (then the pass ends)."""
        error: RtError | None = None
        creating = False
        try:
            ticket, event, rt_id = self._load(row)
            creating = rt_id is None
            if rt_id is None:
                rt_id = self._create(row, ticket, event, report)
                creating = False
            self._send(row, ticket, event, rt_id)
        except RtError as exc:
            error = exc
        now = self.clock()
        label = f"RT change {row['id']} (ticket #{row['ticket_id']}, event {row['event_id']})"
        attempts = row["attempts"]
        wait: float | None = None
        values: dict[str, Any]
        if error is None:
            values = {"state": DONE, "done_at": now, "lease_until": None, "last_error": None}
            report.done.append(row["id"])
        elif error.permanent and not creating and attempts >= self.config.max_attempts:
            values = {"state": DEAD, "lease_until": None, "last_error": str(error)[:ERROR_MAX]}
            report.dead.append(row["id"])
            log.error("%s given up after %d tries: %s", label, attempts, error)
        else:
            delay = (self.config.retry_max if error.permanent
                     else retry_delay(attempts, first=self.config.retry_first,
                                      maximum=self.config.retry_max, rnd=self.rnd))
            values = {"next_attempt_at": now + delay, "lease_until": None,
                      "last_error": str(error)[:ERROR_MAX]}
            report.retried.append(row["id"])
            log.warning("%s not in RT (try %d), again in %.0f s: %s", label, attempts,
                        delay, error)
            if not error.permanent:
                wait = delay
        with write_transaction(self.engine) as conn:
            mine = conn.execute(update(CHANGES).where(_mine(row)).values(**values)).rowcount
            if mine and values.get("state") == DEAD:
                self._audit_dead(conn, row, str(error), now)
        if not mine:
            log.warning("%s: its claim ran out while sending; another pass owns it now", label)
        return wait

    def _load(self, row: RowMapping) -> tuple[RowMapping, RowMapping, int | None]:
        with self.engine.connect() as conn:
            ticket = conn.execute(
                select(TICKETS, CUSTOMERS.c.name.label("customer"))
                .join(CUSTOMERS, CUSTOMERS.c.id == TICKETS.c.customer_id)
                .where(TICKETS.c.id == row["ticket_id"])).mappings().one()
            event = conn.execute(select(EVENTS).where(EVENTS.c.id == row["event_id"])
                                 ).mappings().one()
            rt_id = conn.execute(select(LINKS.c.rt_id).where(
                LINKS.c.ticket_id == row["ticket_id"])).scalar()
        return ticket, event, None if rt_id is None else int(rt_id)

    def _create(self, row: RowMapping, ticket: RowMapping, event: RowMapping,
                report: SyncReport) -> int:
        """The ticket's RT ticket: found by the key field, or created; linked at once."""
        if self.instance is None:
            with self.engine.connect() as conn:
                self.instance = instance_name(conn)
        spec = changes.create_for(ticket, event, self.settings, instance=self.instance,
                                  public_url=self.settings.notifications.public_url)
        rt_id = self.client.find_by_key(spec.key_value)
        if rt_id is not None:
            report.found.append(rt_id)
            log.info("ticket #%s is RT #%s already (found by %s)", ticket["id"], rt_id,
                     self.config.key_field)
        else:
            try:
                rt_id = self.client.create(
                    queue=spec.queue, subject=spec.subject, requestors=spec.requestors,
                    priority=spec.priority, content=spec.content, key_value=spec.key_value)
            except KeyFieldMissing as exc:
                # The ticket exists: use it rather than make another on every retry. Only
                # a lost answer to a later create could now go unnoticed; the log says so.
                log.error("%s; its changes go there, but until the field is set up a "
                          "create whose answer is lost may be made twice", exc)
                rt_id = exc.rt_id
            report.created.append(rt_id)
            log.info("ticket #%s created as RT #%s", ticket["id"], rt_id)
        with write_transaction(self.engine) as conn:
            linked = conn.execute(upsert_insert(conn, LINKS).values(
                ticket_id=ticket["id"], rt_id=rt_id, created_at=self.clock(), seen_txn=0,
            ).on_conflict_do_nothing(index_elements=[LINKS.c.ticket_id])).rowcount
            if linked:  # the API's and the page's external reference
                conn.execute(update(TICKETS).where(TICKETS.c.id == ticket["id"])
                             .values(external_ref=f"RT #{rt_id}"))
        return rt_id

    def _send(self, row: RowMapping, ticket: RowMapping, event: RowMapping,
              rt_id: int) -> None:
        """The event's calls; notes already in RT (an earlier try's) are not added again."""
        tried_before = row["attempts"] > 1
        for call in changes.calls_for(ticket, event):
            if call.op == "update":
                self.client.update(rt_id, call.fields)
                continue
            mark = changes.marker(ticket["id"], event["id"])
            if tried_before and self.client.has_note(rt_id, mark):
                continue
            if call.op == "correspond":
                self.client.correspond(rt_id, subject=call.subject, content=call.content)
            else:
                self.client.comment(rt_id, subject=call.subject, content=call.content)

    def _audit_dead(self, conn: Connection, row: RowMapping, error: str, now: float) -> None:
        ticket = conn.execute(select(TICKETS.c.id, TICKETS.c.customer_id).where(
            TICKETS.c.id == row["ticket_id"])).mappings().first()
        if ticket is None:
            return
        record_event(
            conn, ticket_id=ticket["id"], customer_id=ticket["customer_id"], problem_key=None,
            at=now, kind="rt_failed", actor=f"{RT_ACTOR_PREFIX}{self.config.user}",
            text=(f"not brought into Request Tracker after {row['attempts']} tries "
                  f"(event {row['event_id']}): {error}")[:ERROR_MAX],
            data={"change": row["id"], "event": row["event_id"], "attempts": row["attempts"]})
