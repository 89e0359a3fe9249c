"""The app factory: builds the store, the writer, the metrics and the routes from settings."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from starlette.types import Receive, Scope, Send

from collector.dashboard import routes as dashboard_routes
from collector.db import create_db_engine, session_factory
from collector.hosts import views as host_views
from collector.ingest import views as ingest_views
from collector.ingest.auth import TokenAuthenticator
from collector.ingest.scheduled import run_pruning
from collector.ingest.store import GroupStore
from collector.ingest.storeproc import ProcessWriter
from collector.ingest.writer import GroupCommitWriter, GroupObserver, Writer
from collector.maintenance import views as maintenance_views
from collector.notify.scheduled import run_sender
from collector.ops import views as ops_views
from collector.ops.metrics import IngestMetrics, StateCollector
from collector.ops.support_metrics import SupportCollector
from collector.policy import build_policy
from collector.problems.scheduled import run_engine
from collector.rt.scheduled import run_rt
from collector.runtime import Runtime
from collector.settings import Settings
from collector.state import views as state_views
from collector.state.scheduled import run_silence_detector
from collector.tickets import views as ticket_views
from collector.tickets.clockwork import run_clockwork
from collector.timefmt import Clock

# The periodic jobs every collector process runs (each safe beside the same job in other
# processes on one database): host silence, retention, the ticket engine (results ->
# problems -> tickets), the clockwork (escalations, SLA breaches), the notification sender,
# the Request Tracker connector.
SCHEDULED = (run_silence_detector, run_pruning, run_engine, run_clockwork, run_sender,
             run_rt)


class CollectorApp(FastAPI):
    """FastAPI, with agents' pushes served straight from the ASGI entry (see ingest.views)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["path"] == ingest_views.INGEST_PATH
                and scope["method"] == "POST"):
            await ingest_views.serve_ingest(self, scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(
    settings: Settings, *, clock: Clock = time.time, run_scheduled: bool = True
) -> FastAPI:
    """A collector app; its lifespan starts the writer and the scheduled jobs.

    The schema must already be at head (``collector.db.migrate``; ``serve`` does it).
    ``clock`` and ``run_scheduled`` are seams for tests, which drive the jobs themselves.
    """
    engine = create_db_engine(settings)
    sessions = session_factory(engine)
    registry = CollectorRegistry(auto_describe=True)
    metrics = IngestMetrics(registry)
    registry.register(StateCollector(engine))
    registry.register(SupportCollector(engine, clock))
    runtime = Runtime(
        settings=settings,
        policy=build_policy(settings),
        engine=engine,
        sessions=sessions,
        writer=_writer(settings, engine, observer=metrics.observe_group),
        authenticator=TokenAuthenticator(sessions, ttl=settings.ingest.token_cache_ttl),
        registry=registry,
        metrics=metrics,
        clock=clock,
        started_at=clock(),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.started_at = clock()
        await runtime.writer.start()
        tasks = []
        if run_scheduled:
            tasks = [asyncio.create_task(job(runtime)) for job in SCHEDULED]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await runtime.writer.stop()
            engine.dispose()

    app = CollectorApp(title="watchkeeper collector", version="0.1.0", lifespan=lifespan)
    app.state.runtime = runtime
    app.state.engine = engine
    app.state.registry = registry

    @app.exception_handler(RequestValidationError)
    async def request_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:5]
        )
        return JSONResponse({"error": "invalid_request", "detail": detail}, status_code=422)

    for module in (ingest_views, host_views, state_views, ops_views, ticket_views,
                   maintenance_views):
        app.include_router(module.router)
    dashboard_routes.install(app)
    return app


def _writer(settings: Settings, engine: Engine, *, observer: GroupObserver) -> Writer:
    """Where pushes are validated and committed (``ingest.store``)."""
    if settings.ingest.store == "process":
        return ProcessWriter(settings, observer=observer)
    store = GroupStore(engine)
    return GroupCommitWriter(store, max_group=settings.ingest.max_group_batches,
                             observer=observer)

