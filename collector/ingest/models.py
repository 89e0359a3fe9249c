"""The results table and the wire schema of a push (docs/protocol.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    JSON,
    BigInteger,
    Double,
    ForeignKey,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from collector.db import Base
from collector.state.models import BigId


class Result(Base):
    __tablename__ = "results"
    # A result is identified by (host, result id); produced_at leads the unique key so
    # that every commit appends at the end of one index instead of writing into each
    # host's part of it. Keyed by a random uuid first, every insert dirtied a random
    # index page (measured 3x slower ingest on SQLite once the table held a few hundred
    # thousand rows); keyed by host first, a commit of pushes from 60 hosts rewrote 60
    # index pages, a fifth of its writes. A resend is recognised by this key.
    __table_args__ = (UniqueConstraint("produced_at", "host_id", "result_uid"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    result_uid: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(64))
    check: Mapped[str] = mapped_column(String(128))
    target: Mapped[str] = mapped_column(String(512))
    status: Mapped[int] = mapped_column(SmallInteger)
    summary: Mapped[str] = mapped_column(Text)
    metrics: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    produced_at: Mapped[float] = mapped_column(Double)
    received_at: Mapped[float] = mapped_column(Double, index=True)


# Unknown fields are ignored, not refused: a newer agent may add fields to the protocol
# and must still be able to push to an older collector.
class WireMetric(BaseModel):
    name: str = Field(max_length=200)
    value: float | None
    unit: str = Field(default="", max_length=32)
    warn: float | None = None
    crit: float | None = None
    min: float | None = None
    max: float | None = None


class WireResult(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=0)
    type: str = Field(min_length=1, max_length=64)
    check: str = Field(min_length=1, max_length=128)
    target: str = Field(max_length=512)
    status: int = Field(ge=0, le=3)
    summary: str = Field(max_length=4096)
    metrics: list[WireMetric] = []
    details: dict[str, Any] = {}
    produced_at: float
    duration: float | None = None
    status_changed: bool | None = None


class WireAgent(BaseModel):
    version: str = Field(max_length=64)
    started_at: float | None = None
    interval: float | None = Field(default=None, gt=0)


class WireBatch(BaseModel):
    batch_id: str = Field(min_length=1, max_length=64)
    host: str = Field(min_length=1, max_length=255)
    agent: WireAgent
    sent_at: float | None = None
    results: list[WireResult]


class Accepted(BaseModel):
    """The 202 answer to a push."""

    batch_id: str
    accepted: int
    duplicate: bool
