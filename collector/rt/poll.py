"""Reading RT back: staff work done in Request Tracker moves the collector's SLA clocks.

Every ``poll_every`` the connector asks RT (TicketSQL) for the tickets carrying the key
field that changed since its last poll (with a margin for clocks that disagree), reads
each linked ticket's history past the last transaction it read (``rt_links.seen_txn``),
and applies what staff did:

- correspondence: a reply to the customer - the first response, or an update - made at
  the time RT recorded it (never later than now, never before the ticket opened);
- a comment: an internal comment;
- a status change: open, stalled, resolved, rejected (a resolved ticket that staff opens
  again is reopened);
- a priority set to one of the policy's codes (80/60/40/20): a priority change.

The connector's own transactions (its RT user) and RT's (RT_System) are skipped. Each
transaction is applied in one database transaction with the advance of ``seen_txn``, made
only if nobody advanced it meanwhile, so two collectors polling together apply it once.
What comes from RT is recorded with the actor ``rt:<user>`` and is not sent back to RT;
the customer is not mailed again (RT mailed the requestors itself).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Connection, Engine, RowMapping, Table, select, update

from collector.db import upsert_insert, write_transaction
from collector.errors import CollectorError
from collector.policy import Policy
from collector.problems.models import EngineState
from collector.rt.client import RtClient, Txn
from collector.rt.models import LINKS, POLL_STATE, RT_ACTOR_PREFIX
from collector.settings import RequestTrackerSettings, Settings
from collector.tickets import service
from collector.tickets.models import ACTIVE_STATES, REJECTED, RESOLVED, STALLED
from collector.tickets.priority import Priority, PriorityError

log = logging.getLogger(__name__)
STATES = cast(Table, EngineState.__table__)
# RT's LastUpdated is RT's clock; the poll asks from this much before its last start.
MARGIN = 300.0
RT_SYSTEM = "RT_System"
_STATUSES = {"open", STALLED, RESOLVED, REJECTED}


@dataclass
class PollReport:
    """What one poll did: RT tickets read, and (RT txn id, what was done) applied."""

    tickets: list[int] = field(default_factory=list)
    applied: list[tuple[int, str]] = field(default_factory=list)
    skipped: int = 0


def poll(engine: Engine, settings: Settings, policy: Policy, client: RtClient, *,
         clock: Callable[[], float], wall: Callable[[], float] = time.time) -> PollReport:
    """One poll of RT. ``clock``: the collector's time (SLA); ``wall``: real time, as RT's."""
    config = _config(settings)
    report = PollReport()
    started = wall()
    with engine.connect() as conn:
        stored = conn.execute(select(STATES.c.data).where(STATES.c.name == POLL_STATE)).scalar()
    since = float(stored["since"]) - MARGIN if stored else 0.0
    for rt_id in client.changed_since(since):
        with engine.connect() as conn:
            link = conn.execute(select(LINKS).where(LINKS.c.rt_id == rt_id)).mappings().first()
        if link is None:
            continue  # a ticket of another collector's database, or not ours yet
        report.tickets.append(rt_id)
        passed = 0  # the last of a run of transactions that are not staff work
        for txn in client.history(rt_id, after=int(link["seen_txn"])):
            if txn.creator in (config.user, RT_SYSTEM):
                passed = txn.id
                report.skipped += 1
                continue
            if passed:  # one update for the run, not one per transaction
                with write_transaction(engine) as conn:
                    _advance(conn, link, passed)
                passed = 0
            _apply(engine, settings, policy, client, link, txn, clock(), report)
        if passed:
            with write_transaction(engine) as conn:
                _advance(conn, link, passed)
    with write_transaction(engine) as conn:
        stmt = upsert_insert(conn, STATES).values(
            name=POLL_STATE, data={"since": started}, updated_at=started)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[STATES.c.name],
            set_={"data": stmt.excluded.data, "updated_at": stmt.excluded.updated_at}))
    return report


def _advance(conn: Connection, link: RowMapping, txn_id: int) -> bool:
    """Mark RT history read up to ``txn_id``; False when it was read that far already
    (another collector got there first: it is never moved backwards)."""
    return bool(conn.execute(update(LINKS).where(
        LINKS.c.ticket_id == link["ticket_id"], LINKS.c.seen_txn < txn_id,
    ).values(seen_txn=txn_id)).rowcount)


def _apply(engine: Engine, settings: Settings, policy: Policy, client: RtClient,
           link: RowMapping, txn: Txn, now: float, report: PollReport) -> None:
    """Apply one staff transaction, in one database transaction with the advance of
    ``seen_txn`` past it; nothing when another collector advanced it first."""
    ticket_id = int(link["ticket_id"])
    text = ""
    if txn.type in ("Correspond", "Comment"):
        text = client.content(txn.id).strip() or txn.subject  # no network inside the txn
    with write_transaction(engine) as conn:
        if not _advance(conn, link, txn.id):
            return  # another collector applied it
        try:
            done = _act(conn, settings, policy, ticket_id, txn, text, now)
        except CollectorError as exc:  # the ticket's state does not allow it: noted, skipped
            log.info("RT #%s transaction %s (%s) not applied to ticket #%s: %s",
                     link["rt_id"], txn.id, txn.type, ticket_id, exc)
            done = None
        if done is None:
            report.skipped += 1
        else:
            report.applied.append((txn.id, done))


def _act(conn: Connection, settings: Settings, policy: Policy, ticket_id: int, txn: Txn,
         text: str, now: float) -> str | None:
    """Apply one staff transaction to the ticket; what was done, or None when nothing."""
    ticket = service.ticket_row(conn, ticket_id)
    actor = f"{RT_ACTOR_PREFIX}{txn.creator}"
    # When RT recorded it: a reply counts when it was given, not when it was read here.
    # Notes go no earlier than the opening; state changes no earlier than the last change.
    note_at = min(now, max(txn.created, float(ticket["created_at"])))
    at = min(now, max(txn.created, float(ticket["updated_at"])))
    if txn.type == "Correspond":
        if ticket["state"] not in ACTIVE_STATES:
            service.comment(conn, ticket_id, text=f"reply in RT while {ticket['state']}: "
                            f"{text}", actor=actor, now=note_at)
            return "comment"
        service.reply(conn, ticket_id, text=text, actor=actor, policy=policy,
                      settings=settings, now=note_at, tell=False)
        return "reply"
    if txn.type == "Comment":
        service.comment(conn, ticket_id, text=text, actor=actor, now=note_at)
        return "comment"
    if txn.type == "Status" and txn.new in _STATUSES:
        new = str(txn.new)
        if ticket["state"] in ACTIVE_STATES:
            if new == ticket["state"] or (new == "open" and ticket["state"] == "new"):
                return None  # RT opens a new ticket on correspondence; the reply did
            service.set_state(conn, ticket_id, state=new, actor=actor,
                              reason="changed in Request Tracker", policy=policy,
                              settings=settings, now=at, tell=False)
            return new
        if new in ("open", STALLED):
            service.reopen(conn, ticket_id, actor=actor, reason="opened again in Request "
                           "Tracker", policy=policy, settings=settings, now=at, tell=False)
            return "reopen"
        return None
    if txn.type == "Set" and txn.field == "Priority" and ticket["state"] in ACTIVE_STATES:
        try:
            new_priority = Priority.parse(int(txn.new or ""))
        except (ValueError, PriorityError):
            return None  # not one of the policy's codes: RT's own business
        if new_priority == Priority(ticket["priority"]):
            return None
        service.change_priority(conn, ticket_id, priority=new_priority,
                                reason=f"set to {txn.new} in Request Tracker", actor=actor,
                                policy=policy, now=at)
        return f"priority {new_priority}"
    return None


def _config(settings: Settings) -> RequestTrackerSettings:
    if settings.request_tracker is None:
        raise ValueError("[request_tracker] is not configured")
    return settings.request_tracker
