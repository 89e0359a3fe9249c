"""The notification outbox: a notice is decided and stored in one transaction, sent later."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Double, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from collector.db import Base
from collector.state.models import BigId

PENDING, SENT, DEAD = "pending", "sent", "dead"
EMAIL, WEBHOOK = "email", "webhook"


class Notification(Base):
    """One notice to one recipient over one channel.

    ``dedup_key`` is unique: whoever decides a notice (any collector, any retry of the
    deciding transaction) inserts it with ON CONFLICT DO NOTHING, so it exists once. A
    sender claims it by setting ``lease_until``; a sender that dies leaves the lease to
    expire and another sends it.
    """

    __tablename__ = "notifications"
    __table_args__ = (Index(None, "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(512))
    kind: Mapped[str] = mapped_column(String(32))  # opened, escalation, breach, update, ...
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    ticket_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("tickets.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[float] = mapped_column(Double)
    state: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Double)
    lease_until: Mapped[float | None] = mapped_column(Double)
    sent_at: Mapped[float | None] = mapped_column(Double)
    last_error: Mapped[str | None] = mapped_column(Text)
