"""Retention: delete results older than ``ingest.result_retention`` and ended dashboard
logins."""

from __future__ import annotations

import logging

from sqlalchemy import text

from collector.dashboard.sessions import prune_sessions
from collector.db import PRUNE_LOCK_ID, is_postgres, write_transaction
from collector.ingest.service import prune_results
from collector.runtime import Runtime
from collector.scheduling import run_every

log = logging.getLogger(__name__)


def prune_job(runtime: Runtime) -> int:
    """One pruning pass (results past retention, ended dashboard logins); with several
    collectors on PostgreSQL only one prunes at a time. Returns the results pruned."""
    cutoff = runtime.clock() - runtime.settings.ingest.result_retention
    with write_transaction(runtime.engine) as conn:
        if is_postgres(conn):
            got = conn.execute(
                text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": PRUNE_LOCK_ID}
            ).scalar()
            if not got:
                return 0
        results = prune_results(conn=conn, older_than=cutoff)
        sessions = prune_sessions(conn, now=runtime.clock(),
                                  idle=runtime.settings.dashboard.session_idle)
    if results:
        log.info("pruned %d results", results)
    if sessions:
        log.info("removed %d ended dashboard logins", sessions)
    return results


async def run_pruning(runtime: Runtime) -> None:
    """Prune forever (cancelled by the app's lifespan)."""
    await run_every(runtime.settings.ingest.prune_every, lambda: prune_job(runtime),
                    name="prune")
