"""The Request Tracker outbox: one row per ticket event RT must hear of, and the links.

``rt_changes`` is written in the transaction that records the event (see ``enqueue``), so
an event and its way to RT commit together or not at all. The connector sends a ticket's
changes one at a time in ``id`` order; a ticket's next change waits until the one before
it is in RT. ``rt_links`` says which RT ticket mirrors a collector ticket, and how far the
connector has read that RT ticket's history back.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import cast

from sqlalchemy import (
    Connection,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    delete,
    exists,
    func,
    literal,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column

from collector.db import Base, upsert_insert, write_transaction
from collector.problems.models import EngineState
from collector.state.models import BigId

PENDING, DONE, DEAD = "pending", "done", "dead"
# The engine_states row that says the connector is configured: while it exists, ticket
# events are queued for RT. The collector writes it at start when [request_tracker] is set
# and removes it when not (collector.rt.sync.set_enabled).
ENABLED_STATE = "rt.connector"
POLL_STATE = "rt.poll"
# A random name of this collector database, written once and kept: part of every key
# field value, so a second installation (or a database started afresh) writing into the
# same RT never takes another's ticket #1 for its own.
INSTANCE_STATE = "rt.instance"
# Actions that came from RT (read back by the poll) are recorded with this actor prefix
# and never sent back to RT.
RT_ACTOR_PREFIX = "rt:"


class RtChange(Base):
    """One ticket event to bring into RT (a create, a note, a priority or status change)."""

    __tablename__ = "rt_changes"
    __table_args__ = (Index(None, "ticket_id", "state", "id"),
                      Index(None, "state", "next_attempt_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("tickets.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("ticket_events.id", ondelete="CASCADE"), unique=True)
    created_at: Mapped[float] = mapped_column(Double)
    state: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Double)
    lease_until: Mapped[float | None] = mapped_column(Double)
    done_at: Mapped[float | None] = mapped_column(Double)
    last_error: Mapped[str | None] = mapped_column(Text)


class RtLink(Base):
    """The RT ticket of a collector ticket; ``seen_txn``: RT history read up to here."""

    __tablename__ = "rt_links"

    ticket_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    rt_id: Mapped[int] = mapped_column(BigId, unique=True)
    created_at: Mapped[float] = mapped_column(Double)
    seen_txn: Mapped[int] = mapped_column(BigId, default=0)


CHANGES = cast(Table, RtChange.__table__)
LINKS = cast(Table, RtLink.__table__)
_STATES = cast(Table, EngineState.__table__)


def enqueue(conn: Connection, *, ticket_id: int, event_id: int, actor: str, now: float) -> None:
    """Queue a ticket event for RT, in the caller's transaction, if the connector is on.

    Events that came from RT (actor ``rt:...``) are not sent back. One statement: the row
    is inserted only while the ``rt.connector`` state exists.
    """
    if actor.startswith(RT_ACTOR_PREFIX):
        return
    enabled = exists().where(_STATES.c.name == ENABLED_STATE)
    conn.execute(CHANGES.insert().from_select(
        ["ticket_id", "event_id", "created_at", "state", "attempts", "next_attempt_at"],
        select(literal(ticket_id), literal(event_id), literal(now), literal(PENDING),
               literal(0), literal(now)).where(enabled),
    ))


def set_enabled(engine: Engine, enabled: bool, *, now: float) -> None:
    """Queue ticket events for RT from now on (the connector is configured), or stop."""
    with write_transaction(engine) as conn:
        if not enabled:
            conn.execute(delete(_STATES).where(_STATES.c.name == ENABLED_STATE))
            return
        for name, data in ((ENABLED_STATE, {"since": now}),
                           (INSTANCE_STATE, {"instance": secrets.token_hex(4)})):
            conn.execute(upsert_insert(conn, _STATES).values(
                name=name, data=data, updated_at=now,
            ).on_conflict_do_nothing(index_elements=[_STATES.c.name]))


def instance_name(conn: Connection) -> str:
    """This database's instance name (see INSTANCE_STATE); ValueError before set_enabled."""
    data = conn.execute(select(_STATES.c.data).where(_STATES.c.name == INSTANCE_STATE)).scalar()
    if not data or not data.get("instance"):
        raise ValueError("the Request Tracker connector was never switched on here")
    return str(data["instance"])


# ---------------------------------------------------------------------- the backlog


@dataclass(frozen=True)
class Backlog:
    """The changes not in RT yet, for the dashboard and ``/metrics``."""

    pending: int  # changes waiting (due or retried later)
    tickets: int  # tickets with changes waiting
    failing: int  # waiting changes whose last try failed
    dead: int  # changes given up
    oldest_seconds: float  # age of the oldest waiting change; 0 when none
    last_error: str | None  # the latest failure of a waiting change


def backlog(conn: Connection, *, now: float) -> Backlog:
    """Counts of the changes waiting, failing and given up; the oldest one's age."""
    c = CHANGES.c
    pending, tickets, oldest = conn.execute(
        select(func.count(), func.count(func.distinct(c.ticket_id)), func.min(c.created_at))
        .where(c.state == PENDING)).one()
    failing = conn.execute(select(func.count()).where(
        c.state == PENDING, c.last_error.is_not(None))).scalar_one()
    dead = conn.execute(select(func.count()).where(c.state == DEAD)).scalar_one()
    last_error = conn.execute(
        select(c.last_error).where(c.state == PENDING, c.last_error.is_not(None))
        .order_by(c.next_attempt_at.desc()).limit(1)).scalar()
    return Backlog(pending=int(pending), tickets=int(tickets), failing=int(failing),
                   dead=int(dead),
                   oldest_seconds=max(0.0, now - float(oldest)) if oldest is not None else 0.0,
                   last_error=last_error)
