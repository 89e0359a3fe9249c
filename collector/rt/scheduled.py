"""The connector's jobs in the collector: send queued changes, read RT back.

Both run in every collector process when ``[request_tracker]`` is set; two collectors on
one database share the work safely (claims and conditional updates). A collector started
without ``[request_tracker]`` switches the queueing off: every collector on one database
must have the same ``[request_tracker]`` section.
"""

from __future__ import annotations

import asyncio
import logging

import anyio.to_thread

from collector.rt.models import set_enabled
from collector.runtime import Runtime
from collector.scheduling import run_every

log = logging.getLogger(__name__)


async def run_rt(runtime: Runtime) -> None:
    """Switch the queueing on or off, then send and poll forever (cancelled by the lifespan)."""
    config = runtime.settings.request_tracker
    await anyio.to_thread.run_sync(
        lambda: set_enabled(runtime.engine, config is not None, now=runtime.clock()))
    if config is None:
        return
    # Here, not at the top: a collector without [request_tracker] never loads the client.
    from collector.rt.client import RtClient
    from collector.rt.poll import poll
    from collector.rt.sync import Syncer

    syncer = Syncer(runtime.engine, runtime.settings, clock=runtime.clock)
    reader = RtClient(config)

    def poll_job() -> None:
        poll(runtime.engine, runtime.settings, runtime.policy, reader, clock=runtime.clock)

    try:
        await asyncio.gather(
            run_every(config.sync_every, syncer.sync, name="rt-sync"),
            run_every(config.poll_every, poll_job, name="rt-poll"))
    finally:
        syncer.close()
        reader.close()
