"""The ticket engine, run every ``tickets.engine_every`` seconds."""

from __future__ import annotations

import logging

from collector.problems.context import EngineReport
from collector.problems.engine import run_once
from collector.runtime import Runtime
from collector.scheduling import run_every

log = logging.getLogger(__name__)


def engine_job(runtime: Runtime) -> EngineReport:
    """One engine pass at the runtime's clock; returns what it did."""
    report = run_once(engine=runtime.engine, policy=runtime.policy, settings=runtime.settings,
                      now=runtime.clock())
    for ticket_id in report.opened:
        log.info("ticket #%s opened", ticket_id)
    for ticket_id in report.reopened:
        log.info("ticket #%s reopened", ticket_id)
    for ticket_id in report.resolved:
        log.info("ticket #%s resolved after recovery", ticket_id)
    return report


async def run_engine(runtime: Runtime) -> None:
    """Run the engine forever (cancelled by the app's lifespan)."""
    await run_every(runtime.settings.tickets.engine_every, lambda: engine_job(runtime),
                    name="ticket engine")
