"""The push endpoint through the real ASGI app, on SQLite and on PostgreSQL."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

from sqlalchemy import func, select

from collector.db import create_db_engine
from collector.ingest.models import Result
from collector.settings import Settings


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def count_rows(settings: Settings, model: Any) -> int:
    engine = create_db_engine(settings)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(model)).scalar_one())
    finally:
        engine.dispose()


def test_push_is_stored_and_visible(settings, enroll_host, start_collector, make_batch, result):
    token = enroll_host(settings, "db1.example.net", customer="acme")
    client = start_collector(settings)
    batch = make_batch("db1.example.net", [
        result("disk", "/var", 1, "/var 91.2% used"),
        result("disk", "/", 0, "/ 20% used"),
    ])
    answer = client.post("/api/v1/results", json=batch, headers=auth(token))
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"batch_id": batch["batch_id"], "accepted": 2, "duplicate": False}

    hosts = client.get("/api/v1/hosts").json()
    assert [(h["fqdn"], h["customer"], h["worst_status_name"]) for h in hosts] == [
        ("db1.example.net", "acme", "WARNING")
    ]
    assert hosts[0]["counts"] == {"OK": 1, "WARNING": 1, "CRITICAL": 0, "UNKNOWN": 0}
    assert hosts[0]["agent_version"] == "0.1.0"
    assert hosts[0]["last_seen_at"].endswith("Z")
    assert hosts[0]["silent"] is False

    detail = client.get("/api/v1/hosts/db1.example.net").json()
    checks = {(c["check"], c["target"]): c for c in detail["checks"]}
    assert checks[("disk", "/var")]["status"] == 1
    assert checks[("disk", "/var")]["summary"] == "/var 91.2% used"
    assert checks[("disk", "/var")]["metrics"][0]["name"] == "used_pct"
    assert checks[("disk", "/var")]["details"] == {"device": "/dev/vda2"}
    assert detail["expected_interval"] == 60.0

    problems = client.get("/api/v1/problems").json()
    assert [(p["host"], p["target"], p["status_name"]) for p in problems] == [
        ("db1.example.net", "/var", "WARNING")
    ]
    assert client.get("/api/v1/hosts/nope.example.net").status_code == 404


def test_resend_of_same_batch_is_stored_once(settings, enroll_host, start_collector, make_batch):
    token = enroll_host(settings, "db1.example.net")
    client = start_collector(settings)
    batch = make_batch("db1.example.net")
    first = client.post("/api/v1/results", json=batch, headers=auth(token))
    again = client.post("/api/v1/results", json=batch, headers=auth(token))
    assert first.status_code == again.status_code == 202
    assert first.json()["duplicate"] is False
    assert again.json() == {"batch_id": batch["batch_id"], "accepted": 0, "duplicate": True}
    assert count_rows(settings, Result) == 1


def test_result_id_seen_before_is_not_stored_twice(
    settings, enroll_host, start_collector, make_batch, result
):
    token = enroll_host(settings, "db1.example.net")
    client = start_collector(settings)
    same, new = result(), result(target="/srv")
    answers = [
        client.post("/api/v1/results", json=make_batch("db1.example.net", results),
                    headers=auth(token)).json()
        for results in ([same], [same], [same, new])
    ]
    # The same result under a new batch id is a resend; a batch with something new is not.
    assert [(a["accepted"], a["duplicate"]) for a in answers] == [(1, False), (0, True),
                                                                   (1, False)]
    assert count_rows(settings, Result) == 2


def test_token_of_another_host_is_forbidden(
    settings, enroll_host, start_collector, make_batch
):
    token_a = enroll_host(settings, "a.example.net")
    enroll_host(settings, "b.example.net")
    client = start_collector(settings)
    answer = client.post("/api/v1/results", json=make_batch("b.example.net"),
                         headers=auth(token_a))
    assert answer.status_code == 403
    body = answer.json()
    assert body["error"] == "forbidden"
    assert "a.example.net" in body["detail"] and "b.example.net" in body["detail"]
    assert count_rows(settings, Result) == 0
    assert client.get("/api/v1/hosts/b.example.net").json()["last_seen_at"] is None


def test_missing_or_unknown_token_is_401(settings, enroll_host, start_collector, make_batch):
    enroll_host(settings, "db1.example.net")
    client = start_collector(settings)
    none = client.post("/api/v1/results", json=make_batch("db1.example.net"))
    wrong = client.post("/api/v1/results", json=make_batch("db1.example.net"),
                        headers=auth("not-a-token"))
    assert none.status_code == wrong.status_code == 401
    assert none.json()["error"] == "not_authenticated"
    assert count_rows(settings, Result) == 0


def test_malformed_batch_names_the_field(
    settings, enroll_host, start_collector, make_batch, result
):
    token = enroll_host(settings, "db1.example.net")
    client = start_collector(settings)
    batch = make_batch("db1.example.net", [result(), result(status=7)])
    answer = client.post("/api/v1/results", json=batch, headers=auth(token))
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("results.1.status:")

    missing = make_batch("db1.example.net")
    del missing["results"][0]["check"]
    answer = client.post("/api/v1/results", json=missing, headers=auth(token))
    assert answer.status_code == 422
    assert "results.0.check: Field required" in answer.json()["detail"]

    answer = client.post("/api/v1/results", content=b"{not json", headers=auth(token))
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_payload"
    assert count_rows(settings, Result) == 0


def test_reserved_check_name_is_refused(settings, enroll_host, start_collector, make_batch,
                                        result):
    token = enroll_host(settings, "db1.example.net")
    client = start_collector(settings)
    batch = make_batch("db1.example.net", [result(check="collector", target="silence")])
    answer = client.post("/api/v1/results", json=batch, headers=auth(token))
    assert answer.status_code == 422
    assert "results.0.check" in answer.json()["detail"]


def test_too_many_results_names_the_limit(
    settings, enroll_host, start_collector, make_batch, result
):
    token = enroll_host(settings, "db1.example.net")
    client = start_collector(settings)
    batch = make_batch("db1.example.net", [result(target=f"/t{i}") for i in range(501)])
    answer = client.post("/api/v1/results", json=batch, headers=auth(token))
    assert answer.status_code == 422
    assert "501" in answer.json()["detail"] and "500" in answer.json()["detail"]
    assert count_rows(settings, Result) == 0


def test_huge_body_is_413_and_others_are_still_served(
    settings, enroll_host, start_collector, make_batch
):
    token_a = enroll_host(settings, "a.example.net")
    token_b = enroll_host(settings, "b.example.net")
    client = start_collector(settings)
    huge = b'{"padding": "' + b"x" * (20 * 1024 * 1024) + b'"}'
    answer = client.post("/api/v1/results", content=huge, headers=auth(token_a))
    assert answer.status_code == 413
    assert "1048576" in answer.json()["detail"]

    ok = client.post("/api/v1/results", json=make_batch("b.example.net"), headers=auth(token_b))
    assert ok.status_code == 202


def test_gzip_body_is_accepted_and_a_gzip_bomb_is_413(
    settings, enroll_host, start_collector, make_batch
):
    token = enroll_host(settings, "db1.example.net")
    client = start_collector(settings)
    body = gzip.compress(json.dumps(make_batch("db1.example.net")).encode())
    headers = {**auth(token), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    assert client.post("/api/v1/results", content=body, headers=headers).status_code == 202

    bomb = gzip.compress(b" " * (64 * 1024 * 1024))
    assert len(bomb) < 1024 * 1024
    answer = client.post("/api/v1/results", content=bomb, headers=headers)
    assert answer.status_code == 413
    assert "after decompression" in answer.json()["detail"]

    answer = client.post("/api/v1/results", content=body,
                         headers={**headers, "Content-Encoding": "br"})
    assert answer.status_code == 415
    assert count_rows(settings, Result) == 1


def test_status_history_and_older_results(
    settings, enroll_host, start_collector, make_batch, result
):
    token = enroll_host(settings, "db1.example.net")
    client = start_collector(settings)
    t0 = time.time() - 600

    def push(*results: dict[str, Any]) -> None:
        answer = client.post("/api/v1/results", json=make_batch("db1.example.net", list(results)),
                             headers=auth(token))
        assert answer.status_code == 202, answer.text

    push(result(status=0, produced_at=t0, summary="fine"))
    push(result(status=0, produced_at=t0 + 60, summary="still fine"))
    push(result(status=2, produced_at=t0 + 120, summary="full"))
    push(result(status=0, produced_at=t0 + 180, summary="fine again"))
    # A late result from before the last one must not overwrite the newer state.
    push(result(status=2, produced_at=t0 + 150, summary="late and stale"))

    detail = client.get("/api/v1/hosts/db1.example.net").json()
    (state,) = detail["checks"]
    assert state["status"] == 0
    assert state["summary"] == "fine again"
    assert state["previous_status"] == 2
    assert state["last_change_at"] == _iso(t0 + 180)
    changes = [(c["from_status"], c["to_status"], c["summary"]) for c in detail["changes"]]
    assert changes == [(2, 0, "fine again"), (0, 2, "full"), (None, 0, "fine")]
    assert count_rows(settings, Result) == 5


def test_several_changes_within_one_batch_are_all_recorded(
    settings, enroll_host, start_collector, make_batch, result
):
    token = enroll_host(settings, "db1.example.net")
    client = start_collector(settings)
    t0 = time.time() - 600
    batch = make_batch("db1.example.net", [
        result(status=1, produced_at=t0 + 60), result(status=0, produced_at=t0),
        result(status=3, produced_at=t0 + 120),
    ])
    assert client.post("/api/v1/results", json=batch, headers=auth(token)).status_code == 202
    detail = client.get("/api/v1/hosts/db1.example.net").json()
    assert [(c["from_status"], c["to_status"]) for c in detail["changes"]] == [
        (1, 3), (0, 1), (None, 0)
    ]
    assert detail["checks"][0]["status_name"] == "UNKNOWN"


def _iso(ts: float) -> str:
    from collector.timefmt import iso

    return iso(ts)
