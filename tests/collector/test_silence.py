"""Host silence: a host that stops pushing becomes a problem, from the store, once."""

from __future__ import annotations

import threading
import time

from sqlalchemy import func, select

from collector.db import create_db_engine
from collector.settings import Settings
from collector.state.models import StatusChange
from collector.state.scheduled import silence_job
from collector.state.service import detect_silence

HOST = "db1.example.net"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def with_silence(settings: Settings, **values: object) -> Settings:
    return settings.model_copy(update={"silence": settings.silence.model_copy(update=values)})


def silence_problems(client) -> list[dict]:
    return [p for p in client.get("/api/v1/problems").json() if p["check"] == "collector"]


def test_silent_after_threshold_not_during_grace_and_cleared_by_a_push(
    settings, enroll_host, start_collector, make_batch, clock
):
    token = enroll_host(settings, HOST)
    client = start_collector(settings, clock)
    runtime = client.app.state.runtime
    start = clock.now
    assert client.post("/api/v1/results", json=make_batch(HOST, interval=60),
                       headers=auth(token)).status_code == 202

    clock.now = start + 250  # over the 3-minute threshold, but inside the 5-minute grace
    assert silence_job(runtime) == []
    assert silence_problems(client) == []

    clock.now = start + 301
    assert silence_job(runtime) == [HOST]
    (problem,) = silence_problems(client)
    assert problem["status_name"] == "CRITICAL"
    assert problem["summary"] == "no push for 5m (expected every 60s)"
    assert problem["host"] == HOST
    assert client.get("/api/v1/hosts").json()[0]["silent"] is True
    assert 'watchkeeper_host_silent{customer="acme",host="db1.example.net"} 1.0' in (
        client.get("/metrics").text
    )

    clock.now = start + 400  # still silent: no second change
    assert silence_job(runtime) == []

    clock.now = start + 500
    assert client.post("/api/v1/results", json=make_batch(HOST), headers=auth(token)
                       ).status_code == 202
    assert silence_problems(client) == []
    detail = client.get(f"/api/v1/hosts/{HOST}").json()
    assert detail["silent"] is False
    silence_changes = [(c["from_status"], c["to_status"]) for c in detail["changes"]
                       if c["check"] == "collector"]
    assert silence_changes == [(2, 0), (None, 2)]

    clock.now = start + 500 + 181  # silent again: the same row goes OK -> CRITICAL
    assert silence_job(runtime) == [HOST]
    detail = client.get(f"/api/v1/hosts/{HOST}").json()
    assert [(c["from_status"], c["to_status"]) for c in detail["changes"]
            if c["check"] == "collector"][0] == (0, 2)


def test_threshold_is_three_intervals_when_longer_than_the_minimum(
    settings, enroll_host, start_collector, make_batch, clock
):
    settings = with_silence(settings, startup_grace=0)
    token = enroll_host(settings, HOST)
    client = start_collector(settings, clock)
    start = clock.now
    client.post("/api/v1/results", json=make_batch(HOST, interval=300), headers=auth(token))
    clock.now = start + 899
    assert silence_job(client.app.state.runtime) == []
    clock.now = start + 901
    assert silence_job(client.app.state.runtime) == [HOST]
    assert silence_problems(client)[0]["summary"] == "no push for 15m (expected every 5m)"


def test_silence_counts_from_the_collector_start_at_the_earliest(
    settings, enroll_host, start_collector, make_batch, clock
):
    settings = with_silence(settings, startup_grace=0)
    token = enroll_host(settings, HOST)
    first = start_collector(settings, clock)
    first.post("/api/v1/results", json=make_batch(HOST), headers=auth(token))

    clock.advance(3600)  # the collector was down for an hour; a new one starts
    second = start_collector(settings, clock)
    start = clock.now
    clock.now = start + 100
    assert silence_job(second.app.state.runtime) == []
    clock.now = start + 181
    assert silence_job(second.app.state.runtime) == [HOST]
    assert "no push for 63m" in silence_problems(second)[0]["summary"]


def test_a_host_that_never_pushed_goes_silent(settings, enroll_host, start_collector, clock):
    settings = with_silence(settings, startup_grace=0)
    enroll_host(settings, HOST)
    client = start_collector(settings, clock)
    clock.advance(181)
    assert silence_job(client.app.state.runtime) == [HOST]
    assert silence_problems(client)[0]["summary"].startswith("no push since enrolment")


def test_two_detectors_at_once_record_one_change(settings, enroll_host, clock):
    hosts = [f"h{i}.example.net" for i in range(10)]
    for fqdn in hosts:
        enroll_host(settings, fqdn)
    silence = with_silence(settings, startup_grace=0).silence
    engines = [create_db_engine(settings) for _ in range(2)]
    found: list[list[str]] = [[], []]
    barrier = threading.Barrier(2)
    now = clock.now + 3600

    def run(i: int) -> None:
        barrier.wait()
        found[i] = detect_silence(engine=engines[i], settings=silence, now=now,
                                  started_at=now - 3600)

    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(found[0] + found[1]) == sorted(hosts)
        with engines[0].connect() as conn:
            changes = conn.execute(
                select(func.count()).select_from(StatusChange)
                .where(StatusChange.check == "collector")
            ).scalar_one()
        assert changes == len(hosts)
    finally:
        for engine in engines:
            engine.dispose()


def test_the_detector_runs_on_its_own_in_a_running_collector(settings, enroll_host):
    """The lifespan starts the detector: with tiny thresholds a host that never pushed
    becomes silent within a second, with no test driving the job."""
    from anyio.from_thread import start_blocking_portal

    from collector.app import create_app
    settings = with_silence(settings, startup_grace=0, min_silence=0, default_interval=0.1,
                            check_every=0.1)
    enroll_host(settings, HOST)
    app = create_app(settings)
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(
        app.router.lifespan_context(app)
    ):
        deadline = time.monotonic() + 10
        runtime = app.state.runtime
        while True:
            with runtime.sessions() as session:
                from collector.hosts.service import list_hosts

                if list_hosts(session=session)[0].silent:
                    break
            assert time.monotonic() < deadline, "the detector never marked the host silent"
            time.sleep(0.05)
