from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main, run_agent
from agent.config import load_config
from agent.spool import Spool
from agent.transport import Request, Response
from checks.result import CheckResult
from tests.agent import fakes

ROOT = Path(__file__).resolve().parents[2]
WriteConfig = Callable[..., Path]

CHECKS = """
[checks.root]
type = "fake"
targets = ["/"]

[checks.data]
type = "fake"
status = "warning"
targets = ["/srv", "/var"]

[checks.broken]
type = "fake"
fail = "no such device"
enabled = false
"""


def env() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
            "PYTHONPATH": str(ROOT)}


def test_the_agent_runs_without_httpx() -> None:
    """httpx alone costs 3.2 MB of the agent's 28 MB; none of what `run` imports loads it."""
    code = ("import sys, agent.cli, agent.sender, agent.transport, agent.scheduler, agent.spool\n"
            "print(sorted(m for m in ('httpx', 'httpcore', 'h11', 'anyio') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_check_json_prints_results_and_exits_with_the_worst_status(
    write_config: WriteConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(f"[agent]\nstate_dir = '{tmp_path}'\n{CHECKS}")
    code = main(["check", "--config", str(path), "--json"], lookup=fakes.lookup)
    rows = json.loads(capsys.readouterr().out)
    assert code == 1  # WARNING is the worst of OK, WARNING
    assert [(r["check"], r["target"], r["status"]) for r in rows] == [
        ("agent", "", 0), ("root", "/", 0), ("data", "/srv", 1), ("data", "/var", 1)]
    assert all(CheckResult.from_wire(r).summary for r in rows)
    assert rows[1]["metrics"][0] == {"name": "used_pct", "value": 42.0, "unit": "%",
                                     "warn": 85, "crit": 95}


def test_check_by_name_runs_disabled_checks_and_unknown_beats_warning(
    write_config: WriteConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(f"[agent]\nstate_dir = '{tmp_path}'\n{CHECKS}")
    code = main(["check", "--config", str(path), "data", "broken"], lookup=fakes.lookup)
    out = capsys.readouterr().out.splitlines()
    assert code == 3  # UNKNOWN ranks above WARNING
    assert out[0].split() == ["CHECK", "TARGET", "STATUS", "SUMMARY"]
    assert out[1].split()[:3] == ["data", "/srv", "WARNING"]
    assert out[3].split()[:3] == ["broken", "-", "UNKNOWN"]
    assert out[3].endswith("RuntimeError: no such device")


def test_check_names_an_unknown_instance(
    write_config: WriteConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(f"[agent]\nstate_dir = '{tmp_path}'\n{CHECKS}")
    assert main(["check", "--config", str(path), "rot"], lookup=fakes.lookup) == 2
    err = capsys.readouterr().err
    assert "no check named 'rot' (configured: agent, root, data, broken)" in err


def test_check_subprocess_with_a_critical_check_exits_2(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    path = write_config(f"[agent]\nstate_dir = '{tmp_path}'\n"
                        "[checks.root]\ntype = 'fake'\nstatus = 'critical'\n")
    script = textwrap.dedent(f"""
        from agent.cli import main
        from tests.agent import fakes
        raise SystemExit(main(["check", "--config", {str(path)!r}, "--json"],
                              lookup=fakes.lookup))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env=env())
    assert done.returncode == 2, done.stderr
    assert [r["status"] for r in json.loads(done.stdout)] == [0, 2]


def test_check_with_the_real_self_check(write_config: WriteConfig, tmp_path: Path) -> None:
    path = write_config(f"[agent]\nstate_dir = '{tmp_path}'\n")
    done = subprocess.run([sys.executable, "-m", "agent", "check", "--config", str(path),
                           "--json"], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env=env())
    rows = json.loads(done.stdout)
    assert [(r["check"], r["type"]) for r in rows] == [("agent", "agent")]
    assert done.returncode == rows[0]["status"] == 0, done.stdout + done.stderr


def test_run_pushes_results_and_stops_cleanly(write_config: WriteConfig, tmp_path: Path) -> None:
    path = write_config(
        f"[agent]\nhost = 'db1.example.net'\nstate_dir = '{tmp_path / 'state'}'\n"
        "[collector]\nurl = 'http://collector.test'\ntoken = 't0k3n'\npush_interval = 0.2\n"
        "[checks.agent]\ninterval = 0.3\njitter = 0\n"
        "[checks.root]\ntype = 'fake'\ninterval = 0.3\njitter = 0\n"
    )
    config = load_config(path, lookup=fakes.lookup, for_run=True)
    batches: list[dict[str, Any]] = []

    def collector(request: Request) -> Response:
        batches.append(json.loads(gzip.decompress(request.content)))
        return Response(202, content=json.dumps({"batch_id": batches[-1]["batch_id"]}).encode())

    stop = threading.Event()
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(run_agent(
        config, transport=collector, stop=stop, install_signals=False)))
    thread.start()
    time.sleep(1.5)
    stop.set()
    thread.join(20)
    assert codes == [0]
    results = [r for b in batches for r in b["results"]]
    assert {r["check"] for r in results} == {"agent", "root"}
    assert all(b["host"] == "db1.example.net" and b["agent"]["interval"] == 0.3
               for b in batches)
    seqs = [r["seq"] for r in results]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    agent_result = next(r for r in results if r["check"] == "agent")
    assert {"version", "started_at", "spool_depth", "spool_bytes", "spool_oldest_age",
            "spool_dropped_total", "send_failures_total", "last_push_ok_at"} <= set(
        agent_result["details"])  # what the self-check is given through agent_info
    assert agent_result["details"]["version"] == "0.1.0"
    assert len(Spool(config.spool_dir)) == 0


@pytest.mark.timeout(30)
def test_run_stops_at_once_with_status_1_when_a_thread_dies(
    write_config: WriteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The main thread does not poll its threads; one that dies stops the agent by itself,
    so that the service manager restarts it."""
    path = write_config(
        f"[agent]\nstate_dir = '{tmp_path / 'state'}'\n"
        "[collector]\nurl = 'http://collector.test'\ntoken = 't0k3n'\n"
        "[checks.agent]\ninterval = 60\n"
    )
    config = load_config(path, lookup=fakes.lookup, for_run=True)

    def broken(self: object) -> None:
        time.sleep(0.3)
        raise RuntimeError("scheduler bug")

    monkeypatch.setattr("agent.cli.Scheduler.run", broken)
    started = time.monotonic()
    code = run_agent(config, transport=lambda r: Response(202), stop=threading.Event(),
                     install_signals=False)
    assert code == 1
    assert time.monotonic() - started < 10
    assert "the scheduler thread died; stopping" in caplog.text


@pytest.mark.timeout(60)
def test_run_keeps_results_through_an_outage_and_stops_on_sigterm(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text("t0k3n\n")
    path = write_config(
        f"[agent]\nstate_dir = '{tmp_path / 'state'}'\n"
        "[collector]\nurl = 'http://127.0.0.1:9'\ntoken_file = 'token'\ntimeout = 1\n"
        "backoff_initial = 0.1\nbackoff_max = 0.5\n"
        "[checks.agent]\ninterval = 0.5\njitter = 0\n"
    )
    agent = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(path)],
                             stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env())
    try:
        time.sleep(3)
        agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=20)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert agent.returncode == 0, err
    assert "received SIGTERM" in err and "stopped" in err
    assert "push of batch" in err and "stay spooled" in err
    first_line = err.splitlines()[0]
    assert first_line[:4].isdigit() and " INFO agent: watchkeeper-agent 0.1.0 starting" in \
        first_line
    spool = Spool(tmp_path / "state" / "spool")
    stats = spool.stats()
    assert stats.depth == stats.produced_total >= 4  # nothing lost while the collector is down


def test_record_baseline_then_a_new_listener_is_reported(tmp_path: Path) -> None:
    """`record-baseline` stores what the running agent's check compares against."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    auth_log = tmp_path / "auth.log"
    auth_log.write_text("")
    config = tmp_path / "agent.toml"
    config.write_text(
        f"[agent]\nstate_dir = '{tmp_path / 'state'}'\n\n"
        f"[checks.intr]\ntype = 'intrusion'\nauth_log = '{auth_log}'\n"
        f"listener_ports = ['{port}']\nrecord_baseline_if_missing = false\n")

    def agent(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agent", *args, "--config", str(config)],
                              capture_output=True, text=True, timeout=60, cwd=ROOT, env=env())

    recorded = agent("record-baseline")
    assert recorded.returncode == 0, recorded.stderr
    assert recorded.stdout.strip() == "intr: baseline recorded (0 entries)"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        rows = json.loads(agent("check", "--json", "intr").stdout)
    listeners = next(r for r in rows if r["target"] == "listeners")
    assert listeners["status"] == 1, listeners
    assert str(port) in listeners["summary"]
    assert "python" in json.dumps(listeners)  # the new listener names its process

    refused = agent("record-baseline", "agent")
    assert refused.returncode == 2
    assert "keeps no baseline" in refused.stderr
