"""Maintenance windows: while one covers a problem, no ticket opens for it."""

from __future__ import annotations

from sqlalchemy import Double, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from collector.db import Base

ONCE, DAILY, WEEKLY = "once", "daily", "weekly"
RECURRENCES = (ONCE, DAILY, WEEKLY)


class MaintenanceWindow(Base):
    """A window for a customer, or one host of it, or one check of that host.

    ``starts_at``..``ends_at`` is the first (or only) occurrence; a daily or weekly window
    repeats at the same local wall-clock time in ``timezone`` until ``until`` (if set).
    """

    __tablename__ = "maintenance_windows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    host: Mapped[str | None] = mapped_column(String(255))
    check: Mapped[str | None] = mapped_column(String(128))
    starts_at: Mapped[float] = mapped_column(Double)
    ends_at: Mapped[float] = mapped_column(Double)
    recurrence: Mapped[str] = mapped_column(String(8))
    timezone: Mapped[str] = mapped_column(String(64))
    until: Mapped[float | None] = mapped_column(Double)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[float] = mapped_column(Double)
