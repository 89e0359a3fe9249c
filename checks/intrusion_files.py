"""Reading a growing log once per line across rotations, and the journal, for ``intrusion``."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FINGERPRINT_BYTES = 64


@dataclass
class LogPosition:
    """Where the last run stopped: the file (device, inode), the offset and its last bytes."""

    device: int
    inode: int
    offset: int
    fingerprint: str
    """Hex of the up to 64 bytes before ``offset``: proves the file still holds them."""


def _fingerprint_at(handle: Any, offset: int) -> str:
    start = max(0, offset - FINGERPRINT_BYTES)
    handle.seek(start)
    return str(handle.read(offset - start).hex())


def _find_rotated(path: Path, position: LogPosition) -> Path | None:
    """The sibling that holds the file we were reading (renamed, or copied and truncated)."""
    try:
        siblings = sorted(p for p in path.parent.iterdir()
                          if p.name.startswith(path.name) and p != path
                          and not p.name.endswith((".gz", ".xz", ".bz2", ".zst")))
    except OSError:
        return None
    by_content: Path | None = None
    for sibling in siblings:
        try:
            st = sibling.stat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (position.device, position.inode):
            return sibling
        if by_content is None and st.st_size >= position.offset:
            try:
                with open(sibling, "rb") as handle:
                    if _fingerprint_at(handle, position.offset) == position.fingerprint:
                        by_content = sibling  # a copytruncate copy
            except OSError:
                continue
    return by_content


READ_BLOCK = 64 * 1024
MAX_LINE = 64 * 1024


class LogReader:
    """The new lines since ``position``, following rotation, read block by block.

    Iterate ``lines()`` once; afterwards ``position`` is where the next run starts (after
    the last whole line), ``backlog`` what is left beyond ``max_read``, ``notes`` what
    happened (rotations followed, lines possibly missed).
    """

    def __init__(self, path: Path, position: LogPosition | None, max_read: int) -> None:
        self.path = path
        self.previous = position
        self.max_read = max_read
        self.position: LogPosition | None = None
        self.backlog = 0
        self.bytes_read = 0
        self.notes: list[str] = []

    def lines(self) -> Iterator[bytes]:
        """Each new line once, without its newline; OSError when the log cannot be read."""
        position = self.previous
        budget = self.max_read
        with open(self.path, "rb") as handle:
            st = os.fstat(handle.fileno())
            start = 0
            if position is None:
                start = max(0, st.st_size - budget)
                if start:
                    self.notes.append(f"first run: read only the last {budget} bytes")
                    handle.seek(start - 1)
                    if handle.read(1) != b"\n":  # the tail starts inside a line: skip it
                        start += len(handle.readline(MAX_LINE))
            else:
                same_file = (st.st_dev, st.st_ino) == (position.device, position.inode)
                intact = same_file and st.st_size >= position.offset and (
                    _fingerprint_at(handle, position.offset) == position.fingerprint)
                if intact:
                    start = position.offset
                else:
                    rotated = _find_rotated(self.path, position)
                    if rotated is not None:
                        with open(rotated, "rb") as old:
                            old.seek(position.offset)
                            before = self.bytes_read
                            yield from self._read(old, budget, finished=True)
                        done = self.bytes_read - before
                        budget -= done
                        self.notes.append(f"finished the rotated {rotated.name} ({done} bytes)")
                    else:
                        what = "truncated" if same_file else "replaced"
                        self.notes.append(f"log {what}; the old file was not found beside it "
                                          "(compressed or removed): lines since the last run "
                                          "may be missed")
            handle.seek(start)
            before = self.bytes_read
            yield from self._read(handle, max(0, budget), finished=False)
            end = start + self.bytes_read - before
            self.backlog = max(0, st.st_size - end)
            self.position = LogPosition(st.st_dev, st.st_ino, end, _fingerprint_at(handle, end))

    def _read(self, handle: Any, budget: int, *, finished: bool) -> Iterator[bytes]:
        # A file still written to ends with the line being written: it is left for the
        # next run (not counted in bytes_read). A rotated file is finished to its end.
        pending = b""
        remaining = budget
        while remaining > 0:
            block = handle.read(min(READ_BLOCK, remaining))
            if not block:
                break
            remaining -= len(block)
            *complete, pending = (pending + block).split(b"\n")
            for line in complete:
                self.bytes_read += len(line) + 1
                yield line
            if len(pending) > MAX_LINE:  # no newline in sight: not a syslog line, move on
                self.bytes_read += len(pending)
                pending = b""
        if finished and pending:
            self.bytes_read += len(pending)
            yield pending


# ---------------------------------------------------------------------------- the journal

JOURNAL_TARGET = "journal"




def journal_argv(journalctl: str, units: Sequence[str], cursor: str, since: float,
                 extra: Sequence[str] = ()) -> list[str]:
    """``journalctl -u ssh -u sshd -o short-iso --show-cursor`` after the cursor or since."""
    argv = [journalctl, *extra]
    for unit in units:
        argv += ["-u", unit]
    argv += ["-o", "short-iso", "--no-pager", "--show-cursor"]
    argv += ["--after-cursor", cursor] if cursor else ["--since", f"@{int(since)}"]
    return argv


def split_journal_output(stdout: str) -> tuple[list[str], str]:
    """The entry lines and the cursor (``-- cursor: ...``, empty when none)."""
    lines: list[str] = []
    cursor = ""
    for line in stdout.splitlines():
        if line.startswith("-- cursor: "):
            cursor = line[len("-- cursor: "):].strip()
        elif line and not line.startswith("-- "):
            lines.append(line)
    return lines, cursor
