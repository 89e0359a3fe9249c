"""The store process (ingest.store = "process", the default) and the in-process store."""

from __future__ import annotations

import os
import signal
import time

import pytest

from collector.db import create_db_engine, migrate
from collector.ingest.models import Result
from collector.ingest.storeproc import ProcessWriter
from collector.ingest.writer import GroupCommitWriter
from tests.collector.conftest import settings_for
from tests.collector.test_ingest import auth, count_rows
from tests.support.processes import wait_until


@pytest.mark.parametrize("store", ["process", "thread"])
def test_either_store_stores_once_and_tells_resends_apart(
    db_url, enroll_host, start_collector, make_batch, result, store
):
    settings = settings_for(db_url, ingest={"store": store})
    engine = create_db_engine(settings)
    migrate(engine)
    engine.dispose()
    token = enroll_host(settings, "db1.example.net")
    client = start_collector(settings)
    writer = client.app.state.runtime.writer
    assert isinstance(writer, ProcessWriter if store == "process" else GroupCommitWriter)
    first = make_batch("db1.example.net", [result(target="/", status=2), result(target="/var")])
    again = dict(first)  # the same batch sent twice
    partly = make_batch("db1.example.net", [first["results"][0], result(target="/srv")])
    answers = [client.post("/api/v1/results", json=b, headers=auth(token)).json()
               for b in (first, again, partly)]
    assert [(a["accepted"], a["duplicate"]) for a in answers] == [(2, False), (0, True),
                                                                   (1, False)]
    assert count_rows(settings, Result) == 3
    host = client.get("/api/v1/hosts/db1.example.net").json()
    assert sorted(c["target"] for c in host["checks"]) == ["/", "/srv", "/var"]


def test_a_killed_store_process_answers_503_then_a_new_one_takes_over(
    settings, enroll_host, start_collector, make_batch, result
):
    token = enroll_host(settings, "db1.example.net")
    client = start_collector(settings)
    writer = client.app.state.runtime.writer

    def push() -> tuple[int, dict]:
        answer = client.post("/api/v1/results", json=make_batch("db1.example.net", [result()]),
                             headers=auth(token))
        return answer.status_code, answer.json()

    assert push()[0] == 202
    old_pid = writer.pid
    os.kill(old_pid, signal.SIGKILL)
    codes: list[int] = []
    refusals: list[str] = []

    def stored_again() -> bool:
        code, body = push()
        codes.append(code)
        if code == 503:
            refusals.append(body["detail"])
        return code == 202

    wait_until(stored_again, 20, "a push to be stored by a new store process")
    assert set(codes) <= {202, 503}
    assert all("store process" in why for why in refusals), refusals
    assert writer.pid not in (None, old_pid)
    # every push answered 202 is stored, and only those (each had a new result)
    assert count_rows(settings, Result) == 1 + codes.count(202)
    for _ in range(3):
        assert push()[0] == 202


def test_the_collector_does_not_start_when_the_store_process_cannot(
    settings, start_collector, monkeypatch
):
    # A store process that dies at once, as a broken installation would.
    monkeypatch.setattr("sys.executable", "/bin/false")
    with pytest.raises(Exception, match="store process did not start"):
        start_collector(settings)


def test_pushes_from_many_hosts_at_once_are_grouped(
    settings, enroll_host, start_collector, make_batch, result
):
    tokens = {f"h{i}.example.net": enroll_host(settings, f"h{i}.example.net") for i in range(20)}
    client = start_collector(settings)
    started = time.monotonic()
    answers = client.post_many([
        ("/api/v1/results", make_batch(fqdn, [result(target=f"/t{j}") for j in range(12)]),
         auth(token))
        for fqdn, token in tokens.items() for _ in range(5)
    ])
    assert [a.status_code for a in answers] == [202] * 100, answers[0].text
    assert count_rows(settings, Result) == 100 * 12
    metrics = client.get("/metrics").text
    groups = _sample(metrics, "watchkeeper_ingest_group_batches_count")
    assert 0 < groups < 100, "pushes arriving together share a transaction"
    assert time.monotonic() - started < 30


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_an_unreadable_answer_replaces_the_store_process(
    settings, enroll_host, start_collector, make_batch, result, monkeypatch
):
    import collector.ingest.storeproc as storeproc

    token = enroll_host(settings, "db1.example.net")
    client = start_collector(settings)
    writer = client.app.state.runtime.writer
    real_read = storeproc._read
    broken: list[bool] = []

    async def read_once_broken(stream):  # the next answer arrives garbled
        if not broken:
            broken.append(True)
            raise ValueError("garbled frame")
        return await real_read(stream)

    monkeypatch.setattr(storeproc, "_read", read_once_broken)
    old_pid = writer.pid

    def push() -> int:
        return client.post("/api/v1/results", json=make_batch("db1.example.net", [result()]),
                           headers=auth(token)).status_code

    assert push() in (202, 503)  # answered before or after the reader broke; never hangs
    wait_until(lambda: push() == 202 and writer.pid not in (None, old_pid), 20,
               "a new store process after an unreadable answer")
