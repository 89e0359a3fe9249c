from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.config import CollectorSettings
from agent.sender import Outcome, Sender, TokenSource
from agent.spool import Spool
from agent.transport import ConnectError, ReadTimeout, Request, Response
from checks.config import Seconds
from checks.result import CheckResult, Status

Handler = Callable[[Request], Response]


def answer_json(status_code: int, body: dict[str, Any]) -> Response:
    return Response(status_code, headers={"Content-Type": "application/json"},
                    content=json.dumps(body).encode())


class Collector:
    """A stand-in collector, passed to the sender as its transport; records what it was sent."""

    def __init__(self, answer: Handler | None = None) -> None:
        self.requests: list[Request] = []
        self.batches: list[dict[str, Any]] = []
        self.answer = answer or (lambda request: self.stored(request))

    def __call__(self, request: Request) -> Response:
        self.requests.append(request)
        body = request.content
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.batches.append(json.loads(body))
        return self.answer(request)

    def stored(self, request: Request) -> Response:
        batch = self.batches[-1]
        return answer_json(202, {"batch_id": batch["batch_id"],
                                 "accepted": len(batch["results"]), "duplicate": False})

    @property
    def seqs(self) -> list[int]:
        return [r["seq"] for b in self.batches for r in b["results"]]


def settings(**overrides: Any) -> CollectorSettings:
    values: dict[str, Any] = {
        "url": "http://collector.test:8080/", "token": "t0k3n", "push_interval": Seconds(60),
        "backoff_initial": Seconds(0.01), "backoff_max": Seconds(0.05),
    }
    values.update(overrides)
    return CollectorSettings(**values)


def make_sender(spool: Spool, collector: Collector, **overrides: Any) -> Sender:
    return Sender(spool, settings(**overrides), host="db1.example.net", token=lambda: "t0k3n",
                  agent={"version": "0.1.0", "started_at": 1.0, "interval": 60.0},
                  transport=collector)


def fill(spool: Spool, count: int, status: Status = Status.OK) -> None:
    for i in range(count):
        spool.add(CheckResult("disk", f"/m{i}", status, f"/m{i} fine"), type_name="disk")


def test_202_acknowledges_and_empties_the_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    fill(spool, 5)
    collector = Collector()
    sender = make_sender(spool, collector)
    assert sender.push_pending() is True
    assert len(spool) == 0
    request = collector.requests[0]
    assert request.method == "POST"
    assert str(request.url) == "http://collector.test:8080/api/v1/results"
    assert request.headers["Authorization"] == "Bearer t0k3n"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Content-Encoding"] == "gzip"
    batch = collector.batches[0]
    assert set(batch) == {"batch_id", "host", "agent", "sent_at", "results"}
    assert batch["host"] == "db1.example.net"
    assert batch["agent"] == {"version": "0.1.0", "started_at": 1.0, "interval": 60.0}
    first = batch["results"][0]
    assert set(first) == {"id", "seq", "type", "check", "target", "status", "summary", "metrics",
                          "details", "produced_at", "duration", "status_changed"}
    assert collector.seqs == [1, 2, 3, 4, 5]
    assert sender.stats.pushes_ok_total == 1 and sender.stats.last_push_ok_at is not None


def test_batches_are_bounded_and_pushed_until_empty(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    fill(spool, 7)
    collector = Collector()
    sender = make_sender(spool, collector, batch_max_results=3, gzip=False)
    assert sender.push_pending()
    assert [len(b["results"]) for b in collector.batches] == [3, 3, 1]
    assert "Content-Encoding" not in collector.requests[0].headers
    assert collector.seqs == list(range(1, 8))


@pytest.mark.parametrize(
    "failure",
    [
        lambda request: answer_json(503, {"error": "store unavailable"}),
        lambda request: Response(429, headers={"Retry-After": "0"}),
        lambda request: Response(408),
        "connect",
        "timeout",
    ],
    ids=["503", "429", "408", "connection-refused", "read-timeout"],
)
def test_failures_keep_results_and_resend_the_same_batch_id(
    tmp_path: Path, failure: Handler | str
) -> None:
    spool = Spool(tmp_path)
    fill(spool, 3)
    answers: list[Handler | str] = [failure, failure]
    collector = Collector()

    def answer(request: Request) -> Response:
        current = answers.pop(0) if answers else None
        if current == "connect":
            raise ConnectError("connection refused")
        if current == "timeout":
            raise ReadTimeout("timed out")
        if callable(current):
            return current(request)
        return collector.stored(request)

    collector.answer = answer
    sender = make_sender(spool, collector)
    assert sender.push_once() is Outcome.RETRY
    assert sender.push_pending() is False
    assert len(spool) == 3 and sender.stats.send_failures_total == 2
    assert sender.push_pending() is True
    assert len(spool) == 0
    assert len({b["batch_id"] for b in collector.batches}) == 1
    assert sender.stats.send_failures_total == 2


def test_backoff_grows_exponentially_with_full_jitter_within_bounds(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    fill(spool, 1)
    collector = Collector(lambda request: Response(502))
    draws: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        draws.append((low, high))
        return high

    sender = Sender(spool, settings(backoff_initial=Seconds(1), backoff_max=Seconds(10)),
                    host="h", token=lambda: "t", agent={}, uniform=uniform,
                    transport=collector)
    delays = []
    for _ in range(6):
        sender.push_once()
        delays.append(sender.next_backoff())
    assert delays == [1, 2, 4, 8, 10, 10]
    assert all(low == 1 for low, _ in draws)


def test_a_status_change_is_pushed_at_once_and_routine_results_wait(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    collector = Collector()
    sender = make_sender(spool, collector)  # push_interval 60 s
    thread = threading.Thread(target=sender.run, kwargs={"final_push_budget": 2.0})
    thread.start()
    try:
        time.sleep(0.2)
        spool.add(CheckResult("disk", "/", Status.OK, "fine"), type_name="disk")  # first: change
        deadline = time.monotonic() + 2
        while len(spool) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(spool) == 0, "a status change waited for the push interval"
        spool.add(CheckResult("disk", "/", Status.OK, "fine"), type_name="disk")  # routine
        time.sleep(0.3)
        assert len(spool) == 1
        spool.add(CheckResult("disk", "/", Status.CRITICAL, "full"), type_name="disk")
        deadline = time.monotonic() + 2
        while len(spool) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(spool) == 0
        spool.add(CheckResult("disk", "/", Status.CRITICAL, "full"), type_name="disk")  # routine
    finally:
        sender.stop()
        thread.join(5)
    assert len(spool) == 0, "the last push on stop did not send the routine result"
    assert len(collector.seqs) == 4 and collector.seqs == sorted(collector.seqs)


def test_a_refused_batch_is_split_and_a_refused_result_quarantined(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path)
    fill(spool, 3)
    spool.add(CheckResult("disk", "/poison", Status.OK, "bad"), type_name="disk")
    fill(spool, 3)

    def answer(request: Request) -> Response:
        results = collector.batches[-1]["results"]
        if any(r["target"] == "/poison" for r in results):
            return answer_json(422, {"error": "invalid batch",
                                     "detail": "results[0].target: not allowed"})
        return collector.stored(request)

    collector = Collector(answer)
    sender = make_sender(spool, collector)
    with caplog.at_level(logging.ERROR, logger="agent.sender"):
        assert sender.push_pending() is True
    assert len(spool) == 0
    delivered = {r["target"] for b in collector.batches[1:] for r in b["results"]
                 if r["target"] != "/poison"}
    assert delivered == {"/m0", "/m1", "/m2"}
    assert sorted(set(collector.seqs) - {4}) == [1, 2, 3, 5, 6, 7]
    rejected = spool.rejected()
    assert [r["result"]["target"] for r in rejected] == ["/poison"]
    assert rejected[0]["http_status"] == 422
    assert "results[0].target: not allowed" in rejected[0]["reason"]
    assert spool.stats().rejected_total == 1 and sender.stats.rejected_total == 1
    assert "results[0].target: not allowed" in caplog.text and "/poison" in caplog.text


def test_too_large_batches_are_split_until_they_fit(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    fill(spool, 8)

    def answer(request: Request) -> Response:
        if len(collector.batches[-1]["results"]) > 2:
            return answer_json(413, {"error": "body too large",
                                     "detail": "limit 1048576 bytes"})
        return collector.stored(request)

    collector = Collector(answer)
    sender = make_sender(spool, collector)
    assert sender.push_pending() is True
    stored = [r["seq"] for b in collector.batches if len(b["results"]) <= 2
              for r in b["results"]]
    assert sorted(stored) == list(range(1, 9))
    assert spool.stats().rejected_total == 0


def test_401_logs_the_collector_error_and_keeps_results(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path)
    fill(spool, 2)
    collector = Collector(lambda request: answer_json(
        401, {"error": "unauthorized", "detail": "unknown host token"}))
    sender = make_sender(spool, collector)
    with caplog.at_level(logging.ERROR, logger="agent.sender"):
        assert sender.push_pending() is False
    assert len(spool) == 2
    assert "HTTP 401" in caplog.text and "unauthorized: unknown host token" in caplog.text
    assert sender.stats.send_failures_total == 1


def test_token_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    token = TokenSource(token_file=str(token_file))
    assert token() == "first"
    token_file.write_text("second-token\n")
    assert token() == "second-token"
    token_file.unlink()
    assert token() == "second-token"  # keeps the last good one
