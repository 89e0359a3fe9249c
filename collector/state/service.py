"""The rules of current state: applying results, recording changes, host silence, problems."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any, Final, cast

from sqlalchemy import Connection, Engine, Table, and_, case, func, select, true, update
from sqlalchemy.orm import Session

from checks.result import Status
from collector.db import BulkStatement, in_list, upsert_insert, write_transaction
from collector.hosts.models import Customer, Host
from collector.settings import SilenceSettings
from collector.state.models import (
    HISTORY_LENGTH,
    SILENCE_CHECK,
    SILENCE_TARGET,
    CheckState,
    Problem,
    StatusChange,
)
from collector.timefmt import human_duration, iso

STATES = cast(Table, CheckState.__table__)
CHANGES = cast(Table, StatusChange.__table__)
HOSTS = cast(Table, Host.__table__)


NewResult = tuple[int, str, int, str, str, str, int, str, str, str, float, float]
"""A stored result as the state needs it: a row of the results table, in the ingest order
(host_id, result_uid, seq, type, check, target, status, summary, metrics_json,
details_json, produced_at, received_at). A plain tuple: the writer passes the rows it
inserts, thousands a second, without building another object per result."""
_HOST: Final = 0
_SEQ: Final = 2
_TYPE: Final = 3
_CHECK: Final = 4
_TARGET: Final = 5
_STATUS: Final = 6
_SUMMARY: Final = 7
_METRICS: Final = 8
_DETAILS: Final = 9
_PRODUCED: Final = 10
_BY_HOST_THEN_AGE = itemgetter(_HOST, _PRODUCED, _SEQ)


_Known = tuple[int, float, float, int | None, int, str, bool]
"""A state as apply_results tracks it: status, last_result_at, last_change_at,
previous_status, results_count, history, dirty."""
DIGITS = ("0", "1", "2", "3")
"""A status as one digit of ``check_states.history``."""

_STATE_COLUMNS = ("host_id", "check", "target", "type", "status", "summary", "metrics", "details",
                  "last_result_at", "last_change_at", "previous_status", "results_count",
                  "history", "dirty")
_CHANGE_COLUMNS = ("host_id", "check", "target", "from_status", "to_status", "at", "summary")


def _build_state_upsert(conn: Connection) -> Any:
    stmt = upsert_insert(conn, STATES)
    return stmt.on_conflict_do_update(
        index_elements=[STATES.c.host_id, STATES.c.check, STATES.c.target],
        set_={name: stmt.excluded[name] for name in _STATE_COLUMNS[3:]},
        # never let an older result overwrite a newer state, whoever writes it
        where=STATES.c.last_result_at <= stmt.excluded.last_result_at,
    )


STATE_UPSERT = BulkStatement(_build_state_upsert, _STATE_COLUMNS)
CHANGE_INSERT = BulkStatement(lambda _conn: CHANGES.insert(), _CHANGE_COLUMNS)


def apply_results(
    *, conn: Connection, results: Sequence[NewResult], hosts: Iterable[int], now: float
) -> int:
    """Fold results into check_states, append status changes; return the changes recorded.

    The caller holds the hosts' row locks (or SQLite's write lock), so reading the current
    states and writing them back cannot interleave with another collector doing the same.
    An older result (produced before the stored one) leaves the state alone.
    """
    host_ids = sorted(set(hosts))
    if not host_ids:
        return 0
    rows = conn.exec_driver_sql(
        f"SELECT host_id, {_quoted_check(conn)}, target, status, last_result_at,"
        f" last_change_at, previous_status, results_count, history, dirty FROM check_states"
        f" WHERE host_id IN ({in_list(conn, len(host_ids))})",
        tuple(host_ids),
    ).fetchall()
    current: dict[tuple[int, str, str], _Known] = {
        (r[0], r[1], r[2]): (r[3], r[4], r[5], r[6], r[7], r[8], bool(r[9])) for r in rows
    }
    changes: list[tuple[Any, ...]] = []
    upserts: dict[tuple[int, str, str], tuple[Any, ...]] = {}
    for res in sorted(results, key=_BY_HOST_THEN_AGE):
        host_id, check, target, status, produced_at = (
            res[_HOST], res[_CHECK], res[_TARGET], res[_STATUS], res[_PRODUCED])
        key = (host_id, check, target)
        known = current.get(key)
        if known is not None and produced_at < known[1]:
            continue
        count, history, dirty = (0, "", False) if known is None else known[4:]
        history = (history + DIGITS[status])[-HISTORY_LENGTH:]
        # Work for the ticket engine while a failure is among the recent statuses (the
        # engine clears the flag once it has folded every result).
        dirty = dirty or history.strip("0") != ""
        if known is None or known[0] != status:
            from_status = None if known is None else known[0]
            changes.append((host_id, check, target, from_status, status, produced_at,
                            res[_SUMMARY]))
            known = (status, produced_at, produced_at, from_status, count + 1, history, dirty)
        else:
            known = (status, produced_at, known[2], known[3], count + 1, history, dirty)
        current[key] = known
        upserts[key] = (
            host_id, check, target, res[_TYPE], status, res[_SUMMARY], res[_METRICS],
            res[_DETAILS], produced_at, known[2], known[3], count + 1, history, dirty,
        )
    STATE_UPSERT.execute(conn, list(upserts.values()))
    for host_id in host_ids:
        silence = current.get((host_id, SILENCE_CHECK, SILENCE_TARGET))
        if silence is not None and silence[0] != Status.OK:
            changes.extend(_end_silence(conn, host_id, now))
    CHANGE_INSERT.execute(conn, changes)
    return len(changes)


def _quoted_check(conn: Connection) -> str:
    return str(conn.dialect.identifier_preparer.quote("check"))


def _silence_key(host_id: int) -> Any:
    return and_(
        STATES.c.host_id == host_id,
        STATES.c.check == SILENCE_CHECK,
        STATES.c.target == SILENCE_TARGET,
    )


def folded_values(status: Status) -> dict[str, Any]:
    """The problem-rule columns of an UPDATE that folds one more ``status`` into a row."""
    history = STATES.c.history
    kept = case((func.length(history) >= HISTORY_LENGTH, func.substr(history, 2)),
                else_=history)
    return {"results_count": STATES.c.results_count + 1,
            "history": kept + DIGITS[status], "dirty": true()}


def _end_silence(conn: Connection, host_id: int, now: float) -> list[tuple[Any, ...]]:
    summary = "pushing again"
    ended = conn.execute(
        update(STATES)
        .where(_silence_key(host_id), STATES.c.status != int(Status.OK))
        .values(status=int(Status.OK), previous_status=STATES.c.status, summary=summary,
                last_result_at=now, last_change_at=now, details={},
                **folded_values(Status.OK))
        .returning(STATES.c.previous_status)
    ).first()
    if ended is None:
        return []
    return [(host_id, SILENCE_CHECK, SILENCE_TARGET, ended[0], int(Status.OK), now, summary)]


def silence_threshold(expected_interval: float | None, settings: SilenceSettings) -> float:
    """Seconds without a push after which a host is silent."""
    interval = expected_interval or settings.default_interval
    return max(settings.intervals * interval, settings.min_silence)


def detect_silence(
    *, engine: Engine, settings: SilenceSettings, now: float, started_at: float
) -> list[str]:
    """Mark hosts that stopped pushing as silent (CRITICAL); return the newly silent hosts.

    Nothing happens during ``startup_grace`` after this process started, and a host's
    silence is counted from this process's start at the earliest: after a collector
    outage, agents need time to notice and push again. The write is conditional, so two
    collectors detecting the same host at once record one status change.
    """
    if now - started_at < settings.startup_grace:
        return []
    with engine.connect() as conn:
        rows = conn.execute(_silence_candidates_query()).all()
    candidates = [r[0] for r in rows if _is_silent(r, settings, now, started_at)]
    if not candidates:
        return []
    newly_silent: list[str] = []
    with write_transaction(engine) as conn:
        locked = conn.execute(
            _silence_candidates_query()
            .where(HOSTS.c.id.in_(candidates))
            .order_by(HOSTS.c.id)
            .with_for_update(of=HOSTS)
        ).all()
        for row in locked:
            if not _is_silent(row, settings, now, started_at):
                continue  # it pushed meanwhile
            if _start_silence(conn, row, settings, now):
                newly_silent.append(row[1])
    return newly_silent


def _silence_candidates_query() -> Any:
    return select(
        HOSTS.c.id, HOSTS.c.fqdn, HOSTS.c.last_seen_at, HOSTS.c.enrolled_at,
        HOSTS.c.expected_interval, STATES.c.status,
    ).select_from(
        HOSTS.outerjoin(
            STATES,
            and_(STATES.c.host_id == HOSTS.c.id, STATES.c.check == SILENCE_CHECK,
                 STATES.c.target == SILENCE_TARGET),
        )
    )


def _is_silent(row: Any, settings: SilenceSettings, now: float, started_at: float) -> bool:
    _, _, last_seen, enrolled, interval, silence_status = row
    if silence_status == Status.CRITICAL:
        return False
    since = max(last_seen if last_seen is not None else enrolled, started_at)
    return bool(now - since > silence_threshold(interval, settings))


def _start_silence(conn: Connection, row: Any, settings: SilenceSettings, now: float) -> bool:
    host_id, _, last_seen, enrolled, interval, _ = row
    expected = interval or settings.default_interval
    if last_seen is None:
        summary = (f"no push since enrolment {human_duration(now - enrolled)} ago "
                   f"(expected every {human_duration(expected)})")
    else:
        summary = (f"no push for {human_duration(now - last_seen)} "
                   f"(expected every {human_duration(expected)})")
    details = {"last_seen_at": None if last_seen is None else iso(last_seen),
               "expected_interval": expected}
    values = {
        "type": "silence", "status": int(Status.CRITICAL), "summary": summary,
        "metrics": [], "details": details, "last_result_at": now, "last_change_at": now,
    }
    # RETURNING, not rowcount: the psycopg dialect reports -1 for INSERT .. ON CONFLICT.
    inserted = conn.execute(
        upsert_insert(conn, STATES)
        .values(host_id=host_id, check=SILENCE_CHECK, target=SILENCE_TARGET,
                previous_status=None, results_count=1, history=DIGITS[Status.CRITICAL],
                dirty=True, **values)
        .on_conflict_do_nothing(index_elements=[STATES.c.host_id, STATES.c.check,
                                                STATES.c.target])
        .returning(STATES.c.host_id)
    ).first()
    from_status: int | None = None
    if inserted is None:
        updated = conn.execute(
            update(STATES)
            .where(_silence_key(host_id), STATES.c.status != int(Status.CRITICAL))
            .values(previous_status=STATES.c.status, **values, **folded_values(Status.CRITICAL))
            .returning(STATES.c.previous_status)
        ).first()
        if updated is None:
            return False
        from_status = updated[0]
    conn.execute(CHANGES.insert().values(
        host_id=host_id, check=SILENCE_CHECK, target=SILENCE_TARGET, from_status=from_status,
        to_status=int(Status.CRITICAL), at=now, summary=summary,
    ))
    return True


def list_problems(*, session: Session, customer_id: int | None = None) -> list[Problem]:
    """Every non-OK current state (of ``customer_id``, if given), host silence included:
    worst first, then oldest change."""
    query = (
        select(
            Customer.name, Host.fqdn, Host.critical, CheckState.check, CheckState.target,
            CheckState.status, CheckState.summary, CheckState.last_change_at,
            CheckState.last_result_at,
        )
        .join(Host, Host.id == CheckState.host_id)
        .join(Customer, Customer.id == Host.customer_id)
        .where(CheckState.status != int(Status.OK))
    )
    if customer_id is not None:
        query = query.where(Host.customer_id == customer_id)
    rows = list(session.execute(query).all())
    rows.sort(key=lambda r: (-Status(r[5]).severity, r[7], r[1], r[3], r[4]))
    return [
        Problem(
            customer=r[0], host=r[1], host_critical=r[2], check=r[3], target=r[4],
            status=r[5], status_name=Status(r[5]).name, summary=r[6], since=iso(r[7]),
            last_result_at=iso(r[8]),
        )
        for r in rows
    ]
