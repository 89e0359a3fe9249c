"""The agent's own /metrics endpoint: off by default, configured by ``[metrics] listen``."""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from agent.cli import main, run_agent
from agent.config import load_config
from agent.metrics import LatestResults, Sources, render
from agent.scheduler import ListSink
from agent.spool import peek_stats
from agent.transport import Request, Response
from checks.result import CheckResult, Metric, Status
from tests.agent import fakes
from tests.agent.test_footprint import NOT_LOADED
from tests.services.prometheus import prometheus_tool
from tests.support.ports import free_port
from tests.support.processes import wait_until

ROOT = Path(__file__).resolve().parents[2]
WriteConfig = Callable[..., Path]

CHECKS = """
[checks.agent]
interval = 60
jitter = 0

[checks.root]
type = "fake"
targets = ["/"]
interval = 60
jitter = 0

[checks.data]
type = "fake"
status = "warning"
targets = ["/srv", "/var"]
interval = 60
jitter = 0
"""


def env() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
            "PYTHONPATH": str(ROOT)}


def samples(text: str) -> dict[str, float]:
    """``{'name{labels}': value}`` of an exposition."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            out[series] = float(value)
    return out


def promtool() -> str:
    return prometheus_tool("promtool")


def prometheus() -> str:
    return prometheus_tool("prometheus")


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60, check=False)


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(("listen", "message"), [
    ('"127.0.0.1"', "metrics.listen: expected HOST:PORT"),
    ('"127.0.0.1:70000"', "metrics.listen: port must be between 1 and 65535, got 70000"),
    ('"127.0.0.1:0"', "metrics.listen: port must be between 1 and 65535, got 0"),
    ('"300.1.2.3:9108"', "metrics.listen: not an IPv4 address: '300.1.2.3'"),
    ('"[1:::2]:9108"', "metrics.listen: not an IPv6 address: '1:::2'"),
    ('"http://127.0.0.1:9108/metrics"', "metrics.listen: expected HOST:PORT"),
    ("9108", "metrics.listen: expected a string"),
])
def test_a_bad_listen_address_is_a_config_error_naming_the_key(
    write_config: WriteConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    listen: str, message: str,
) -> None:
    path = write_config(f"[agent]\nstate_dir = '{tmp_path}'\n"
                        "[collector]\nurl = 'http://127.0.0.1:9'\ntoken = 't'\n"
                        f"[metrics]\nlisten = {listen}\n")
    assert main(["validate", "--config", str(path)], lookup=fakes.lookup) == 2
    err = capsys.readouterr().err
    assert f"config error: agent.toml: {message}" in err


def test_an_unknown_metrics_key_is_named(
    write_config: WriteConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(f"[agent]\nstate_dir = '{tmp_path}'\n[metrics]\nport = 9108\n")
    assert main(["check", "--config", str(path)], lookup=fakes.lookup) == 2
    assert "agent.toml: metrics.port: unknown key (allowed here: listen)" in \
        capsys.readouterr().err


@pytest.mark.parametrize("listen", ["127.0.0.1:9108", "[::1]:9108", "localhost:9108",
                                    "0.0.0.0:9108", "monitor-1.example.net:9108"])
def test_good_listen_addresses_validate(
    write_config: WriteConfig, tmp_path: Path, listen: str
) -> None:
    path = write_config(f"[agent]\nstate_dir = '{tmp_path}'\n[metrics]\nlisten = '{listen}'\n")
    config = load_config(path, lookup=fakes.lookup)
    host, port = config.metrics.address or ("", 0)
    assert port == 9108 and host in listen


def test_a_port_in_use_stops_the_agent_naming_the_key(
    write_config: WriteConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        path = write_config(f"[agent]\nstate_dir = '{tmp_path / 'state'}'\n"
                            "[collector]\nurl = 'http://collector.test'\ntoken = 't'\n"
                            f"[metrics]\nlisten = '127.0.0.1:{port}'\n{CHECKS}")
        config = load_config(path, lookup=fakes.lookup, for_run=True)
        code = run_agent(config, transport=lambda r: Response(202), stop=threading.Event(),
                         install_signals=False)
    assert code == 2
    err = capsys.readouterr().err
    assert f"agent.toml: metrics.listen: cannot listen on 127.0.0.1:{port}: " in err
    assert "in use" in err


# -- a running agent -------------------------------------------------------------------------


@pytest.fixture
def running_agent(write_config: WriteConfig, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An agent whose collector answers 503: every result stays in the spool."""
    port = free_port()
    path = write_config(
        f"[agent]\nhost = 'db1.example.net'\nstate_dir = '{tmp_path / 'state'}'\n"
        "[collector]\nurl = 'http://collector.test'\ntoken = 't0k3n'\n"
        "backoff_initial = 60\nbackoff_max = 60\n"
        f"[metrics]\nlisten = '127.0.0.1:{port}'\n{CHECKS}"
    )
    config = load_config(path, lookup=fakes.lookup, for_run=True)
    pushes: list[int] = []

    def collector(request: Request) -> Response:
        pushes.append(len(json.loads(gzip.decompress(request.content))["results"]))
        return Response(503, content=b'{"error": "unavailable", "detail": "maintenance"}')

    stop = threading.Event()
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(run_agent(
        config, transport=collector, stop=stop, install_signals=False)))
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/metrics", config.spool_dir
    finally:
        stop.set()
        thread.join(20)
    assert codes == [0]
    with pytest.raises(httpx.ConnectError):  # the endpoint closed with the agent
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def _scrape_when(url: str, ready: Callable[[dict[str, float]], bool]) -> str:
    texts: list[str] = []

    def scraped() -> bool:
        try:
            response = httpx.get(url, timeout=5)
        except httpx.TransportError:
            return False
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        texts.append(response.text)
        return ready(samples(response.text))

    wait_until(scraped, 20, "the agent's metrics")
    return texts[-1]


def test_a_running_agent_serves_its_checks_and_its_spool(
    running_agent: tuple[str, Path],
) -> None:
    url, spool_dir = running_agent
    text = _scrape_when(url, lambda s: s.get("watchkeeper_agent_send_failures_total", 0) >= 1
                        and 'watchkeeper_agent_check_status{check="data",target="/var",'
                            'type="fake"}' in s)
    values = samples(text)
    assert values['watchkeeper_agent_check_status{check="root",target="/",type="fake"}'] == 0
    assert values['watchkeeper_agent_check_status{check="data",target="/srv",type="fake"}'] == 1
    assert values['watchkeeper_agent_check_status{check="data",target="/var",type="fake"}'] == 1
    assert values['watchkeeper_agent_check_status{check="agent",target="",type="agent"}'] == 0
    assert values['watchkeeper_agent_check_metric{check="data",target="/srv",'
                  'metric="used_pct",unit="%"}'] == 42.0
    assert 0 <= values['watchkeeper_agent_check_duration_seconds{check="root"}'] < 5
    assert abs(values['watchkeeper_agent_check_last_run_timestamp_seconds{check="root"}']
               - time.time()) < 30
    # The collector is down: the four results wait in the spool, none was sent.
    stats = peek_stats(spool_dir)
    assert stats is not None and stats.depth == 4
    assert values["watchkeeper_agent_spool_results"] == 4
    assert values["watchkeeper_agent_results_produced_total"] == 4
    assert values["watchkeeper_agent_results_sent_total"] == 0
    assert values['watchkeeper_agent_results_dropped_total{reason="age"}'] == 0
    assert values['watchkeeper_agent_results_dropped_total{reason="size"}'] == 0
    assert values["watchkeeper_agent_spool_bytes"] == stats.bytes
    assert 0 <= values["watchkeeper_agent_spool_oldest_age_seconds"] < 30
    assert values['watchkeeper_agent_info{version="0.1.0"}'] == 1
    assert abs(values["watchkeeper_agent_start_time_seconds"] - time.time()) < 30
    assert "# TYPE watchkeeper_agent_send_failures_total counter" in text
    assert "# HELP watchkeeper_agent_check_status " in text


def test_promtool_finds_the_scrape_clean(running_agent: tuple[str, Path]) -> None:
    url, _ = running_agent
    text = _scrape_when(url, lambda s: s.get("watchkeeper_agent_send_failures_total", 0) >= 1)
    done = promtool_check(text)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_real_prometheus_scrapes_the_agent(
    running_agent: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = running_agent
    target = url.removeprefix("http://").removesuffix("/metrics")
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: agent\n    static_configs: [{{targets: ['{target}']}}]\n")
    with (tmp_path / "prometheus.log").open("wb") as log:
        server = subprocess.Popen(
            [prometheus(), f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT)
    query = 'watchkeeper_agent_check_status{check="data",target="/srv"}'
    found: list[dict[str, object]] = []

    def answered() -> bool:
        try:
            data = httpx.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": query},
                             timeout=5).json()
        except (httpx.TransportError, ValueError):
            return False
        found[:] = data.get("data", {}).get("result", [])
        return bool(found)

    try:
        # Prometheus discovers its targets about 5 s after it starts.
        wait_until(answered, 60, f"Prometheus to answer {query}")
    finally:
        server.terminate()
        server.wait(20)
    [series] = found
    assert series["metric"] == {"__name__": "watchkeeper_agent_check_status", "check": "data",
                                "target": "/srv", "type": "fake", "instance": target,
                                "job": "agent"}
    assert series["value"][1] == "1"  # type: ignore[index]


def test_only_get_metrics_is_served(running_agent: tuple[str, Path]) -> None:
    url, _ = running_agent
    _scrape_when(url, lambda s: True)
    base = url.removesuffix("/metrics")
    assert httpx.get(f"{base}/", timeout=5).status_code == 404
    assert httpx.get(f"{base}/metrics/extra", timeout=5).status_code == 404
    refused = httpx.post(url, content=b"x", timeout=5)
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
    head = httpx.head(url, timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert httpx.get(f"{url}?name[]=x", timeout=5).status_code == 200
    with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=5) as s:
        s.sendall(b"garbage\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400 ")
    assert httpx.get(url, timeout=5).status_code == 200  # still serving after a bad client


# -- what a scrape shows ---------------------------------------------------------------------


def _result(check: str, target: str, status: Status = Status.OK,
            metrics: tuple[Metric, ...] = ()) -> CheckResult:
    return CheckResult(check, target, status, f"{target} is {status.name}", metrics)


def _render(latest: LatestResults) -> str:
    return render(Sources(latest=latest, spool_stats=lambda: None, sender_stats=lambda: None,
                          started_at=1_800_000_000.0))


def test_a_target_the_check_stopped_reporting_goes_after_two_runs() -> None:
    sink = ListSink()
    latest = LatestResults(sink)
    for target in ("/", "/mnt/usb"):
        latest.add(_result("disk", target), type_name="disk", produced_at=100.0)
    latest.add(_result("disk", "/", Status.WARNING), type_name="disk", produced_at=160.0)
    shown = samples(_render(latest))
    # Kept one more run: the run may still be reporting its targets one by one.
    assert shown['watchkeeper_agent_check_status{check="disk",target="/",type="disk"}'] == 1
    assert 'watchkeeper_agent_check_status{check="disk",target="/mnt/usb",type="disk"}' in shown
    latest.add(_result("disk", "/"), type_name="disk", produced_at=220.0)
    shown = samples(_render(latest))
    assert [k for k in shown if k.startswith("watchkeeper_agent_check_status")] == [
        'watchkeeper_agent_check_status{check="disk",target="/",type="disk"}']
    assert len(sink.items) == 4  # every result went on to the inner sink


def test_odd_names_and_values_are_escaped_and_promtool_accepts_them() -> None:
    latest = LatestResults(ListSink())
    metrics = (Metric("lag", float("nan"), "s"), Metric("limit", float("inf")),
               Metric("used_pct", 12.5, "%"), Metric("used_pct", 13.5, "%"))
    latest.add(_result("files", 'C:\\data "new"\nline', Status.CRITICAL, metrics),
               type_name="file_age", duration=0.25, produced_at=1_800_000_000.5)
    text = _render(latest)
    assert ('watchkeeper_agent_check_status{check="files",target="C:\\\\data \\"new\\"\\nline",'
            'type="file_age"} 2') in text
    assert 'metric="lag",unit="s"} NaN' in text and 'metric="limit",unit=""} +Inf' in text
    assert 'metric="used_pct",unit="%"} 13.5' in text and "12.5" not in text
    assert 'watchkeeper_agent_check_duration_seconds{check="files"} 0.25' in text
    done = promtool_check(text)
    assert done.returncode == 0, done.stdout + done.stderr


# -- off by default --------------------------------------------------------------------------


def _listening_ports(pid: int) -> set[int]:
    """TCP ports the process ``pid`` listens on (its socket inodes in /proc/net/tcp*)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _first_result_spooled(spool_dir: Path) -> bool:
    stats = peek_stats(spool_dir)
    return stats is not None and stats.produced_total >= 1


def _run_subprocess(
    tmp_path: Path, metrics: str, ready: Callable[[], bool] | None = None
) -> tuple[set[int], set[str], str]:
    """Run ``watchkeeper-agent run`` (the real self-check) until its first result is spooled
    and ``ready()``: its listening ports, the modules it imported (``-X importtime``) and
    its log."""
    config = tmp_path / "agent.toml"
    config.write_text(
        # A host name given: socket.getfqdn() would load the idna codec.
        f"[agent]\nhost = 'db9.example.net'\nstate_dir = '{tmp_path / 'state'}'\n"
        "[collector]\nurl = 'http://127.0.0.1:9'\ntoken = 't'\nbackoff_initial = 30\n"
        "backoff_max = 30\n" + metrics +
        "[checks.agent]\ninterval = 60\njitter = 0\n"
    )
    agent = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "agent", "run",
                              "--config", str(config)], stderr=subprocess.PIPE, text=True,
                             cwd=ROOT, env=env())
    try:
        spool_dir = tmp_path / "state" / "spool"
        wait_until(lambda: _first_result_spooled(spool_dir), 20, "the first spooled result")
        if ready is not None:
            wait_until(ready, 20, "the agent to be ready")
        ports = _listening_ports(agent.pid)
        agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=20)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert agent.returncode == 0, err[-3000:]
    modules = {line.rsplit("|", 1)[1].strip() for line in err.splitlines()
               if line.startswith("import time:") and "|" in line}
    return ports, modules, err


def test_off_by_default_no_socket_and_the_module_is_not_loaded(tmp_path: Path) -> None:
    ports, modules, _ = _run_subprocess(tmp_path, "")
    assert ports == set()
    assert not {"agent.metrics", "agent.metrics_server"} & modules
    assert {m for m in NOT_LOADED if m in modules} == set()
    assert "agent.scheduler" in modules  # the import report is read right


def test_when_configured_the_real_agent_serves_metrics(tmp_path: Path) -> None:
    port = free_port()
    served: list[str] = []

    def scraped() -> bool:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
        except httpx.TransportError:
            return False
        if 'check="agent"' in response.text:
            served.append(response.text)
        return bool(served)

    ports, modules, err = _run_subprocess(tmp_path, f"[metrics]\nlisten = '127.0.0.1:{port}'\n",
                                          scraped)
    assert ports == {port}
    assert "agent.metrics" in modules
    heavy = {m: why for m, why in NOT_LOADED.items() if m in modules}
    assert heavy == {}  # the endpoint costs the agent no heavy module either
    assert f"metrics endpoint listening on http://127.0.0.1:{port}/metrics" in err
    assert served, err[-3000:]
    values = samples(served[0])
    assert values['watchkeeper_agent_check_status{check="agent",target="",type="agent"}'] in (
        0, 1)
    done = promtool_check(served[0])
    assert done.returncode == 0, done.stdout + done.stderr
