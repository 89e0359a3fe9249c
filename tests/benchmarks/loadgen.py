"""A small HTTP/1.1 load generator for the ingest benchmark.

Written on raw asyncio streams rather than httpx: on a two-core machine an httpx client
saturates its own core long before the collector does, and the benchmark would then
measure the client. Requests are pre-rendered bytes with fresh ids spliced in.

Two modes:
- closed loop (``rate=None``): each connection sends its next request as soon as the
  previous answer arrived; measures the highest sustained throughput;
- open loop (``rate=R``): request i is due at ``start + i / R`` whatever happened before;
  latency is measured from the due time, so a stalled server is charged for the queue it
  causes (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    """What one load run measured."""

    mode: str
    duration: float
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    results_per_push: int = 0

    @property
    def pushes_per_second(self) -> float:
        return self.ok / self.duration if self.duration else 0.0

    @property
    def results_per_second(self) -> float:
        return self.pushes_per_second * self.results_per_push

    def percentile(self, p: float) -> float:
        """Latency percentile in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index] * 1000

    def summary(self) -> dict[str, float | int | str | dict[str, int]]:
        return {
            "mode": self.mode,
            "pushes": self.ok,
            "errors": self.errors,
            "pushes_per_s": round(self.pushes_per_second, 1),
            "results_per_s": round(self.results_per_second, 1),
            "p50_ms": round(self.percentile(50), 2),
            "p99_ms": round(self.percentile(99), 2),
            "mean_ms": round(statistics.fmean(self.latencies) * 1000, 2) if self.latencies else 0,
        }


def batch_body(host: str, results: int, now: float) -> bytes:
    """A push of ``results`` disk-like results for ``host``, as an agent sends it."""
    items = []
    for i in range(results):
        items.append(
            {
                "id": str(uuid.uuid4()),
                "seq": i + 1,
                "type": "disk",
                "check": "disk",
                "target": f"/srv/vol{i:02d}",
                "status": 0 if i % 5 else 1,
                "summary": f"/srv/vol{i:02d} 71.2% used (28.8 GiB free of 100 GiB)",
                "metrics": [
                    {"name": "used_pct", "value": 71.2, "unit": "%", "warn": 85, "crit": 95},
                    {"name": "free_bytes", "value": 30923764531, "unit": "B"},
                    {"name": "inodes_used_pct", "value": 3.1, "unit": "%"},
                ],
                "details": {"device": f"/dev/vdb{i}", "fstype": "ext4", "condition": "ok"},
                "produced_at": now,
                "duration": 0.003,
                "status_changed": False,
            }
        )
    batch = {
        "batch_id": str(uuid.uuid4()),
        "host": host,
        "agent": {"version": "0.1.0", "started_at": now - 3600, "interval": 60.0},
        "sent_at": now,
        "results": items,
    }
    return json.dumps(batch).encode()


class RequestFactory:
    """Renders complete HTTP requests for a pool of (host, token) pairs, round robin.

    Each host's request is rendered once as a template; a request then only costs fresh
    ids, a sequence number and a timestamp spliced in, so the client stays cheap.
    """

    def __init__(self, hosts: list[tuple[str, str]], results: int, address: str) -> None:
        self.hosts = hosts
        self.results = results
        self._next = 0
        self._seq = 0
        self._templates = [self._template(host, token, address) for host, token in hosts]

    _ID, _SEQ, _NOW = b'"@ID@"', b"-111111", b"-222222"

    def _template(self, host: str, token: str, address: str) -> tuple[bytes, list[bytes]]:
        body = json.loads(batch_body(host, self.results, 0.0))
        body["batch_id"] = "@ID@"
        body["sent_at"] = -222222
        for item in body["results"]:
            item["id"] = "@ID@"
            item["seq"] = -111111
            item["produced_at"] = -222222
        text = json.dumps(body).encode()
        # Split around the markers, keeping them, so rendering is one join.
        pieces = re.split(b"(" + b"|".join(map(re.escape, (self._ID, self._SEQ, self._NOW)))
                          + b")", text)
        head = (
            f"POST /api/v1/results HTTP/1.1\r\nHost: {address}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            "Content-Length: "
        ).encode()
        return head, pieces

    def __call__(self) -> bytes:
        head, pieces = self._templates[self._next % len(self._templates)]
        self._next += 1
        now = repr(time.time()).encode()
        # One read of the random source for every id of the request (ids are 32 hex digits).
        ids = os.urandom(16 * (self.results + 1)).hex().encode()
        taken = 0
        out = []
        for piece in pieces:
            if piece == self._ID:
                out.append(b'"' + ids[taken : taken + 32] + b'"')
                taken += 32
            elif piece == self._SEQ:
                self._seq += 1
                out.append(str(self._seq).encode())
            elif piece == self._NOW:
                out.append(now)
            else:
                out.append(piece)
        body = b"".join(out)
        return head + str(len(body)).encode() + b"\r\n\r\n" + body


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def _connect(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port)


async def run_load(
    host: str,
    port: int,
    make_request: Callable[[], bytes],
    *,
    duration: float,
    connections: int,
    rate: float | None = None,
    results_per_push: int = 12,
) -> LoadResult:
    """Drive the server for ``duration`` seconds; see the module docstring for the modes."""
    mode = "closed" if rate is None else f"open@{rate:g}/s"
    result = LoadResult(mode, duration, results_per_push=results_per_push)
    queue: asyncio.Queue[float] = asyncio.Queue()
    start = time.perf_counter()
    end = start + duration

    def record(status: int, due: float) -> None:
        if status == 202:
            result.ok += 1
            result.latencies.append(time.perf_counter() - due)
        else:
            result.errors[str(status)] = result.errors.get(str(status), 0) + 1

    async def worker() -> None:
        reader, writer = await _connect(host, port)
        try:
            while True:
                if rate is None:
                    if time.perf_counter() >= end:
                        return
                    due = time.perf_counter()
                else:
                    due = await queue.get()
                    if due < 0:
                        return
                request = make_request()
                result.sent += 1
                try:
                    record(await _exchange(reader, writer, request), due)
                except (ConnectionError, asyncio.IncompleteReadError) as err:
                    result.errors[type(err).__name__] = result.errors.get(type(err).__name__, 0) + 1
                    writer.close()
                    reader, writer = await _connect(host, port)
        finally:
            writer.close()

    async def dispatcher() -> None:
        assert rate is not None
        i = 0
        while True:
            due = start + i / rate
            if due >= end:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait(due)
            i += 1
        for _ in range(connections):
            queue.put_nowait(-1.0)

    tasks = [asyncio.create_task(worker()) for _ in range(connections)]
    if rate is not None:
        tasks.append(asyncio.create_task(dispatcher()))
    await asyncio.gather(*tasks)
    # Until the last answer: a server that fell behind is charged for the backlog.
    result.duration = time.perf_counter() - start
    return result
