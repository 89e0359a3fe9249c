"""End to end with real processes over loopback HTTP: nothing an agent produced is lost or
stored twice when the collector is stopped, killed with SIGKILL, and the agent is killed with
SIGKILL while results wait in its spool."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

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
    config = _agent_config(tmp_path, collector, token)
    spool_dir = tmp_path / "state" / "spool"

    def start_agent() -> Proc:
        return Proc(agent_command("run", "--config", str(config)), tmp_path / "agent.log").start()

    def spooled() -> int:
        stats = peek_stats(spool_dir)
        return 0 if stats is None else stats.depth

    agent = start_agent()
    try:
        wait_until(lambda: collector.get(f"/api/v1/hosts/{HOST}").status_code == 200, 30,
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
