"""Tables of tickets, their audit log, escalations sent and SLA breaches; the API shapes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import (
    JSON,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from collector.db import Base
from collector.state.models import BigId

# Ticket states, as in Request Tracker's default lifecycle.
NEW, OPEN, STALLED, RESOLVED, REJECTED = "new", "open", "stalled", "resolved", "rejected"
STATES = (NEW, OPEN, STALLED, RESOLVED, REJECTED)
ACTIVE_STATES = (NEW, OPEN, STALLED)
SYSTEM_ACTOR = "watchkeeper"


class Ticket(Base):
    """One ticket per problem key. ``id`` is the request number the customer is told.

    ``live_key`` is the problem key (``customer/host/check/target``) while the ticket is
    active (new, open, stalled) and NULL otherwise: a unique index, so two collectors can
    never both open a ticket for one problem.
    """

    __tablename__ = "tickets"
    __table_args__ = (Index(None, "customer_id", "state"), Index(None, "state", "created_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    live_key: Mapped[str | None] = mapped_column(String(1200), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    host_id: Mapped[int | None] = mapped_column(ForeignKey("hosts.id", ondelete="SET NULL"))
    host: Mapped[str] = mapped_column(String(255))  # the fqdn, or "*" for a whole site
    check: Mapped[str] = mapped_column(String(128))
    target: Mapped[str] = mapped_column(String(512))
    check_type: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(String(2))
    priority_reason: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    status: Mapped[int] = mapped_column(SmallInteger)  # the check's latest status
    flapping: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)
    # The SLA clocks. clock_started_at is the opening, or the last priority change.
    clock_started_at: Mapped[float] = mapped_column(Double)
    first_response_due: Mapped[float | None] = mapped_column(Double)
    first_response_at: Mapped[float | None] = mapped_column(Double)
    last_update_at: Mapped[float | None] = mapped_column(Double)
    next_update_due: Mapped[float | None] = mapped_column(Double)
    stalled_since: Mapped[float | None] = mapped_column(Double)
    # While stalled, the update clock's time left (clock seconds for a clock-time
    # commitment, business seconds for business time); it goes on from there on leaving.
    update_left: Mapped[float | None] = mapped_column(Double)
    # Work and recovery.
    worked: Mapped[bool] = mapped_column(Boolean, default=False)  # a person acted on it
    assignee: Mapped[str | None] = mapped_column(String(128))
    recovered_at: Mapped[float | None] = mapped_column(Double)  # OK since, while recovered
    resolved_at: Mapped[float | None] = mapped_column(Double)
    last_notice_at: Mapped[float | None] = mapped_column(Double)  # the last "still failing"
    external_ref: Mapped[str | None] = mapped_column(String(200))


class TicketEvent(Base):
    """The audit log: every decision and action, on a ticket or (``ticket_id`` NULL) not.

    A problem that opened no ticket (soft state, maintenance, flapping, duplicate) is
    recorded with its key in ``problem_key`` and the reason in ``text``.
    """

    __tablename__ = "ticket_events"
    __table_args__ = (Index(None, "ticket_id", "id"), Index(None, "at"),
                      Index(None, "customer_id", "at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("tickets.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"))
    problem_key: Mapped[str | None] = mapped_column(String(1200))
    at: Mapped[float] = mapped_column(Double)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    text: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class TicketEscalation(Base):
    """An escalation notice decided for a ticket: once per (ticket, role), by the unique key."""

    __tablename__ = "ticket_escalations"

    ticket_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    step: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[float] = mapped_column(Double)
    decided_at: Mapped[float] = mapped_column(Double)


class TicketBreach(Base):
    """A missed commitment (first response or update), recorded once per due time."""

    __tablename__ = "ticket_breaches"

    ticket_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    due_at: Mapped[float] = mapped_column(Double, primary_key=True)
    priority: Mapped[str] = mapped_column(String(2))
    noticed_at: Mapped[float] = mapped_column(Double)
    answered_at: Mapped[float | None] = mapped_column(Double)
    late_seconds: Mapped[int | None] = mapped_column(Integer)


# ----------------------------------------------------------------------------- API shapes


class EscalationView(BaseModel):
    role: str
    step: str
    at: str


class BreachView(BaseModel):
    kind: str
    due_at: str
    noticed_at: str


class TicketEventView(BaseModel):
    id: int
    at: str
    kind: str
    actor: str
    public: bool
    text: str
    data: dict[str, Any]


class TicketView(BaseModel):
    """A ticket in ``GET /api/v1/tickets`` (the contract's fields and the clocks)."""

    id: int
    customer: str
    host: str
    check: str
    target: str
    check_type: str
    subject: str
    priority: str
    rt_priority: int
    state: str
    status: int
    status_name: str
    flapping: bool
    assignee: str | None
    created_at: str
    updated_at: str
    first_response_due: str | None
    first_response_at: str | None
    next_update_due: str | None
    last_update_at: str | None
    resolved_at: str | None
    escalations: list[EscalationView]
    breaches: list[BreachView]
    external_ref: str | None


class NoticeView(BaseModel):
    """A notice about the ticket in the outbox: to whom, over what, and how it went."""

    id: int
    kind: str
    channel: str
    recipient: str
    state: str
    attempts: int
    created_at: str
    sent_at: str | None
    next_attempt_at: str | None
    last_error: str | None


class TicketDetail(TicketView):
    """``GET /api/v1/tickets/{id}``: the ticket, its history, and (for staff) its notices."""

    priority_reason: str
    events: list[TicketEventView]
    notices: list[NoticeView] = []


class ReplyIn(BaseModel):
    text: str = Field(min_length=1, max_length=65536)


class PriorityIn(BaseModel):
    priority: str = Field(description='"P1".."P4", "S1".."S4" or an RT code 80/60/40/20')
    reason: str = Field(min_length=1, max_length=4096)


class StateIn(BaseModel):
    state: str = Field(description="open, stalled, resolved, rejected, or reopen")
    reason: str | None = Field(default=None, max_length=4096)


class AssignIn(BaseModel):
    assignee: str | None = Field(max_length=128)
