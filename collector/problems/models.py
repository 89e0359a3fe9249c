"""Tables of the problem rules: each key's state between results, and the engine's own state."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Double, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from collector.db import Base
from collector.state.models import BigId


class ProblemRecord(Base):
    """One problem key's ``ProblemState`` (soft/hard, history, flapping) and its ticket.

    ``folded`` is the key's ``check_states.results_count`` up to which results have been
    folded in; ``pending_since`` is set while the key is a reported problem that has no
    ticket yet (inside a maintenance window, say), so it opens once nothing holds it back.
    """

    __tablename__ = "problem_states"
    __table_args__ = (Index(None, "pending_since"),)

    customer: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    check: Mapped[str] = mapped_column(String(128), primary_key=True)
    target: Mapped[str] = mapped_column(String(512), primary_key=True)
    check_type: Mapped[str] = mapped_column(String(64))
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    folded: Mapped[int] = mapped_column(BigInteger, default=0)
    ticket_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("tickets.id", ondelete="SET NULL"))
    pending_since: Mapped[float | None] = mapped_column(Double)
    pending_reason: Mapped[str | None] = mapped_column(Text)
    reported: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[float] = mapped_column(Double)


class EngineState(Base):
    """Small named JSON states of the ticket engine (e.g. a customer's mass-silence state)."""

    __tablename__ = "engine_states"

    name: Mapped[str] = mapped_column(String(300), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[float] = mapped_column(Double)
