"""The ticket engine: check states -> problems -> tickets, one pass at a time.

A pass (``run_once``) does, each step in write transactions that on PostgreSQL first take
one advisory lock (SQLite's BEGIN IMMEDIATE serializes by itself), so that any number of
collectors on one store act as one:

1. judge every host's agent version (writes the collector's own check state on a change);
2. decide mass silence per customer (site problems, held hosts);
3. fold the new results of every check state marked dirty into its key's problem state
   and act on the events (open, reopen, add to the ticket, hold, audit);
4. open the tickets of held problems that nothing holds any more;
5. resolve recovered tickets nobody worked on once they stayed OK for the hold.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text

from checks.result import Status
from collector.db import ENGINE_LOCK_ID, is_postgres, write_transaction
from collector.policy import Policy
from collector.problems.config import ProblemRules
from collector.problems.context import Context, EngineReport, Record, StillFailingRun, Subject
from collector.problems.keys import HOST_SILENCE_CHECK, SITE_HOST, ProblemKey
from collector.problems.records import (
    HOSTS,
    STATES,
    clear_dirty,
    has_pending_records,
    live_ticket_rows,
    load_records,
    load_subject,
    pending_records,
    save_record,
    save_records,
    state_columns,
    state_join,
    subject_from_row,
)
from collector.problems.service import handle_events, retry_pending
from collector.problems.site import load_site_subject, mass_silence_due, settle_mass_silence
from collector.problems.states import EventKind, ProblemEvent, ProblemState, Step, advance
from collector.problems.versions_job import check_agent_versions, version_changes
from collector.settings import Settings
from collector.tickets import service as tickets
from collector.tickets.models import Ticket

log = logging.getLogger(__name__)

CHUNK = 50
"""Dirty check states folded per write transaction (a host's are never split): each holds
the store's write lock for a few milliseconds, so ingest's commits wait at most that."""

PAUSE = 0.01
"""Seconds between two folding transactions on SQLite. A writer that found the store
locked sleeps (1, 2, 5, 10 ms, ...) before it tries again: without a pause the engine's
next transaction would take the lock first, over and over, and ingest would wait for the
whole pass instead of one transaction."""


@contextmanager
def engine_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction that holds the engine's lock: one engine at a time, store-wide."""
    with write_transaction(engine) as conn:
        if is_postgres(conn):
            conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ENGINE_LOCK_ID})
        yield conn


def run_once(*, engine: Engine, policy: Policy, settings: Settings, now: float,
             chunk: int = CHUNK, pause: float = PAUSE) -> EngineReport:
    """One engine pass at ``now``; returns what it did.

    Each step first reads (without the write lock) whether it has anything to do, and
    takes no write transaction when it has not: a quiet pass writes nothing.
    """
    report = EngineReport()
    verdicts: dict[Any, Any] = {}

    def context(conn: Connection) -> Context:
        return Context(conn=conn, policy=policy, settings=settings, now=now, report=report,
                       verdicts=verdicts)

    with engine.connect() as conn:
        versions = bool(version_changes(conn, window=policy.versions, now=now))
        silence = mass_silence_due(conn)
    if versions or silence:
        with engine_transaction(engine) as conn:
            report.versions_changed = check_agent_versions(conn, window=policy.versions,
                                                           now=now)
            settle_mass_silence(context(conn))
    with engine.connect() as conn:
        dirty = _dirty_counts(conn)
    for number, host_ids in enumerate(_chunks(dirty, rows=chunk)):
        if number and pause > 0 and not is_postgres(engine):
            time.sleep(pause)  # let the writers that waited for this chunk in first
        with engine_transaction(engine) as conn:
            _lock_host_ids(conn, host_ids)
            fold_rows(context(conn), _dirty_rows(conn, host_ids))
    hold = settings.tickets.recovery_hold
    with engine.connect() as conn:
        busy = has_pending_records(conn) or bool(_recovered(conn, before=now - hold))
    if busy:
        with engine_transaction(engine) as conn:
            ctx = context(conn)
            records = pending_records(conn)
            _lock_hosts(conn, fqdns={r.key.host for r in records})
            for record in records:
                _retry(ctx, record)
            _resolve_recovered(ctx)
    return report


def _dirty_counts(conn: Connection) -> list[tuple[int, int]]:
    """Every host with dirty check states and how many, in host id order (read only)."""
    return [(int(h), int(n)) for h, n in conn.execute(
        select(STATES.c.host_id, func.count()).where(STATES.c.dirty.is_(True))
        .group_by(STATES.c.host_id).order_by(STATES.c.host_id))]


def _chunks(dirty: list[tuple[int, int]], *, rows: int) -> Iterator[list[int]]:
    """Hosts in id order, grouped so that each group has about ``rows`` dirty states."""
    group: list[int] = []
    size = 0
    for host_id, count in dirty:
        if group and size + count > rows:
            yield group
            group, size = [], 0
        group.append(host_id)
        size += count
    if group:
        yield group


def _lock_host_ids(conn: Connection, host_ids: list[int]) -> None:
    """Lock these hosts' rows (in id order) as ingest locks them before writing their states.

    Ingest and the silence detector lock a host's row (in id order) before they write its
    check states; taking the same locks first, in the same order, keeps the engine from
    ever waiting on them in a cycle (a deadlock) on PostgreSQL.
    """
    if host_ids and is_postgres(conn):
        conn.execute(select(HOSTS.c.id).where(HOSTS.c.id.in_(host_ids))
                     .order_by(HOSTS.c.id).with_for_update(key_share=True))


def _lock_hosts(conn: Connection, *, fqdns: set[str]) -> None:
    """Lock these hosts' rows in id order before tickets referring to them are written."""
    if fqdns and is_postgres(conn):
        conn.execute(select(HOSTS.c.id).where(HOSTS.c.fqdn.in_(sorted(fqdns)))
                     .order_by(HOSTS.c.id).with_for_update(key_share=True))


def _dirty_rows(conn: Connection, host_ids: list[int]) -> list[Any]:
    if not host_ids:
        return []
    return list(conn.execute(
        select(*state_columns()).select_from(state_join())
        .where(STATES.c.dirty.is_(True), STATES.c.host_id.in_(host_ids))
        .order_by(STATES.c.host_id, STATES.c.check, STATES.c.target)).all())


def rules_for(rules: ProblemRules) -> ProblemRules:
    """The problem rules with the collector's own checks hard at once.

    Host silence and the agent-version verdict are written by the collector once per
    change, not sampled by an agent every interval: a second result would never come.
    """
    if rules.hard_after_by_check.get(HOST_SILENCE_CHECK) == 1:
        return rules
    return replace(rules, hard_after_by_check={**rules.hard_after_by_check,
                                               HOST_SILENCE_CHECK: 1})


def fold_rows(ctx: Context, rows: list[Any]) -> None:
    """Fold these dirty check states (rows of ``state_columns``) and act on the events.

    Their problem records and live tickets are read in one query each, the records written
    back in one statement, and the dirty flags cleared in one; a row stays dirty if a
    result arrived meanwhile (the clearing is conditional on the count seen).
    """
    if not rows:
        return
    subjects = [subject_from_row(row) for row in rows]
    records = load_records(ctx.conn, ((s.key, row.type) for s, row in zip(subjects, rows,
                                                                           strict=True)))
    ctx.live = live_ticket_rows(ctx.conn, records)
    rules = rules_for(ctx.policy.problems)
    for row, subject in zip(rows, subjects, strict=True):
        fold_row(ctx, row, subject, records[subject.key], rules=rules)
    ctx.live = None
    save_records(ctx.conn, list(records.values()), now=ctx.now)
    clear_dirty(ctx.conn, [(row.host_id, row.check, row.target, row.results_count)
                           for row in rows])


def fold_row(ctx: Context, row: Any, subject: Subject, record: Record, *,
             rules: ProblemRules) -> None:
    """Fold one dirty check state's new results into its problem record and act on the events.

    The new results are the last ``results_count - folded`` statuses of the row's history
    (at most the whole history: results beyond it are lost to flap detection, not to the
    current status). They all carry the row's ``last_result_at``. The caller saves the
    record and clears the row's dirty flag.
    """
    fresh = row.results_count - record.folded
    if fresh < 0:  # the check state was recreated: count from its start
        fresh = row.results_count
    history = row.history or ""
    digits = history[len(history) - min(fresh, len(history)):] if fresh > 0 else ""
    at = datetime.fromtimestamp(row.last_result_at, UTC)
    events: list[ProblemEvent | StillFailingRun] = []
    state = record.state
    i = 0
    while i < len(digits):
        status = Status(int(digits[i]))
        step = advance(state=state, status=status, at=at, rules=rules, check_type=row.type)
        events.extend(step.events)
        same = i + 1
        while same < len(digits) and digits[same] == digits[i]:
            same += 1
        if same - i > 1 and _still_failing(state, step, at):
            # The same status again changes nothing but the attempt: fold the rest of
            # the run at once (its events are made only if the ticket's update is due).
            run = same - i - 1
            events.append(StillFailingRun(after=step.state, status=status, at=at,
                                          rules=rules, check_type=row.type, count=run))
            state = replace(step.state, attempt=step.state.attempt + run)
            i = same
        else:
            state = step.state
            i += 1
    record.state = state
    record.folded = row.results_count
    record.check_type = row.type
    ctx.report.results += len(digits)
    handle_events(ctx, record, subject, events)


def _still_failing(before: ProblemState, step: Step, at: datetime) -> bool:
    """Whether ``step`` only counted one more result of a hard, steady, non-flapping problem.

    Then the same status again gives the same step with the attempt one higher (the
    history, its percent state change and every other field stay as they are).
    """
    return (len(step.events) == 1 and step.events[0].kind is EventKind.STILL_FAILING
            and not step.state.flapping
            and step.state == replace(before, attempt=before.attempt + 1, last_result_at=at))


def _retry(ctx: Context, record: Any) -> None:
    key: ProblemKey = record.key
    if key.host == SITE_HOST:
        subject = load_site_subject(ctx, key.customer)
    else:
        subject = load_subject(ctx.conn, key)
    if subject is None:  # the host was removed: nothing left to open a ticket for
        record.pending_since = record.pending_reason = None
    else:
        retry_pending(ctx, record, subject)
    save_record(ctx.conn, record, now=ctx.now)


def _recovered(conn: Connection, *, before: float) -> list[int]:
    """Live tickets nobody worked on that recovered at or before ``before``."""
    return [int(t) for t in conn.scalars(
        select(Ticket.id).where(Ticket.live_key.is_not(None), Ticket.recovered_at.is_not(None),
                                Ticket.worked.is_(False), Ticket.recovered_at <= before)
        .order_by(Ticket.id))]


def _resolve_recovered(ctx: Context) -> None:
    hold = ctx.settings.tickets.recovery_hold
    for ticket_id in _recovered(ctx.conn, before=ctx.now - hold):
        if tickets.resolve_recovered(ctx.conn, ticket_id, now=ctx.now, hold=hold):
            ctx.report.resolved.append(ticket_id)
