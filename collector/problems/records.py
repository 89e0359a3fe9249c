"""Reading and writing problem_states rows, and what the engine knows about a key's check."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Connection, RowMapping, Table, and_, select

from collector.db import BulkStatement, in_list, is_postgres, upsert_insert
from collector.hosts.models import Customer, Host
from collector.problems.context import Record, Subject
from collector.problems.keys import ProblemKey
from collector.problems.models import EngineState, ProblemRecord
from collector.problems.states import ProblemState, new_state
from collector.state.models import CheckState
from collector.tickets.models import Ticket

RECORDS = cast(Table, ProblemRecord.__table__)
ENGINE_STATES = cast(Table, EngineState.__table__)
STATES = cast(Table, CheckState.__table__)
HOSTS = cast(Table, Host.__table__)
CUSTOMERS = cast(Table, Customer.__table__)
TICKETS = cast(Table, Ticket.__table__)


def _key_clause(key: ProblemKey) -> Any:
    return and_(RECORDS.c.customer == key.customer, RECORDS.c.host == key.host,
                RECORDS.c.check == key.check, RECORDS.c.target == key.target)


def record_from_row(row: Any) -> Record:
    """A record from a problem_states row (its columns by name).

    A stored state this version cannot read starts over as a new one (logged by the
    caller's audit of what follows); it is a cache of the results, not the only copy.
    """
    key = ProblemKey(row.customer, row.host, row.check, row.target)
    try:
        state = ProblemState.from_json(row.state)
    except ValueError:
        state = new_state(key)
    return Record(key=key, check_type=row.check_type, state=state, folded=row.folded,
                  ticket_id=row.ticket_id, pending_since=row.pending_since,
                  pending_reason=row.pending_reason)


def load_record(conn: Connection, key: ProblemKey, *, check_type: str) -> Record:
    """The key's stored record, or a new one (OK, nothing folded)."""
    row = conn.execute(select(RECORDS).where(_key_clause(key))).first()
    if row is None:
        return Record(key=key, check_type=check_type, state=new_state(key))
    return record_from_row(row)


def save_record(conn: Connection, record: Record, *, now: float) -> None:
    """Insert or update the key's row."""
    key = record.key
    values = {"check_type": record.check_type, "state": record.state.to_json(),
              "folded": record.folded, "ticket_id": record.ticket_id,
              "pending_since": record.pending_since, "pending_reason": record.pending_reason,
              "reported": record.state.reported, "updated_at": now}
    stmt = upsert_insert(conn, RECORDS).values(
        customer=key.customer, host=key.host, check=key.check, target=key.target, **values)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[RECORDS.c.customer, RECORDS.c.host, RECORDS.c.check,
                        RECORDS.c.target],
        set_=values))


_RECORD_COLUMNS = ("customer", "host", "check", "target", "check_type", "state", "folded",
                   "ticket_id", "pending_since", "pending_reason", "reported", "updated_at")


def _build_record_upsert(conn: Connection) -> Any:
    stmt = upsert_insert(conn, RECORDS)
    return stmt.on_conflict_do_update(
        index_elements=[RECORDS.c.customer, RECORDS.c.host, RECORDS.c.check, RECORDS.c.target],
        set_={name: stmt.excluded[name] for name in _RECORD_COLUMNS[4:]})


RECORD_UPSERT = BulkStatement(_build_record_upsert, _RECORD_COLUMNS)


def load_records(conn: Connection,
                 keys: Iterable[tuple[ProblemKey, str]]) -> dict[ProblemKey, Record]:
    """The stored records of these (key, check type) pairs in one query; new ones for the rest."""
    wanted = dict(keys)
    if not wanted:
        return {}
    hosts = sorted({key.host for key in wanted})
    found: dict[ProblemKey, Record] = {}
    for row in conn.execute(select(RECORDS).where(RECORDS.c.host.in_(hosts))):
        key = ProblemKey(row.customer, row.host, row.check, row.target)
        if key in wanted:
            found[key] = record_from_row(row)
    for key, check_type in wanted.items():
        if key not in found:
            found[key] = Record(key=key, check_type=check_type, state=new_state(key))
    return found


def save_records(conn: Connection, records: Sequence[Record], *, now: float) -> None:
    """Insert or update these keys' rows, all in one statement (or a pipelined executemany)."""
    RECORD_UPSERT.execute(conn, [
        (r.key.customer, r.key.host, r.key.check, r.key.target, r.check_type,
         json.dumps(r.state.to_json()), r.folded, r.ticket_id, r.pending_since,
         r.pending_reason, r.state.reported, now)
        for r in records])


def clear_dirty(conn: Connection, seen: Sequence[tuple[int, str, str, int]]) -> None:
    """Clear the dirty flag of these check states (host_id, check, target, results_count),
    each only if no result arrived since (its count is still the one seen)."""
    if not seen:
        return
    marker = in_list(conn, 1)
    check = conn.dialect.identifier_preparer.quote("check")
    conn.exec_driver_sql(
        f"UPDATE check_states SET dirty = {'false' if is_postgres(conn) else '0'}"
        f" WHERE host_id = {marker} AND {check} = {marker} AND target = {marker}"
        f" AND results_count = {marker}", list(seen))


def live_ticket_rows(conn: Connection,
                     keys: Iterable[ProblemKey]) -> dict[ProblemKey, RowMapping | None]:
    """The live tickets' rows of these keys in one query (as ``tickets.ticket_row`` reads
    them, with the customer's name); None for a key without one."""
    by_text = {str(key): key for key in keys}
    found: dict[ProblemKey, RowMapping | None] = dict.fromkeys(by_text.values())
    if by_text:
        rows = conn.execute(
            select(TICKETS, CUSTOMERS.c.name.label("customer"))
            .join(CUSTOMERS, CUSTOMERS.c.id == TICKETS.c.customer_id)
            .where(TICKETS.c.live_key.in_(sorted(by_text)))).mappings()
        for row in rows:
            found[by_text[row["live_key"]]] = row
    return found


def has_pending_records(conn: Connection) -> bool:
    """Whether any reported problem is held back without a ticket."""
    return conn.scalar(select(RECORDS.c.host).where(RECORDS.c.pending_since.is_not(None))
                       .limit(1)) is not None


def pending_records(conn: Connection) -> list[Record]:
    """Every reported problem held back without a ticket (pending_since set)."""
    rows = conn.execute(select(RECORDS).where(RECORDS.c.pending_since.is_not(None))
                        .order_by(RECORDS.c.pending_since)).all()
    return [record_from_row(r) for r in rows]


def state_columns() -> tuple[Any, ...]:
    """The columns of a check state and its host a Subject is built from."""
    return (STATES.c.host_id, STATES.c.check, STATES.c.target, STATES.c.type,
            STATES.c.status, STATES.c.summary, STATES.c.metrics, STATES.c.details,
            STATES.c.last_result_at, STATES.c.results_count, STATES.c.history,
            HOSTS.c.fqdn, HOSTS.c.critical, HOSTS.c.tags, HOSTS.c.customer_id,
            CUSTOMERS.c.name.label("customer"))


def state_join() -> Any:
    """check_states joined with their hosts and customers."""
    return STATES.join(HOSTS, HOSTS.c.id == STATES.c.host_id).join(
        CUSTOMERS, CUSTOMERS.c.id == HOSTS.c.customer_id)


def subject_from_row(row: Any) -> Subject:
    """A Subject from a row of ``state_columns``."""
    return Subject(
        key=ProblemKey(row.customer, row.fqdn, row.check, row.target),
        customer_id=row.customer_id, host_id=row.host_id, check_type=row.type,
        host_tags=tuple(row.tags or ()), host_critical=bool(row.critical),
        status=int(row.status), summary=row.summary, details=dict(row.details or {}),
        metrics=list(row.metrics or []))


def load_subject(conn: Connection, key: ProblemKey) -> Subject | None:
    """The current check state of a (host) key as a Subject; None when it is gone."""
    row = conn.execute(
        select(*state_columns()).select_from(state_join()).where(
            CUSTOMERS.c.name == key.customer, HOSTS.c.fqdn == key.host,
            STATES.c.check == key.check, STATES.c.target == key.target)
    ).first()
    return None if row is None else subject_from_row(row)


def customer_id(conn: Connection, name: str) -> int | None:
    """A customer's id by name."""
    found = conn.scalar(select(CUSTOMERS.c.id).where(CUSTOMERS.c.name == name))
    return None if found is None else int(found)


def engine_states(conn: Connection, prefix: str) -> dict[str, Any]:
    """The engine's named JSON states whose name starts with ``prefix``."""
    rows = conn.execute(select(ENGINE_STATES.c.name, ENGINE_STATES.c.data)
                        .where(ENGINE_STATES.c.name.startswith(prefix, autoescape=True)))
    return {r.name: r.data for r in rows}


def save_engine_state(conn: Connection, name: str, data: Any, *, now: float) -> None:
    """Insert or replace one named state."""
    stmt = upsert_insert(conn, ENGINE_STATES).values(name=name, data=data, updated_at=now)
    conn.execute(stmt.on_conflict_do_update(index_elements=[ENGINE_STATES.c.name],
                                            set_={"data": data, "updated_at": now}))


def delete_engine_state(conn: Connection, name: str) -> None:
    """Forget one named state (nothing left to remember)."""
    conn.execute(ENGINE_STATES.delete().where(ENGINE_STATES.c.name == name))
