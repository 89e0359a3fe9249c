"""The collector's /metrics catalogue: what a Prometheus scraping it sees, and promtool's lint."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from collector.db import create_db_engine
from collector.ops.metrics import StateCollector, render_metrics
from collector.ops.support_metrics import SupportCollector
from collector.problems.engine import run_once
from collector.settings import Settings
from collector.tickets.models import Ticket
from tests.services.prometheus import prometheus_tool

RT_GAUGES = ("watchkeeper_rt_backlog", "watchkeeper_rt_backlog_tickets", "watchkeeper_rt_failing",
             "watchkeeper_rt_dead", "watchkeeper_rt_oldest_pending_seconds")

HOST = "db1.example.net"
ODD_TARGET = 'C:\\data "main"'  # a backslash and quotes must survive the text format


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def samples_of(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def promtool() -> str:
    return prometheus_tool("promtool")


def lint(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), "check", "metrics"], input=text, text=True,
                          capture_output=True, timeout=60, check=False)


@pytest.fixture
def busy_collector(settings, enroll_host, start_collector, make_batch, result, clock) -> Any:
    """A collector after some pushes (one problem hard, with a ticket) and a refused push."""
    token = enroll_host(settings, HOST, customer="acme")
    client = start_collector(settings, clock)
    metrics = [{"name": "used_pct", "value": 97.5, "unit": "%", "warn": 85, "crit": 95},
               {"name": "free_bytes", "value": 2.5e9, "unit": "B"},
               {"name": "used_pct", "value": 1.0, "unit": "%"},  # a repeated name: the first
               {"name": "inodes_pct", "value": None}]  # no value: no sample
    for _ in range(3):  # three CRITICAL results in a row: a hard problem
        answer = client.post("/api/v1/results", headers=auth(token), json=make_batch(HOST, [
            result(check="disk", target=ODD_TARGET, status=2, metrics=metrics),
            result(check="load", target="1min", status=0,
                   metrics=[{"name": "load", "value": 0.25}]),
        ]))
        assert answer.status_code == 202, answer.text
    client.post("/api/v1/results", json=make_batch(HOST))  # no token: refused
    runtime = client.app.state.runtime
    run_once(engine=runtime.engine, policy=runtime.policy, settings=runtime.settings,
             now=clock())
    return client


def test_a_busy_collector_s_metrics_pass_promtool_lint(busy_collector):
    text = busy_collector.get("/metrics").text
    assert "watchkeeper_check_metric{" in text and "watchkeeper_tickets{" in text
    checked = lint(text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    checked = lint(render_metrics(busy_collector.app.state.registry).decode())
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # no *_created gauges next to the counters and histograms
    assert "_created" not in text


def test_promtool_lint_does_find_naming_problems():
    # The lint the tests above rely on does fail on a bad family (so rc 0 means clean).
    bad = "# HELP bad_seconds A counter.\n# TYPE bad_seconds counter\nbad_seconds 1\n"
    assert lint(bad).returncode == 3


def test_check_values_problems_and_sla_clocks_are_read_at_scrape_time(busy_collector, clock):
    app = busy_collector.app
    samples = samples_of(busy_collector.get("/metrics").text)
    disk = (("check", "disk"), ("customer", "acme"), ("host", HOST), ("target", ODD_TARGET))
    assert samples[("watchkeeper_check_status", disk)] == 2
    assert samples[("watchkeeper_check_metric", (*disk[:3], ("metric", "free_bytes"),
                                                  disk[3]))] == 2.5e9
    assert samples[("watchkeeper_check_metric", (*disk[:3], ("metric", "used_pct"),
                                                  disk[3]))] == 97.5
    assert not any(labels and ("metric", "inodes_pct") in labels for _, labels in samples)
    load = (("check", "load"), ("customer", "acme"), ("host", HOST), ("metric", "load"),
            ("target", "1min"))
    assert samples[("watchkeeper_check_metric", load)] == 0.25

    with app.state.engine.connect() as conn:
        ticket = conn.execute(select(Ticket)).mappings().one()
    priority = ticket["priority"]
    assert samples[("watchkeeper_problems", (("priority", priority), ("state", "hard")))] == 1
    assert samples[("watchkeeper_problems", (("priority", "none"), ("state", "soft")))] == 0
    assert samples[("watchkeeper_tickets", (("priority", priority), ("state", "new")))] == 1
    first = ("watchkeeper_sla_next_due_seconds", (("commitment", "first_response"),
                                                  ("priority", priority)))
    assert samples[first] == pytest.approx(ticket["first_response_due"] - clock())
    assert samples[first] > 0
    # no pending commitment at another priority: no series (not a made-up number)
    other = "P4" if priority != "P4" else "P1"
    assert ("watchkeeper_sla_next_due_seconds", (("commitment", "first_response"),
                                                 ("priority", other))) not in samples

    clock.advance(30 * 86400)  # long past due: the clock runs negative
    later = samples_of(busy_collector.get("/metrics").text)
    assert later[first] == pytest.approx(ticket["first_response_due"] - clock())
    assert later[first] < 0

    assert samples[("watchkeeper_notifications_dead_total", ())] == 0
    assert samples[("watchkeeper_store_up", ())] == 1
    assert 0 < samples[("watchkeeper_store_query_duration_seconds", ())] < 10
    assert samples[("watchkeeper_ingest_rejected_total", (("reason", "not_authenticated"),))] == 1


def test_the_request_tracker_gauges_are_there_at_zero_without_the_connector(busy_collector):
    # Always exported: an alert on them never sees a series appear or vanish.
    text = busy_collector.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in RT_GAUGES:
        assert families[name].type == "gauge", name
        assert families[name].documentation, name
        assert [s.value for s in families[name].samples] == [0.0], name


def test_the_fast_rendering_says_what_prometheus_client_says(busy_collector):
    registry = busy_collector.app.state.registry
    fast = samples_of(render_metrics(registry).decode())
    plain = samples_of(generate_latest(registry).decode())
    timing = ("watchkeeper_store_query_duration_seconds", ())
    fast.pop(timing)
    plain.pop(timing)
    assert fast == plain
    assert len(fast) > 50


def test_a_store_that_does_not_answer_is_reported_not_a_failed_scrape(tmp_path):
    settings = Settings.model_validate(
        {"database": {"url": f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}"}})
    engine = create_db_engine(settings)
    registry = CollectorRegistry()
    registry.register(StateCollector(engine))
    registry.register(SupportCollector(engine, lambda: 0.0))
    try:
        samples = samples_of(render_metrics(registry).decode())
    finally:
        engine.dispose()
    assert samples[("watchkeeper_store_up", ())] == 0
    assert not any(name == "watchkeeper_check_status" for name, _ in samples)
    assert not any(name == "watchkeeper_tickets" for name, _ in samples)
