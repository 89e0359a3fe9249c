"""A tiny periodic runner for the domains' scheduled jobs (asyncio tasks in the app's lifespan)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import anyio.to_thread

log = logging.getLogger(__name__)


async def run_every(seconds: float, job: Callable[[], object], *, name: str) -> None:
    """Run a blocking ``job`` in a worker thread every ``seconds`` until cancelled.

    A failing run is logged with its traceback and the next run happens on time: a
    database hiccup must not end host-silence detection for good.
    """
    while True:
        await asyncio.sleep(seconds)
        try:
            await anyio.to_thread.run_sync(job)
        except Exception:
            log.exception("scheduled job %s failed", name)
