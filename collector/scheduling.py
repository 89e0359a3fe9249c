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


def retry_delay(attempts: int, *, first: float, maximum: float, rnd: Callable[[], float]) -> float:
    """Seconds until the next try after ``attempts`` failed ones.

    ``first`` doubled per failure, at most ``maximum``, then spread by -20 %..+20 % so that
    what failed together (notices, Request Tracker changes) does not all come back together.
    """
    base = min(maximum, first * 2.0 ** max(0, attempts - 1))
    return base * (0.8 + 0.4 * rnd())
