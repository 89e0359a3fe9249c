"""The host-silence detector, run every ``silence.check_every`` seconds."""

from __future__ import annotations

import logging

from collector.runtime import Runtime
from collector.scheduling import run_every
from collector.state.service import detect_silence

log = logging.getLogger(__name__)


def silence_job(runtime: Runtime) -> list[str]:
    """One detector pass at the runtime's clock; returns the hosts that became silent."""
    silent = detect_silence(
        engine=runtime.engine, settings=runtime.settings.silence, now=runtime.clock(),
        started_at=runtime.started_at,
    )
    for fqdn in silent:
        log.warning("host %s went silent", fqdn)
    return silent


async def run_silence_detector(runtime: Runtime) -> None:
    """Run the detector forever (cancelled by the app's lifespan)."""
    await run_every(runtime.settings.silence.check_every, lambda: silence_job(runtime),
                    name="silence")
