"""End to end with real processes over loopback HTTP: nothing an agent produced is lost or
stored twice when the collector is stopped, killed with SIGKILL, and the agent is killed with
SIGKILL while results wait in its spool."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from agent.spool import peek_stats
from tests.support.processes import Collector, Proc, agent_command, wait_until

pytestmark = pytest.mark.e2e

HOST = "e2e-agent.example.net"


def _agent_config(workdir: Path, collector: Collector, token: str) -> Path:
    token_file = workdir / "token"
    token_file.write_text(token + "\n")
    config = workdir / "agent.toml"
    # Fast cadence so that a few seconds produce many results; short backoff so the agent
    # comes back quickly once the collector is up again.
    config.write_text(
        f'[agent]\nhost = "{HOST}"\nstate_dir = "{workdir / "state"}"\n\n'
        f'[collector]\nurl = "{collector.url}"\ntoken_file = "{token_file}"\n'
        'push_interval = "0.3s"\nbackoff_initial = "0.1s"\nbackoff_max = "0.5s"\n'
        'timeout = "2s"\n\n'
        '[checks.agent]\ninterval = "0.2s"\n\n'
        '[checks.disk]\ninterval = "0.5s"\njitter = "0s"\n'
    )
    return config


def _stored(database: Path) -> list[tuple[int, int]]:
    """(seq, times stored) of every result the collector holds for the agent."""
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT r.seq, COUNT(*) FROM results r JOIN hosts h ON h.id = r.host_id "
            "WHERE h.fqdn = ? GROUP BY r.seq ORDER BY r.seq",
            (HOST,),
        ).fetchall()
    return [(int(seq), int(n)) for seq, n in rows]


def test_every_result_is_stored_exactly_once_across_outages_and_kills(tmp_path: Path) -> None:
    collector = Collector(tmp_path)
    token = collector.enroll("e2e", HOST)
    collector.start()
    read = collector.get
    config = _agent_config(tmp_path, collector, token)
    spool_dir = tmp_path / "state" / "spool"

    def start_agent() -> Proc:
        return Proc(agent_command("run", "--config", str(config)), tmp_path / "agent.log").start()

    def spooled() -> int:
        stats = peek_stats(spool_dir)
        return 0 if stats is None else stats.depth

    agent = start_agent()
    try:
        wait_until(lambda: read(f"/api/v1/hosts/{HOST}").status_code == 200, 30,
                   f"the agent's first push\n{agent.tail()}")

        # 1. The collector stops cleanly for a while: results pile up in the agent's spool.
        collector.stop()
        wait_until(lambda: spooled() >= 20, 30, "results to pile up in the spool")

        # 2. The agent is killed with SIGKILL while those results wait in its spool.
        agent.kill()
        waiting = spooled()
        assert waiting >= 20

        # 3. Both come back; the collector is then killed with SIGKILL in the middle of
        #    the agent draining its backlog, and comes back once more.
        collector.start()
        agent = start_agent()
        wait_until(lambda: spooled() < waiting, 30, "the agent to start draining")
        collector.stop(9)
        time.sleep(1.5)
        collector.start()

        # 4. Everything drains; then the agent stops cleanly and the counting starts.
        wait_until(lambda: spooled() == 0, 60, f"the spool to drain\n{agent.tail()}")
        time.sleep(1.0)
        assert agent.stop() == 0, agent.tail()
        wait_until(lambda: spooled() == 0, 30, "the final push at shutdown")
    finally:
        agent.kill()
        collector.stop()

    stats = peek_stats(spool_dir)
    assert stats is not None
    assert stats.dropped_total == 0 and stats.rejected_total == 0
    produced = stats.produced_total
    stored = _stored(tmp_path / "collector.db")
    duplicates = [(seq, n) for seq, n in stored if n != 1]
    assert duplicates == [], f"results stored more than once: {duplicates[:10]}"
    missing = sorted(set(range(1, produced + 1)) - {seq for seq, _ in stored})
    assert missing == [], f"{len(missing)} of {produced} produced results never stored"
    assert len(stored) == produced
    assert produced > waiting >= 20
    assert collector.starts == 3
    print(f"produced {produced}, spooled at the agent kill {waiting}, stored {len(stored)}")


def test_the_store_process_killed_again_and_again_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    collector = Collector(tmp_path)
    token = collector.enroll("e2e", HOST)
    collector.start()
    read = collector.get
    config = _agent_config(tmp_path, collector, token)
    spool_dir = tmp_path / "state" / "spool"
    agent = Proc(agent_command("run", "--config", str(config)), tmp_path / "agent.log").start()
    killed: list[int] = []
    try:
        wait_until(lambda: read(f"/api/v1/hosts/{HOST}").status_code == 200, 30,
                   f"the agent's first push\n{agent.tail()}")
        for _ in range(3):
            time.sleep(1.0)
            pid = collector.store_pid()
            assert pid is not None and pid not in killed
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            wait_until(lambda: collector.store_pid() not in (None, *killed), 30,
                       f"a new store process\n{collector.proc.tail() if collector.proc else ''}")
        time.sleep(1.0)
        assert agent.stop() == 0, agent.tail()
        stats = peek_stats(spool_dir)
        wait_until(lambda: (peek_stats(spool_dir) or stats).depth == 0, 30, "the spool to drain")
        assert collector.proc is not None and collector.proc.alive()
    finally:
        agent.kill()
        collector.stop()

    stats = peek_stats(spool_dir)
    assert stats is not None and stats.dropped_total == 0
    stored = _stored(tmp_path / "collector.db")
    assert [(seq, n) for seq, n in stored if n != 1] == []
    assert sorted(seq for seq, _ in stored) == list(range(1, stats.produced_total + 1))
    assert collector.starts == 1 and len(killed) == 3
    log = (tmp_path / "collector.log").read_text()
    assert log.count("the store process exited") == 3


def test_a_graceful_stop_keeps_every_push_it_answered(tmp_path: Path) -> None:
    """SIGTERM under load: every push answered 202 is in the store afterwards."""
    import asyncio

    from tests.benchmarks.loadgen import batch_body

    collector = Collector(tmp_path)
    hosts = [(f"load{i}.example.net", collector.enroll("e2e", f"load{i}.example.net"))
             for i in range(8)]
    collector.start()
    answered: list[list[str]] = []
    refused: list[int] = []

    async def worker(client: httpx.AsyncClient, fqdn: str, token: str) -> None:
        while True:
            body = batch_body(fqdn, 4, time.time())
            try:
                resp = await client.post("/api/v1/results", content=body, headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json"})
            except httpx.HTTPError:
                return  # the collector has gone
            if resp.status_code == 202:
                answered.append([r["id"] for r in json.loads(body)["results"]])
            else:
                refused.append(resp.status_code)

    async def load() -> None:
        # One client with a connection per worker, made before the load starts: making a
        # client costs tens of milliseconds of CPU (its TLS trust store), and 64 of them
        # made inside the 2 s window left little load for the collector on a slow machine.
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=collector.url, timeout=30,
                                     limits=limits) as client:
            tasks = [asyncio.create_task(worker(client, fqdn, token))
                     for fqdn, token in hosts for _ in range(8)]
            # SIGTERM once the load is real (pushes answered and more on their way), not
            # after a fixed time: a slow machine answers fewer pushes in any given second.
            deadline = time.monotonic() + 30
            while len(answered) < 300 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            print(f"SIGTERM after {len(answered)} answered pushes")
            assert collector.proc is not None
            collector.proc.popen.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            await asyncio.wait_for(asyncio.gather(*tasks), 60)

    try:
        asyncio.run(load())
        assert collector.proc is not None and collector.proc.popen is not None
        # uvicorn re-raises the signal once it has shut down cleanly
        assert collector.proc.popen.wait(30) in (0, -signal.SIGTERM), collector.proc.tail()
        assert "Application shutdown complete" in collector.proc.tail()
    finally:
        collector.stop()
    with sqlite3.connect(tmp_path / "collector.db") as db:
        stored = {uid for (uid,) in db.execute("SELECT result_uid FROM results")}
    acknowledged = {uid for ids in answered for uid in ids}
    assert len(answered) >= 300, "the load was not real"
    assert acknowledged - stored == set(), "a push answered 202 was not stored"
    assert set(refused) <= {503}, refused
    print(f"{len(answered)} pushes answered 202 before the stop; all {len(acknowledged)} "
          f"results stored; {len(refused)} refused while shutting down")
