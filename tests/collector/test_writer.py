"""The group-commit writer's fallback: a group that hits a unique violation is retried per batch."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.exc import IntegrityError

import collector.ingest.store as store_module
from collector.db import create_db_engine, session_factory
from collector.hosts.service import enroll
from collector.ingest.models import WireBatch
from collector.ingest.service import PendingBatch
from collector.ingest.store import GroupStore
from collector.ingest.writer import GroupCommitWriter


def test_a_conflicting_group_is_retried_one_batch_at_a_time(settings, make_batch, monkeypatch):
    engine = create_db_engine(settings)
    with session_factory(engine)() as session:
        enroll(session=session, customer="acme", fqdn="db1.example.net", critical=False,
               rotate=False, now=time.time())
    real_store = store_module.store_batches
    calls: list[int] = []

    def store_with_a_race(*, conn, pending):
        # What another collector committing one of these batches first looks like here.
        calls.append(len(pending))
        if len(pending) > 1:
            raise IntegrityError("INSERT INTO batches", {}, Exception("unique violation"))
        return real_store(conn=conn, pending=pending)

    monkeypatch.setattr(store_module, "store_batches", store_with_a_race)
    batches = [WireBatch.model_validate(make_batch("db1.example.net")) for _ in range(3)]
    duplicate = batches[0]

    async def run() -> list[object]:
        writer = GroupCommitWriter(GroupStore(engine))
        await writer.start()
        try:
            return await asyncio.gather(*[
                writer.submit(PendingBatch(host_id=1, batch=b, received_at=time.time()))
                for b in [*batches, duplicate]
            ])
        finally:
            await writer.stop()

    try:
        outcomes = asyncio.run(run())
    finally:
        engine.dispose()
    assert calls[0] == 4 and calls[1:] == [1, 1, 1, 1]
    assert [o.duplicate for o in outcomes] == [False, False, False, True]
