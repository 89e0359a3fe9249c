"""The benchmark's baseline: a bare FastAPI endpoint that only reads and parses a push.

It reads the body and validates it with the collector's own push schema, then answers 202,
under the same uvicorn settings as `watchkeeper-collector serve` (no access log). Whatever
the real collector does beyond this (authentication, limits, durable storage) is what the
ingest benchmark's ratio prices.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

import uvicorn  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

from collector.ingest.models import WireBatch  # noqa: E402


def create_bare_app() -> FastAPI:
    """POST /api/v1/results that parses the batch and does nothing else."""
    app = FastAPI()

    @app.post("/api/v1/results", status_code=202)
    async def results(request: Request) -> JSONResponse:
        batch = WireBatch.model_validate_json(await request.body())
        return JSONResponse(
            {"batch_id": batch.batch_id, "accepted": len(batch.results), "duplicate": False},
            status_code=202,
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_bare_app(), host="127.0.0.1", port=args.port, access_log=False,
                log_level="warning")
