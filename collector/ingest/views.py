"""POST /api/v1/results: read under limits, authenticate, validate, hand to the writer.

The busiest endpoint by far: every agent pushes every minute or so. ``serve_ingest`` runs
it straight from the application's ASGI entry (``CollectorApp``), without FastAPI's
routing, dependency solving and middleware layers, which cost about as much per push as
storing it (measured: ingest throughput +10 % or more). The route declared on the router
documents the endpoint in the OpenAPI schema and runs the same ``post_results``.
Trade-off: a middleware added to the app does not see pushes.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from collector.errors import CollectorError
from collector.ingest.body import decode, read_capped
from collector.ingest.models import Accepted, WireBatch
from collector.ingest.service import validated
from collector.runtime import get_runtime

router = APIRouter()
log = logging.getLogger(__name__)
INGEST_PATH = "/api/v1/results"

_ERROR = {"type": "object", "properties": {"error": {"type": "string"},
                                            "detail": {"type": "string"}}}
_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": WireBatch.model_json_schema(
            ref_template="#/components/schemas/{model}")}},
    },
    "responses": {
        "202": {"description": "stored (or already stored)",
                "content": {"application/json": {"schema": Accepted.model_json_schema()}}},
        **{code: {"description": text, "content": {"application/json": {"schema": _ERROR}}}
           for code, text in (("401", "no or unknown token"),
                              ("403", "the token belongs to another host"),
                              ("413", "body over ingest.max_body_bytes"),
                              ("415", "unsupported Content-Encoding"),
                              ("422", "malformed batch or too many results"),
                              ("503", "the store is unavailable"))},
    },
}


@router.post(INGEST_PATH, tags=["ingest"], status_code=202, openapi_extra=_OPENAPI)
async def post_results(request: Request) -> JSONResponse:
    """An agent's push (docs/protocol.md); 202 only after the batch is committed."""
    runtime = get_runtime(request)
    metrics = runtime.metrics
    limits = runtime.settings.ingest
    started = time.perf_counter()
    try:
        host = await runtime.authenticator.authenticate(request.headers.get("authorization"))
        raw = await read_capped(request.stream(),
                                content_length=request.headers.get("content-length"),
                                limit=limits.max_body_bytes)
        pending = validated(
            decode(raw, content_encoding=request.headers.get("content-encoding"),
                   limit=limits.max_body_bytes),
            host_id=host.host_id, host_fqdn=host.fqdn, max_results=limits.max_batch_results,
            received_at=runtime.clock(),
        )
        outcome = await runtime.writer.submit(pending)
    except CollectorError as exc:
        counter = metrics.rejected_by.get(exc.code)
        (counter or metrics.rejected.labels(exc.code)).inc()
        metrics.rejected_batch.inc()
        raise
    if outcome.duplicate:
        metrics.duplicate.inc()
    else:
        metrics.stored.inc()
        metrics.results.inc(outcome.accepted)
    metrics.latency.observe(time.perf_counter() - started)
    return JSONResponse(
        {"batch_id": outcome.batch_id, "accepted": outcome.accepted,
         "duplicate": outcome.duplicate},
        status_code=202,
    )



async def serve_ingest(app: Any, scope: Scope, receive: Receive, send: Send) -> None:
    """The push endpoint as a bare ASGI call: ``post_results`` with the app's error shape."""
    scope["app"] = app
    try:
        response = await post_results(Request(scope, receive))
    except CollectorError as exc:
        response = error_response(exc)
    except Exception:
        log.exception("POST %s failed", INGEST_PATH)
        response = JSONResponse({"error": "internal_error", "detail": "see the collector log"},
                                status_code=500)
    await response(scope, receive, send)


def error_response(exc: CollectorError) -> JSONResponse:
    """The JSON body and status of every error the collector answers with."""
    return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status_code)
