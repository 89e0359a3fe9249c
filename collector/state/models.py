"""Tables for the current state per (host, check, target) and its history of changes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy import (
    JSON,
    BigInteger,
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
from sqlalchemy.sql import false

from collector.db import Base

BigId = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PRIMARY KEY is the rowid

# The collector's own check for host silence. Agents may not push results under this
# check name (the ingest path refuses them), so nothing else can overwrite the row.
SILENCE_CHECK = "collector"
SILENCE_TARGET = "silence"
# The statuses a state remembers for flap detection (the problem rules' window is 21).
HISTORY_LENGTH = 32


class CheckState(Base):
    __tablename__ = "check_states"

    host_id: Mapped[int] = mapped_column(
        ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True
    )
    check: Mapped[str] = mapped_column(String(128), primary_key=True)
    target: Mapped[str] = mapped_column(String(512), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(SmallInteger)
    summary: Mapped[str] = mapped_column(Text)
    metrics: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    last_result_at: Mapped[float] = mapped_column(Double)
    last_change_at: Mapped[float] = mapped_column(Double)
    previous_status: Mapped[int | None] = mapped_column(SmallInteger)
    # For the problem rules (collector.problems): how many results were folded into this
    # row, their last statuses (one digit each, oldest first, at most HISTORY_LENGTH), and
    # whether the ticket engine has work here (a non-OK status in the history, or one
    # that left it since the engine last looked).
    results_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    history: Mapped[str] = mapped_column(String(32), default="", server_default="")
    dirty: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(),
                                        index=True)


class StatusChange(Base):
    __tablename__ = "status_changes"
    __table_args__ = (Index(None, "host_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    check: Mapped[str] = mapped_column(String(128))
    target: Mapped[str] = mapped_column(String(512))
    from_status: Mapped[int | None] = mapped_column(SmallInteger)
    to_status: Mapped[int] = mapped_column(SmallInteger)
    at: Mapped[float] = mapped_column(Double)
    summary: Mapped[str] = mapped_column(Text)


class Problem(BaseModel):
    """One non-OK current state in ``GET /api/v1/problems``."""

    customer: str
    host: str
    host_critical: bool
    check: str
    target: str
    status: int
    status_name: str
    summary: str
    since: str
    last_result_at: str
