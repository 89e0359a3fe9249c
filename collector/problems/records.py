"""Reading and writing problem_states rows, and what the engine knows about a key's check."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, Table, and_, select

from collector.db import upsert_insert
from collector.hosts.models import Customer, Host
from collector.problems.keys import ProblemKey
from collector.problems.models import EngineState, ProblemRecord
from collector.problems.service import Record, Subject
from collector.problems.states import ProblemState, new_state
from collector.state.models import CheckState

RECORDS = cast(Table, ProblemRecord.__table__)
ENGINE_STATES = cast(Table, EngineState.__table__)
STATES = cast(Table, CheckState.__table__)
HOSTS = cast(Table, Host.__table__)
CUSTOMERS = cast(Table, Customer.__table__)


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
