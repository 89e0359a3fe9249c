"""The Prometheus and Grafana files shipped in deploy/, checked with the real tools.

- ``promtool check config``, ``check rules`` and ``test rules`` accept them, and the rule
  unit tests have teeth: an alert that never fires, or always fires, fails them;
- a real Prometheus on loopback, loading the shipped rules, scrapes a real collector
  process: a CRITICAL result pushed over HTTP is read back as
  ``watchkeeper_check_status == 2``, the rules evaluate healthy, the recording rule counts
  the critical check, every dashboard query is accepted, and a stopped collector makes
  ``WatchkeeperCollectorDown`` pending;
- the Grafana dashboard is valid JSON and its queries name only metrics the collector
  documents or the rules record.

A missing promtool or prometheus fails naming the Debian package; nothing here skips.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.ticketing import Host, disk_result
from tests.services.prometheus import prometheus_tool
from tests.support.ports import free_port
from tests.support.processes import Collector, Proc, wait_until

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES = PROMETHEUS_DIR / "rules.yml"
RULES_TEST = PROMETHEUS_DIR / "rules_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "watchkeeper.json"
METRICS_DOC = ROOT / "docs" / "collector.md"

CUSTOMER = "acme"
HOST = "db-1.prom.example"
JOB = "watchkeeper-collector"

# Words of PromQL that are not metric names.
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "rate", "irate", "increase", "delta", "idelta",
    "deriv", "changes", "resets", "histogram_quantile", "time", "vector", "scalar", "abs",
    "clamp_min", "clamp_max", "label_replace", "label_join", "sort", "sort_desc", "absent",
    "max_over_time", "min_over_time", "avg_over_time", "sum_over_time", "count_over_time",
    "last_over_time", "timestamp", "round", "ceil", "floor", "inf", "nan",
}



def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run([prometheus_tool("promtool"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, check=False)


# ----------------------------------------------------------------------------- promtool


def test_the_example_scrape_config_is_valid() -> None:
    done = promtool("check", "config", str(CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_are_valid() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_names()) + len(recording_rules())} rules found" in done.stdout


def test_the_rule_unit_tests_pass() -> None:
    done = promtool("test", "rules", str(RULES_TEST))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def alert_names() -> list[str]:
    return re.findall(r"^\s*- alert: (\w+)$", RULES.read_text(), re.MULTILINE)


def recording_rules() -> list[str]:
    return re.findall(r"^\s*- record: (\S+)$", RULES.read_text(), re.MULTILINE)


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    text = RULES_TEST.read_text()
    firing = set(re.findall(r"alertname: (\w+)\n\s*exp_alerts:\n", text))
    quiet = set(re.findall(r"alertname: (\w+)\n\s*exp_alerts: \[\]", text))
    alerts = set(alert_names())
    assert alerts == {"WatchkeeperCollectorDown", "WatchkeeperHostSilent",
                      "WatchkeeperSlaBreach", "WatchkeeperTicketsOverdue",
                      "WatchkeeperIngestRejections", "WatchkeeperOutboxStuck",
                      "WatchkeeperNotificationsDead", "WatchkeeperRtBacklogStuck",
                      "WatchkeeperRtChangesDead"}
    assert alerts - firing == set(), "alerts never shown firing"
    assert alerts - quiet == set(), "alerts never shown staying quiet"


def with_expr(rules: str, alert: str, expr: str) -> str:
    """``rules`` with the expression of ``alert`` replaced by ``expr``."""
    pattern = re.compile(rf"(- alert: {alert}\n\s+expr:).*?(\n\s+(?:for|labels):)", re.DOTALL)
    changed, count = pattern.subn(rf"\1 {expr}\2", rules)
    assert count == 1, alert
    return changed


@pytest.mark.parametrize("alert", alert_names())
@pytest.mark.parametrize("broken", ["vector(1) > 2", "vector(1)"],
                         ids=["never fires", "always fires"])
def test_the_unit_tests_fail_when_an_alert_is_broken(alert: str, broken: str,
                                                     tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(with_expr(RULES.read_text(), alert, broken))
    shutil.copy(RULES_TEST, tmp_path / "rules_test.yml")
    assert promtool("check", "rules", "rules.yml", cwd=tmp_path).returncode == 0
    done = promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert done.returncode != 0, f"{alert} as '{broken}' passed the unit tests"
    assert f"alertname: {alert}" in done.stdout + done.stderr


# ----------------------------------------------------------------------------- dashboard


def dashboard() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return body


def dashboard_exprs() -> list[str]:
    """Every PromQL query of the dashboard's panels (rows included)."""
    found: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            found.extend(t["expr"] for t in panel.get("targets", []))
            walk(panel.get("panels", []))

    walk(dashboard()["panels"])
    return found


def concrete(expr: str) -> str:
    """A dashboard query with Grafana's variables given values Prometheus accepts."""
    return expr.replace("$__rate_interval", "5m").replace("$customer", ".*")


def documented_metrics() -> set[str]:
    """The metric names docs/collector.md lists, a histogram's series included."""
    text = METRICS_DOC.read_text()
    names = set(re.findall(r"`(watchkeeper_[a-z0-9_]+)", text))
    histograms = {n for n in names if n.endswith("_seconds") or n.endswith("_batches")}
    for name in histograms:
        names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names | {"up"}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads (a simple reading of PromQL: strings, label
    matchers, groupings and ranges removed; functions and keywords left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))
    return {w for w in words if w.lower() not in PROMQL_WORDS}


def test_metric_names_are_read_from_promql() -> None:
    assert metric_names(
        'sum by (le) (rate(watchkeeper_x_bucket{a="b c"}[5m])) and on (host) up == 1'
    ) == {"watchkeeper_x_bucket", "up"}


def test_the_dashboard_reads_only_metrics_that_exist() -> None:
    known = documented_metrics() | set(recording_rules())
    assert "watchkeeper_check_status" in known
    for expr in dashboard_exprs():
        unknown = metric_names(expr) - known
        assert not unknown, f"{expr}: unknown metrics {sorted(unknown)}"
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            metric = re.search(r"label_values\((\w+)", variable["definition"])
            assert metric is not None and metric.group(1) in known, variable


def test_the_dashboard_shows_what_the_noc_needs() -> None:
    body = dashboard()
    assert body["uid"] and body["title"]
    read = set().union(*(metric_names(e) for e in dashboard_exprs()))
    for needed in ("customer_status:watchkeeper_checks:count",  # checks by status
                   "customer:watchkeeper_host_silent:sum",  # silent hosts
                   "priority:watchkeeper_tickets_active:sum",  # tickets by priority
                   "watchkeeper_tickets_overdue", "watchkeeper_sla_breaches_total",
                   "watchkeeper_notifications", "watchkeeper_notifications_oldest_due_seconds",
                   "job_outcome:watchkeeper_ingest_batches:rate5m",  # ingest rate
                   "watchkeeper_ingest_request_duration_seconds_bucket"):  # ingest latency
        assert needed in read, needed
    ids = [p["id"] for p in body["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"


def rule_exprs() -> list[str]:
    """The ``expr`` of every rule in rules.yml (inline, or a folded block below the key)."""
    exprs: list[str] = []
    lines = [line for line in RULES.read_text().splitlines()
             if not line.lstrip().startswith("#")]
    for i, line in enumerate(lines):
        key = re.match(r"^(\s*)expr: (.*)$", line)
        if key is None:
            continue
        if key.group(2) not in (">", ">-", "|", "|-"):
            exprs.append(key.group(2))
            continue
        block = []
        for following in lines[i + 1:]:
            if len(following) - len(following.lstrip()) <= len(key.group(1)):
                break
            block.append(following.strip())
        exprs.append(" ".join(block))
    return exprs


def test_the_rules_read_only_metrics_that_exist() -> None:
    known = documented_metrics() | set(recording_rules())
    exprs = rule_exprs()
    assert len(exprs) == len(alert_names()) + len(recording_rules())
    for expr in exprs:
        unknown = metric_names(expr) - known
        assert not unknown, f"{expr}: unknown metrics {sorted(unknown)}"


def test_the_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each query, as a recording rule, passes ``promtool check rules``."""
    rules = "groups:\n  - name: dashboard\n    rules:\n" + "".join(
        f"      - record: dashboard:query_{i}\n        expr: {json.dumps(concrete(e))}\n"
        for i, e in enumerate(dashboard_exprs()))
    (tmp_path / "dashboard_rules.yml").write_text(rules)
    done = promtool("check", "rules", "dashboard_rules.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


# ----------------------------------------------------------------------------- live


@dataclass
class Prometheus:
    url: str
    proc: Proc

    def api(self, path: str, **params: str) -> Any:
        answer = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = answer.json()
        assert answer.status_code == 200 and body["status"] == "success", answer.text
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result


@dataclass
class Stack:
    collector: Collector
    prometheus: Prometheus


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A collector with one host whose disk is CRITICAL, scraped every second by a
    Prometheus that loads the shipped rules."""
    binary = prometheus_tool("prometheus")
    work = tmp_path_factory.mktemp("prometheus")
    (work / "collector").mkdir()
    collector = Collector(work / "collector").start()
    prom: Proc | None = None
    try:
        host = Host(collector.url, HOST, collector.enroll(CUSTOMER, HOST))
        host.push([disk_result(host, 2, time.time())])
        port = free_port()
        config = work / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: [{json.dumps(str(RULES))}]\n"
            "scrape_configs:\n"
            f"  - job_name: {JOB}\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{collector.port}']}}]\n"
        )
        prom = Proc([binary, f"--config.file={config}", f"--storage.tsdb.path={work / 'data'}",
                     f"--web.listen-address=127.0.0.1:{port}"], work / "prometheus.log").start()
        prometheus = Prometheus(f"http://127.0.0.1:{port}", prom)

        def ready() -> bool:
            assert prom is not None and prom.alive(), prom.tail() if prom else ""
            try:
                return httpx.get(f"{prometheus.url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 30, "prometheus ready")
        yield Stack(collector, prometheus)
    finally:
        if prom is not None:
            prom.stop()
        collector.stop()


@pytest.mark.e2e
def test_prometheus_reads_a_pushed_critical_check(stack: Stack) -> None:
    expr = f'watchkeeper_check_status{{host="{HOST}"}}'
    # The first scrape comes some 5 s after start (target discovery), so poll.
    wait_until(lambda: any(s["metric"]["check"] == "disk" for s in stack.prometheus.query(expr)),
               60, f"{expr} in Prometheus\n{stack.prometheus.proc.tail()}", interval=0.5)
    disk = [s for s in stack.prometheus.query(expr) if s["metric"]["check"] == "disk"]
    assert len(disk) == 1
    assert disk[0]["metric"]["customer"] == CUSTOMER
    assert disk[0]["metric"]["target"] == "/srv"
    assert disk[0]["value"][1] == "2"
    up = stack.prometheus.query(f'up{{job="{JOB}"}}')
    assert [s["value"][1] for s in up] == ["1"]


@pytest.mark.e2e
def test_the_shipped_rules_evaluate_on_the_scraped_metrics(stack: Stack) -> None:
    def evaluated() -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = stack.prometheus.api("rules")["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def all_evaluated() -> bool:
        rules = evaluated()
        return bool(rules) and all(r["lastEvaluation"] > "2000" for r in rules)

    wait_until(all_evaluated, 30, "every rule evaluated", interval=0.5)
    rules = evaluated()
    assert sorted(r["name"] for r in rules if r["type"] == "alerting") == sorted(alert_names())
    assert {r["name"] for r in rules if r["type"] == "recording"} == set(recording_rules())
    unhealthy = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert unhealthy == []

    critical = 'customer_status:watchkeeper_checks:count{status="critical"}'
    wait_until(lambda: bool(stack.prometheus.query(critical)), 30, critical, interval=0.5)
    [sample] = stack.prometheus.query(critical)
    assert sample["metric"]["customer"] == CUSTOMER and sample["value"][1] == "1"
    assert [a["labels"]["alertname"] for a in stack.prometheus.api("alerts")["alerts"]] == []


@pytest.mark.e2e
def test_prometheus_accepts_every_dashboard_query(stack: Stack) -> None:
    for expr in dashboard_exprs():
        stack.prometheus.query(concrete(expr))  # an error answer fails inside


@pytest.mark.e2e
def test_a_stopped_collector_makes_the_down_alert_pending(stack: Stack) -> None:
    test_prometheus_reads_a_pushed_critical_check(stack)  # scraped while it runs
    stack.collector.stop()

    def down_alert() -> list[dict[str, Any]]:
        return [a for a in stack.prometheus.api("alerts")["alerts"]
                if a["labels"]["alertname"] == "WatchkeeperCollectorDown"]

    wait_until(lambda: bool(down_alert()), 30, "WatchkeeperCollectorDown", interval=0.5)
    [alert] = down_alert()
    assert alert["state"] == "pending"  # fires after 2 minutes
    assert alert["labels"]["instance"] == f"127.0.0.1:{stack.collector.port}"
