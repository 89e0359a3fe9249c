"""Wire the dashboard into the app: its pages, its static files, its error pages."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from collector.dashboard import hosts, login, maintenance, overview, tickets
from collector.dashboard.web import (
    LoginNeeded,
    login_needed_response,
    make_templates,
    render_error,
    wants_html,
)
from collector.errors import CollectorError
from collector.ingest import views as ingest_views

STATIC = Path(__file__).resolve().parent.parent / "static"


def install(app: FastAPI) -> None:
    """Add the dashboard's routes, ``/static``, and its answers to errors on pages."""
    app.state.templates = make_templates()
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for module in (login, overview, hosts, tickets, maintenance):
        app.include_router(module.router)

    @app.exception_handler(LoginNeeded)
    async def login_needed(request: Request, exc: LoginNeeded) -> Response:
        return login_needed_response(request, exc)

    @app.exception_handler(CollectorError)
    async def collector_error(request: Request, exc: CollectorError) -> Response:
        if wants_html(request):
            return render_error(request, exc)
        response: JSONResponse = ingest_views.error_response(exc)
        return response
