"""Several collectors on one store share the work and store a batch once."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from collector.db import create_db_engine
from collector.ingest.models import Result
from collector.state.models import StatusChange


def test_two_collectors_receiving_the_same_batches_store_each_once(
    settings, enroll_host, start_collector, make_batch, result
):
    hosts = [f"h{i}.example.net" for i in range(4)]
    tokens = {fqdn: enroll_host(settings, fqdn) for fqdn in hosts}
    collectors = [start_collector(settings), start_collector(settings)]
    batches = [
        make_batch(fqdn, [result(target=f"/t{j}", status=2) for j in range(3)])
        for fqdn in hosts for _ in range(5)
    ]
    answers: list[list[dict]] = [[], []]

    def push(i: int) -> None:
        for batch in batches:
            resp = collectors[i].post(
                "/api/v1/results", json=batch,
                headers={"Authorization": f"Bearer {tokens[batch['host']]}"},
            )
            assert resp.status_code == 202, resp.text
            answers[i].append(resp.json())

    threads = [threading.Thread(target=push, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(answers[0]) == len(answers[1]) == len(batches)
    for first, second in zip(answers[0], answers[1], strict=True):
        assert sorted([first["duplicate"], second["duplicate"]]) == [False, True]
        assert first["accepted"] + second["accepted"] == 3
    engine = create_db_engine(settings)
    try:
        with engine.connect() as conn:
            def count(model: object, *where: object) -> int:
                return int(conn.execute(
                    select(func.count()).select_from(model).where(*where)).scalar_one())

            assert count(Result) == len(batches) * 3
            # each (host, target) went to CRITICAL once: one change, not one per collector
            assert count(StatusChange) == len(hosts) * 3
    finally:
        engine.dispose()
