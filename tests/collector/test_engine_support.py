"""A small world for the ticket engine's tests: hosts, results at chosen times, engine passes."""

from __future__ import annotations

import json
import uuid
from itertools import count
from typing import Any

from sqlalchemy import select, update

from collector.db import create_db_engine, session_factory, write_transaction
from collector.hosts.models import Host
from collector.hosts.service import enroll
from collector.policy import build_policy
from collector.problems.context import EngineReport
from collector.problems.engine import run_once
from collector.settings import Settings
from collector.state.service import NewResult, apply_results, detect_silence
from collector.tickets.models import Ticket, TicketEvent

START = 1_790_000_000.0  # 2026-09-21, a Monday
_seq = count(1)


class World:
    """One store, the policy from its settings, and a clock the test moves by hand."""

    def __init__(self, settings: Settings, **sections: Any) -> None:
        if sections:
            settings = settings.model_copy(update=sections)
        self.settings = settings
        self.policy = build_policy(settings)
        self.engine = create_db_engine(settings)
        self.now = START
        self.host_ids: dict[str, int] = {}

    def close(self) -> None:
        self.engine.dispose()

    def host(self, fqdn: str, *, customer: str = "acme", critical: bool = False,
             tags: tuple[str, ...] = ()) -> int:
        with session_factory(self.engine)() as session:
            enroll(session=session, customer=customer, fqdn=fqdn, critical=critical,
                   rotate=False, now=self.now)
        with write_transaction(self.engine) as conn:
            conn.execute(update(Host).where(Host.fqdn == fqdn).values(
                tags=list(tags), last_seen_at=self.now))
            host_id = conn.scalar(select(Host.id).where(Host.fqdn == fqdn))
        assert host_id is not None
        self.host_ids[fqdn] = host_id
        return host_id

    def set_host(self, fqdn: str, **values: Any) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(update(Host).where(Host.fqdn == fqdn).values(**values))

    def push(self, fqdn: str, check: str, target: str, status: int, *,
             check_type: str | None = None, summary: str | None = None,
             details: dict[str, Any] | None = None, at: float | None = None) -> None:
        at = self.now if at is None else at
        host_id = self.host_ids[fqdn]
        row: NewResult = (
            host_id, str(uuid.uuid4()), next(_seq), check_type or check, check, target, status,
            summary or f"{target} status {status}",
            json.dumps([{"name": "value", "value": 1.0}]), json.dumps(details or {}), at, at)
        with write_transaction(self.engine) as conn:
            apply_results(conn=conn, results=[row], hosts=[host_id], now=at)
        self.set_host(fqdn, last_seen_at=at)

    def silence(self, started_at: float | None = None) -> list[str]:
        """Run the silence detector at the world's time."""
        return detect_silence(engine=self.engine, settings=self.settings.silence,
                              now=self.now, started_at=self.now - 10_000
                              if started_at is None else started_at)

    def run(self, at: float | None = None) -> EngineReport:
        if at is not None:
            self.now = at
        return run_once(engine=self.engine, policy=self.policy, settings=self.settings,
                        now=self.now)

    def tickets(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(Ticket).order_by(Ticket.id)).mappings().all())

    def ticket(self, ticket_id: int) -> Any:
        (found,) = [t for t in self.tickets() if t["id"] == ticket_id]
        return found

    def events(self, kind: str | None = None, ticket_id: int | None = None) -> list[Any]:
        query = select(TicketEvent).order_by(TicketEvent.id)
        if kind is not None:
            query = query.where(TicketEvent.kind == kind)
        if ticket_id is not None:
            query = query.where(TicketEvent.ticket_id == ticket_id)
        with self.engine.connect() as conn:
            return list(conn.execute(query).mappings().all())
