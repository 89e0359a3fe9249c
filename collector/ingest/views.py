"""POST /api/v1/results: read under limits, authenticate, validate, hand to the writer."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from collector.errors import CollectorError
from collector.hosts.service import HostIdentity
from collector.ingest.body import decode, parse_batch, read_capped
from collector.ingest.models import Accepted, WireBatch
from collector.ingest.service import PendingBatch, check_batch
from collector.runtime import get_runtime
from collector.settings import IngestSettings

router = APIRouter()

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


@router.post("/api/v1/results", tags=["ingest"], status_code=202, openapi_extra=_OPENAPI)
async def post_results(request: Request) -> JSONResponse:
    """An agent's push (docs/protocol.md); 202 only after the batch is committed."""
    runtime = get_runtime(request)
    metrics = runtime.metrics
    limits = runtime.settings.ingest
    started = time.perf_counter()
    try:
        host = await runtime.authenticator.authenticate(request.headers.get("authorization"))
        pending = _validated(
            await read_capped(request.stream(),
                              content_length=request.headers.get("content-length"),
                              limit=limits.max_body_bytes),
            content_encoding=request.headers.get("content-encoding"), host=host,
            limits=limits, received_at=runtime.clock(),
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


def _validated(
    raw: bytes, *, content_encoding: str | None, host: HostIdentity, limits: IngestSettings,
    received_at: float,
) -> PendingBatch:
    """The body as a batch ready for the writer.

    A function of its own so that nothing of the parsed pydantic batch stays referenced
    from the request while it waits for the commit: only the compact PendingBatch does
    (hundreds of waiting requests holding their parsed batches made every garbage
    collection scan tens of thousands of extra objects; measured).
    """
    batch = parse_batch(decode(raw, content_encoding=content_encoding,
                               limit=limits.max_body_bytes))
    check_batch(batch=batch, host_fqdn=host.fqdn, max_results=limits.max_batch_results)
    return PendingBatch(host_id=host.host_id, batch=batch, received_at=received_at)
