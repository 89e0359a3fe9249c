"""/healthz and /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from collector.ops.metrics import render_metrics

router = APIRouter()


@router.get("/healthz", tags=["ops"])
def healthz(request: Request) -> JSONResponse:
    """200 when the store answers, 503 otherwise."""
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the store is "unhealthy", with its name
        return JSONResponse(
            {"status": "unavailable", "database": f"unreachable: {type(exc).__name__}"},
            status_code=503,
        )
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/metrics", tags=["ops"], response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text format, read from the current state at scrape time.

    Rendered by ``render_metrics``: the state families (hundreds of thousands of lines at
    10,000 hosts) are written as text directly, not sample by sample.
    """
    return Response(render_metrics(request.app.state.registry),
                    media_type=CONTENT_TYPE_LATEST)
