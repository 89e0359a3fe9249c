"""Tables for customers and hosts, and the API shapes of the host views."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, Boolean, Double, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from collector.db import Base


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[float] = mapped_column(Double)


class Host(Base):
    __tablename__ = "hosts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="RESTRICT"), index=True
    )
    fqdn: Mapped[str] = mapped_column(String(255), unique=True)
    # sha256 hex of the token: the token is 32 random bytes, so no dictionary or brute
    # force can find it from the hash and a slow password hash would buy nothing but
    # CPU on every push; a fast, deterministic hash also allows this unique index.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    enrolled_at: Mapped[float] = mapped_column(Double)
    last_seen_at: Mapped[float | None] = mapped_column(Double)
    agent_version: Mapped[str | None] = mapped_column(String(64))
    agent_started_at: Mapped[float | None] = mapped_column(Double)
    expected_interval: Mapped[float | None] = mapped_column(Double)
    critical: Mapped[bool] = mapped_column(Boolean, default=False)
    # Free-form labels the priority rules match on (``[[priority.rules]] host_tags``).
    tags: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")


class HostSummary(BaseModel):
    """One host in ``GET /api/v1/hosts``."""

    fqdn: str
    customer: str
    critical: bool
    tags: list[str]
    enrolled_at: str
    last_seen_at: str | None
    agent_version: str | None
    expected_interval: float | None
    silent: bool
    worst_status: int
    worst_status_name: str
    counts: dict[str, int]


class CheckView(BaseModel):
    """The current state of one (check, target) of a host."""

    check: str
    target: str
    type: str
    status: int
    status_name: str
    summary: str
    metrics: list[dict[str, Any]]
    details: dict[str, Any]
    last_result_at: str
    last_change_at: str
    previous_status: int | None


class StatusChangeView(BaseModel):
    """One entry of a host's status history."""

    check: str
    target: str
    from_status: int | None
    to_status: int
    at: str
    summary: str


class HostDetail(HostSummary):
    """``GET /api/v1/hosts/{host}``: the summary, every check, the recent changes."""

    agent_started_at: str | None
    checks: list[CheckView]
    changes: list[StatusChangeView]
