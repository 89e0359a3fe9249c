"""What the app factory builds once and the views use: settings, store, writer, metrics."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import Request
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from collector.ingest.auth import TokenAuthenticator
from collector.ingest.writer import Writer
from collector.ops.metrics import IngestMetrics
from collector.policy import Policy
from collector.settings import Settings
from collector.timefmt import Clock


@dataclass
class Runtime:
    """One per app; reached from a request as ``request.app.state.runtime``."""

    settings: Settings
    policy: Policy
    engine: Engine
    sessions: sessionmaker[Session]
    writer: Writer
    authenticator: TokenAuthenticator
    registry: CollectorRegistry
    metrics: IngestMetrics
    clock: Clock
    started_at: float


def get_runtime(request: Request) -> Runtime:
    """FastAPI dependency: the app's runtime."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_session(request: Request) -> Iterator[Session]:
    """FastAPI dependency: a read session, closed after the request."""
    with get_runtime(request).sessions() as session:
        yield session
