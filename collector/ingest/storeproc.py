"""The store process: committing pushes beside the HTTP process, not in it.

Python runs one thread at a time per process. With the store in a thread of the HTTP
process, the event loop and the database work take turns on one core, and every return
from SQLite waits for the loop to let go (measured: the writer thread spent half of each
transaction waiting for its turn, and ingest topped out where both together filled one
core). In a process of its own the store runs on another core, and the HTTP process only
authenticates, validates and passes the batch on.

The two talk over the child's stdin and stdout in length-prefixed pickle frames. The
collector sends the settings and the child answers "ready" (or why it could not start).
Then the collector streams validated batches (PendingBatch: rows ready to insert) as
they arrive, each with a sequence number, without waiting for answers. The child does
the group commit: whenever it is free it takes every batch that has arrived (up to
``ingest.max_group_batches``), commits them in one transaction, and sends back the
outcome of each by its number. No thread and no lock in either process; the event loop
reads the answers.

If the child dies, every push it had not answered is answered 503 (agents resend; a batch
that was in fact committed is then recognised as a duplicate) and a new child is started;
pushes are refused with 503 until it is ready. The child ignores SIGINT and SIGTERM, so
a collector shutting down can still store what is in flight, and exits when its stdin
closes, which also happens when the collector is killed.

    python -m collector.ingest.storeproc   (started by the collector, not by hand)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import pickle
import select
import signal
import sys
from collections import deque
from pathlib import Path
from typing import IO, Any

from collector.errors import StoreUnavailable
from collector.ingest.service import PendingBatch, StoreOutcome
from collector.ingest.store import GroupReport
from collector.ingest.writer import GroupObserver, answer, observe
from collector.settings import Settings

log = logging.getLogger(__name__)

_LENGTH = 8
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
RESTART_DELAY = 1.0

Numbered = tuple[int, PendingBatch]
Reply = tuple[list[int], GroupReport]
"""The child's answer to a group: the push numbers, and the report in the same order."""


def frame(message: object) -> bytes:
    """One message: its length, then its pickle."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(_LENGTH, "big") + data


class ProcessWriter:
    """The collector's side: start the store process, stream batches to it, read answers."""

    def __init__(
        self, settings: Settings, *, observer: GroupObserver | None = None
    ) -> None:
        self._settings = settings
        self._observer = observer
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._restart: asyncio.Task[None] | None = None
        self._numbers = itertools.count()
        self._waiting: dict[int, asyncio.Future[StoreOutcome]] = {}
        self._outbox: list[Numbered] = []
        self._closed = True

    @property
    def pid(self) -> int | None:
        """The store process's id while it runs (for tests and diagnostics)."""
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        """Start the store process and wait until it is ready."""
        await self._spawn()
        self._closed = False

    async def stop(self) -> None:
        """Answer what is in flight, then let the store process exit."""
        self._closed = True
        if self._restart is not None:
            self._restart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._restart
        if self._waiting:
            _, late = await asyncio.wait(list(self._waiting.values()), timeout=STOP_TIMEOUT)
            if late:
                log.error("%d pushes still not answered after %gs; stopping the store anyway",
                          len(late), STOP_TIMEOUT)
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            log.error("the store process did not exit within %gs; killing it", STOP_TIMEOUT)
            proc.kill()
            await proc.wait()
        if self._reader is not None:
            await self._reader

    async def submit(self, pending: PendingBatch) -> StoreOutcome:
        """Send a validated batch to the store process and wait for its outcome."""
        if self._closed:
            raise StoreUnavailable("the collector is shutting down")
        if self._proc is None:
            raise StoreUnavailable("the store process is restarting")
        number = next(self._numbers)
        future: asyncio.Future[StoreOutcome] = asyncio.get_running_loop().create_future()
        self._waiting[number] = future
        if not self._outbox:
            # one write per turn of the loop, however many pushes arrived in it
            asyncio.get_running_loop().call_soon(self._send)
        self._outbox.append((number, pending))
        return await future

    def _send(self) -> None:
        outbox, self._outbox = self._outbox, []
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            self._fail([n for n, _ in outbox], "the store process is not running")
            return
        proc.stdin.write(frame(outbox))

    async def _spawn(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "collector.ingest.storeproc",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(frame(self._settings))
        try:
            ready = await asyncio.wait_for(_read(proc.stdout), START_TIMEOUT)
        except (asyncio.IncompleteReadError, TimeoutError) as exc:
            ready = f"no answer ({type(exc).__name__})"
        if ready != "ready":
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise StoreUnavailable(f"the store process did not start: {ready}")
        log.info("store process %d started", proc.pid)
        self._proc = proc
        self._reader = asyncio.get_running_loop().create_task(self._read_answers(proc))

    async def _read_answers(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while True:
                numbers, report = await _read(proc.stdout)
                observe(report, self._observer)
                for number, outcome in zip(numbers, report.outcomes, strict=True):
                    future = self._waiting.pop(number, None)
                    if future is not None:
                        answer(future, outcome)
        except asyncio.IncompleteReadError:
            pass  # the child exited: closed by stop(), or died
        except Exception:  # an answer that cannot be read: the child is not to be trusted
            log.exception("unreadable answer from the store process %d; stopping it", proc.pid)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        if self._proc is proc:  # died while in service
            self._proc = None
            code = await proc.wait()
            log.error("the store process exited with %s; starting a new one", code)
            self._restart = asyncio.get_running_loop().create_task(self._respawn())
        self._fail(list(self._waiting), "the store process exited before answering")

    async def _respawn(self) -> None:
        while not self._closed:
            await asyncio.sleep(RESTART_DELAY)
            try:
                await self._spawn()
                return
            except StoreUnavailable as exc:
                log.error("%s; trying again", exc)

    def _fail(self, numbers: list[int], why: str) -> None:
        for number in numbers:
            future = self._waiting.pop(number, None)
            if future is not None:
                answer(future, StoreUnavailable(why))


async def _read(stream: asyncio.StreamReader) -> Any:
    size = int.from_bytes(await stream.readexactly(_LENGTH), "big")
    return pickle.loads(await stream.readexactly(size))  # noqa: S301 - our own child


class FrameReader:
    """The child's stdin as whole messages: blocking for the first, then what is there."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()
        self.eof = False

    def read(self, *, block: bool) -> list[Any]:
        """Every complete message available; with ``block``, wait for at least one."""
        while True:
            messages = self._complete()
            if messages or self.eof:
                return messages
            if not block and not select.select([self._fd], [], [], 0)[0]:
                return []
            chunk = os.read(self._fd, 1 << 20)
            if not chunk:
                self.eof = True
            self._buffer += chunk

    def _complete(self) -> list[Any]:
        messages = []
        at = 0
        buffer = self._buffer
        while len(buffer) - at >= _LENGTH:
            size = int.from_bytes(buffer[at : at + _LENGTH], "big")
            if len(buffer) - at - _LENGTH < size:
                break
            start = at + _LENGTH
            messages.append(pickle.loads(buffer[start : start + size]))  # noqa: S301
            at = start + size
        if at:
            del buffer[:at]
        return messages


def serve(inp: FrameReader, out: IO[bytes]) -> int:
    """The child: open the store, then commit what arrives until stdin closes."""
    from collector.db import create_db_engine
    from collector.ingest.store import GroupStore

    [settings] = inp.read(block=True) or [None]
    if not isinstance(settings, Settings):
        return 2
    try:
        # Not connected yet: a database that is down answers pushes with 503 (and
        # /healthz says so) until it is back, as in the collector's own process.
        engine = create_db_engine(settings)
    except Exception as exc:  # told to the collector, which does not start
        out.write(frame(f"{type(exc).__name__}: {exc}"))
        out.flush()
        return 1
    store = GroupStore(engine)
    max_group = settings.ingest.max_group_batches
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    out.write(frame("ready"))
    out.flush()
    queue: deque[Numbered] = deque()
    try:
        while True:
            for message in inp.read(block=not queue):
                queue.extend(message)
            if not queue:
                return 0  # stdin closed and everything answered
            group = [queue.popleft() for _ in range(min(max_group, len(queue)))]
            report = store.store([pending for _, pending in group])
            reply: Reply = ([number for number, _ in group], report)
            out.write(frame(reply))
            out.flush()
    finally:
        engine.dispose()


def main() -> int:
    """Entry point of the child process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Frames go to the original stdout; anything printed by accident goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s:     store process: %(message)s")
    return serve(FrameReader(sys.stdin.fileno()), out)


if __name__ == "__main__":
    sys.exit(main())
