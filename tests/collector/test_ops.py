"""/metrics, /healthz, the overview page, retention, the body reader."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from collector.errors import PayloadTooLarge
from collector.ingest.body import read_capped
from collector.ingest.models import Result
from collector.ingest.scheduled import prune_job
from tests.collector.conftest import add_user


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_metrics_show_check_status_host_last_seen_and_ingest_counters(
    settings, enroll_host, start_collector, make_batch, result
):
    token = enroll_host(settings, "db1.example.net", customer="acme")
    client = start_collector(settings)
    client.post("/api/v1/results", json=make_batch("db1.example.net", [result(status=2)]),
                headers=auth(token))
    client.post("/api/v1/results", json=make_batch("db1.example.net"))  # 401

    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text) for s in family.samples
    }
    assert samples[("watchkeeper_check_status", (
        ("check", "disk"), ("customer", "acme"), ("host", "db1.example.net"), ("target", "/var"),
    ))] == 2
    seen = samples[("watchkeeper_host_last_seen_timestamp_seconds",
                    (("customer", "acme"), ("host", "db1.example.net")))]
    assert abs(seen - time.time()) < 60
    assert samples[("watchkeeper_host_silent",
                    (("customer", "acme"), ("host", "db1.example.net")))] == 0
    assert samples[("watchkeeper_ingest_batches_total", (("outcome", "stored"),))] == 1
    assert samples[("watchkeeper_ingest_results_total", ())] == 1
    assert samples[("watchkeeper_ingest_rejected_total", (("reason", "not_authenticated"),))] == 1
    assert ("watchkeeper_ingest_request_duration_seconds_count", ()) in samples

    # The naming rules promtool's lint applies: help on every family, counters end in
    # _total (the parser strips it from the family name, the samples keep it).
    for family in text_string_to_metric_families(answer.text):
        assert family.documentation, f"{family.name} has no help text"
        if family.type == "counter":
            assert any(s.name == f"{family.name}_total" for s in family.samples), family.name


def test_healthz(settings, start_collector, pg_server):
    client = start_collector(settings)
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}
    gone = settings.model_copy(update={"database": settings.database.model_copy(
        update={"url": pg_server.url("no_such_database")})})
    answer = start_collector(gone, role=None).get("/healthz")
    assert answer.status_code == 503
    assert answer.json()["status"] == "unavailable"


def test_overview_page_shows_hosts_and_problems_escaped(
    settings, enroll_host, start_collector, make_batch, result
):
    token = enroll_host(settings, "db1.example.net", customer="<b>acme</b>")
    client = start_collector(settings)
    client.post("/api/v1/results", headers=auth(token), json=make_batch(
        "db1.example.net", [result(status=2, summary="<script>alert(1)</script> full")]))
    add_user(settings, "nina", "noc", password="correct horse")
    page = client.browser("nina", "correct horse").get("/")
    assert page.status_code == 200
    html = page.text
    assert "db1.example.net" in html
    assert "CRITICAL" in html  # the status as text, not only as a colour
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; full" in html
    assert "&lt;b&gt;acme&lt;/b&gt;" in html


def test_retention_prunes_old_results(
    settings, enroll_host, start_collector, make_batch, clock
):
    token = enroll_host(settings, "db1.example.net")
    client = start_collector(settings, clock)
    old = make_batch("db1.example.net")
    client.post("/api/v1/results", json=old, headers=auth(token))
    clock.advance(8 * 86400)
    client.post("/api/v1/results", json=make_batch("db1.example.net"), headers=auth(token))
    assert prune_job(client.app.state.runtime) == 1
    with client.app.state.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Result)).scalar_one() == 1
    # the current state is kept
    assert len(client.get("/api/v1/hosts/db1.example.net").json()["checks"]) == 1


def test_streaming_body_over_the_limit_is_refused_without_content_length():
    async def body():
        for _ in range(20):
            yield b"x" * (1024 * 1024)

    with pytest.raises(PayloadTooLarge, match="1048576"):
        asyncio.run(read_capped(body(), content_length=None, limit=1024 * 1024))


def test_openapi_documents_the_push():
    from collector.app import create_app
    from collector.settings import Settings

    app = create_app(Settings.model_validate({"database": {"url": "sqlite:///unused.db"}}))
    schema = app.openapi()
    post = schema["paths"]["/api/v1/results"]["post"]
    assert "202" in post["responses"] and "413" in post["responses"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert "results" in body["properties"]


def test_retention_prunes_while_a_ticket_engine_pass_holds_its_lock(
    settings, enroll_host, start_collector, make_batch, clock
):
    # Every job has its own advisory lock on PostgreSQL: pruning is not skipped (nor the
    # engine kept waiting) because the other job runs.
    from collector.problems.engine import engine_transaction

    token = enroll_host(settings, "db1.example.net")
    client = start_collector(settings, clock)
    client.post("/api/v1/results", json=make_batch("db1.example.net"), headers=auth(token))
    clock.advance(8 * 86400)
    client.post("/api/v1/results", json=make_batch("db1.example.net"), headers=auth(token))
    with engine_transaction(client.app.state.engine) if settings.database_url.startswith(
            "postgresql") else contextlib.nullcontext():
        assert prune_job(client.app.state.runtime) == 1
