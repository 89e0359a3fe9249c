"""Pushes spooled results to the collector (docs/protocol.md) and deletes them on 202.

Every ``push_interval``, or at once when the spool signals a status change, the sender
takes a batch and POSTs it to ``{url}/api/v1/results``; on 202 it acknowledges the batch
and goes on while more is queued. Results leave the spool only on 202.

- Connection errors, timeouts, 408, 429 and 5xx: the batch stays spooled under its
  ``batch_id`` and is sent again after an exponential backoff with full jitter, drawn
  between ``backoff_initial`` and ``min(backoff_max, backoff_initial * 2**failures)``
  (a ``Retry-After`` of 429/503 is honoured up to ``backoff_max``).
- 413 and 422 mean the collector will never take this batch as it is. A batch of several
  results is split in halves (older half first) and the halves are sent on; the number
  of results per batch is halved too and grows back after successes. A single result
  still refused is moved to the spool's ``rejected`` table, counted and logged with the
  collector's answer; it is not retried and not lost silently.
- Other 4xx (401, 403, ...): the collector's error body is logged, the results stay and
  the push is retried with backoff (a fixed token file is picked up without a restart).
"""

from __future__ import annotations

import enum
import json
import logging
import os
import random
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import __version__
from agent.config import CollectorSettings
from agent.spool import Batch, Spool
from agent.transport import Client, Response, Timeout, Transport, TransportError, tls_context

log = logging.getLogger(__name__)

RESULTS_PATH = "/api/v1/results"
MAX_BATCH_BYTES = 900_000
"""Uncompressed payload bytes per batch; the collector's default limit is 1 MiB."""


class Outcome(enum.Enum):
    """What became of one push attempt."""

    EMPTY = "nothing to send"
    STORED = "stored"
    RETRY = "retry later"
    REFUSED = "refused, handled"


class TokenSource:
    """The bearer token: inline, or read from a file and read again when the file changes."""

    def __init__(self, token: str | None = None, token_file: str | None = None) -> None:
        if token is None and token_file is None:
            raise ValueError("a token or a token file is needed")
        self._token = token.strip() if token else ""
        self._file = Path(token_file) if token_file else None
        self._stamp: tuple[int, int] | None = None

    def __call__(self) -> str:
        """The current token (the last good one if the file went missing)."""
        if self._file is None:
            return self._token
        try:
            st = os.stat(self._file)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp != self._stamp:
                token = self._file.read_text(encoding="utf-8").strip()
                if token:
                    if self._stamp is not None:
                        log.info("token file %s changed; using the new token", self._file)
                    self._token = token
                else:
                    log.error("token file %s is empty; keeping the previous token", self._file)
                self._stamp = stamp
        except OSError as err:
            log.error("cannot read token file %s: %s", self._file, err)
        return self._token


@dataclass
class SenderStats:
    """Counters for the agent self-check."""

    send_failures_total: int = 0
    pushes_ok_total: int = 0
    results_sent_total: int = 0
    rejected_total: int = 0
    last_push_ok_at: float | None = None
    last_error: str | None = None


def make_client(settings: CollectorSettings, transport: Transport | None = None) -> Client:
    """The collector's HTTP client with explicit timeouts and TLS verification as
    configured, unless a transport is given (tests)."""
    context = None
    if transport is None:
        if not settings.verify_tls:
            log.warning("TLS verification of the collector is switched off (verify_tls = false)")
        # A TLS context (and its trust store) only for an https collector: it costs memory.
        if (settings.url or "").startswith("https:"):
            context = tls_context(verify=settings.verify_tls, ca_file=settings.ca_file,
                                  client_cert_file=settings.client_cert_file,
                                  client_key_file=settings.client_key_file)
    return Client(
        timeout=Timeout(connect=min(settings.timeout, 10.0), read=settings.timeout),
        headers={"User-Agent": f"watchkeeper-agent/{__version__}"},
        ssl_context=context,
        transport=transport,
    )


class Sender:
    """The push loop: one thread, one connection, results leave the spool only on 202."""

    def __init__(
        self,
        spool: Spool,
        settings: CollectorSettings,
        *,
        host: str,
        token: Callable[[], str],
        agent: Mapping[str, Any],
        transport: Transport | None = None,
        clock: Callable[[], float] = time.time,
        uniform: Callable[[float, float], float] = random.uniform,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        if settings.url is None:
            raise ValueError("the collector URL is not configured")
        self._spool = spool
        self._settings = settings
        self._url = settings.url.rstrip("/") + RESULTS_PATH
        self._host = host
        self._token = token
        self._agent = dict(agent)
        self._client = make_client(settings, transport)
        self._clock = clock
        self._uniform = uniform
        self._max_batch_bytes = max_batch_bytes
        self._batch_limit = settings.batch_max_results
        self._failures = 0
        self._retry_after: float | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.stats = SenderStats()

    # -- the loop --------------------------------------------------------------------------

    def run(self, final_push_budget: float = 5.0) -> None:
        """Push until ``stop()``, then try once more briefly to empty the spool."""
        while not self._stop.is_set():
            # Cleared before pushing, so a change that arrives during the push is not lost.
            self._spool.status_changed.clear()
            if self.push_pending():
                # Wait for the next interval; a status change cuts the wait short.
                self._spool.status_changed.wait(self._settings.push_interval)
            else:
                self._stop.wait(self.next_backoff())
        if final_push_budget > 0 and len(self._spool):
            log.info("stopping: last push of %d spooled results", len(self._spool))
            try:
                self.push_pending(deadline=time.monotonic() + final_push_budget,
                                  timeout=final_push_budget)
            except Exception:  # shutting down: what is left stays in the spool
                log.exception("last push failed; results stay in the spool")

    def stop(self) -> None:
        """Make ``run`` return after its current request (and the last push)."""
        self._stop.set()
        self._spool.status_changed.set()

    def close(self) -> None:
        """Close the HTTP connection."""
        self._client.close()

    def next_backoff(self) -> float:
        """Seconds to wait after the latest failure: full jitter, floor ``backoff_initial``."""
        initial, ceiling = self._settings.backoff_initial, self._settings.backoff_max
        cap = min(ceiling, initial * 2 ** min(self._failures - 1, 60))
        delay = self._uniform(initial, max(initial, cap))
        if self._retry_after is not None:
            delay = max(delay, min(self._retry_after, ceiling))
        return delay

    def push_pending(self, deadline: float | None = None, timeout: float | None = None) -> bool:
        """Push batches until the spool is empty (True) or a push must wait (False)."""
        while not (deadline is not None and time.monotonic() >= deadline):
            outcome = self.push_once(timeout=timeout)
            if outcome is Outcome.EMPTY:
                return True
            if outcome is Outcome.RETRY:
                return False
        return len(self._spool) == 0

    def push_once(self, timeout: float | None = None) -> Outcome:
        """Take one batch (the pending one first) and send it."""
        batch = self._spool.take_batch(self._batch_limit, self._max_batch_bytes)
        if batch is None:
            return Outcome.EMPTY
        body = self._body(batch)
        headers = {
            "Authorization": f"Bearer {self._token()}",
            "Content-Type": "application/json",
        }
        if self._settings.gzip:
            # A gzip member from zlib itself: the gzip module (and _compression) is 0.1-0.4 MB
            # the agent would carry for this one call.
            body = zlib.compress(body, 6, wbits=31)
            headers["Content-Encoding"] = "gzip"
        try:
            response = self._client.post(self._url, content=body, headers=headers,
                                         timeout=timeout)
        except TransportError as err:
            return self._failed(batch, f"{type(err).__name__}: {err or 'no detail'}")
        return self._answered(batch, response)

    # -- internals -------------------------------------------------------------------------

    def _body(self, batch: Batch) -> bytes:
        envelope = {
            "batch_id": batch.batch_id,
            "host": self._host,
            "agent": self._agent,
            "sent_at": self._clock(),
            "results": list(batch.results),
        }
        return json.dumps(envelope, separators=(",", ":")).encode()

    def _answered(self, batch: Batch, response: Response) -> Outcome:
        code = response.status_code
        if code == 202:
            self._spool.ack(batch.batch_id)
            with self._lock:
                self._failures = 0
                self._retry_after = None
                self._batch_limit = min(self._settings.batch_max_results, self._batch_limit * 2)
                self.stats.pushes_ok_total += 1
                self.stats.results_sent_total += len(batch.results)
                self.stats.last_push_ok_at = self._clock()
                self.stats.last_error = None
            if _json(response).get("duplicate"):
                log.info("batch %s was already stored (resend after a lost answer)",
                         batch.batch_id)
            log.debug("pushed batch %s: %d results", batch.batch_id, len(batch.results))
            return Outcome.STORED
        error = _error_text(response)
        if code in (413, 422):
            return self._refused(batch, code, error)
        if code in (408, 429) or code >= 500:
            self._retry_after = _retry_after(response) if code in (429, 503) else None
            return self._failed(batch, f"HTTP {code}: {error}")
        level = logging.ERROR if 400 <= code < 500 else logging.WARNING
        log.log(level, "collector refused the push (HTTP %d): %s; results stay spooled, "
                "retrying with backoff", code, error)
        return self._failed(batch, f"HTTP {code}: {error}", logged=True)

    def _failed(self, batch: Batch, reason: str, logged: bool = False) -> Outcome:
        with self._lock:
            self._failures += 1
            self.stats.send_failures_total += 1
            self.stats.last_error = reason
        if not logged:
            log.warning("push of batch %s (%d results) failed: %s; %d results stay spooled",
                        batch.batch_id, len(batch.results), reason, len(self._spool))
        return Outcome.RETRY

    def _refused(self, batch: Batch, code: int, error: str) -> Outcome:
        with self._lock:
            self.stats.send_failures_total += 1
            self.stats.last_error = f"HTTP {code}: {error}"
            self._batch_limit = max(1, len(batch.results) // 2)
        if self._spool.split(batch.batch_id):
            log.warning("collector refused batch %s of %d results (HTTP %d: %s); sending it "
                        "in halves", batch.batch_id, len(batch.results), code, error)
            return Outcome.REFUSED
        moved = self._spool.reject(batch.batch_id, http_status=code, reason=error)
        with self._lock:
            self.stats.rejected_total += moved
        result = batch.results[0] if batch.results else {}
        log.error("collector refused result seq=%s (%s %s) for good (HTTP %d: %s); moved to "
                  "the spool's rejected table", result.get("seq"), result.get("check"),
                  result.get("target"), code, error)
        return Outcome.REFUSED


def _json(response: Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _error_text(response: Response) -> str:
    data = _json(response)
    if data:
        parts = [str(data[k]) for k in ("error", "detail") if data.get(k)]
        if parts:
            return ": ".join(parts)[:1000]
        return json.dumps(data)[:1000]
    return (response.text or response.reason_phrase)[:1000]


def _retry_after(response: Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
