"""Integrity of one backup file, read in chunks that can pause and resume between runs.

A ``Verification`` pushes the file through a decoder chosen by its magic bytes (gzip, xz,
bzip2, or none), then through an inspector of the decoded bytes that walks tar headers
when the content is a tar archive and keeps the head and tail for dump completion lines.
``step`` stops when the run's time or byte budget is spent and continues from the same
offset, with the same decompressor state, on the next call, so a 50 GiB dump costs each
run only its budget. The compression modules are imported only when a file needs them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

READ_CHUNK = 1024 * 1024
"""Compressed bytes read at a time."""
OUTPUT_CHUNK = 1024 * 1024
"""Decompressed bytes produced at a time, so a highly compressible stream stays bounded."""
HEAD_BYTES = 1024
TAIL_BYTES = 4096
TAR_BLOCK = 512

DumpKind = Literal["auto", "none", "mysqldump", "pg_dump"]

# The last thing each dump tool writes when it finished; absent when it was cut short.
COMPLETION_MARKERS = {
    "mysqldump": b"-- Dump completed",
    "pg_dump": b"-- PostgreSQL database dump complete",
}
_DUMP_HEADERS = {
    "mysqldump": (b"-- MySQL dump", b"-- MariaDB dump"),
    "pg_dump": (b"-- PostgreSQL database dump",),
}


class Verdict(StrEnum):
    """What the integrity check found about the newest backup."""

    OK = "ok"
    CORRUPT = "corrupt"
    TRUNCATED = "truncated"
    NO_COMPLETION = "no_completion"
    EMPTY = "empty"
    """A whole container with nothing in it: a gzip of 0 bytes, a tar of no entries."""
    IN_PROGRESS = "in_progress"
    UNREADABLE = "unreadable"
    NOT_CHECKED = "not_checked"


@dataclass(frozen=True, slots=True)
class Integrity:
    """The outcome (or progress) of verifying one file."""

    verdict: Verdict
    format: str
    """What the file turned out to be: "gzip", "xz+tar", "plain", "mysqldump in gzip"."""
    detail: str = ""
    bytes_read: int = 0
    size: int = 0
    members: int | None = None
    """Entries of a tar archive (metadata headers excluded), once known."""

    def to_details(self) -> dict[str, Any]:
        """A JSON-able form for a result's ``details``."""
        out: dict[str, Any] = {
            "verdict": str(self.verdict),
            "format": self.format,
            "bytes_read": self.bytes_read,
        }
        if self.detail:
            out["detail"] = self.detail
        if self.members is not None:
            out["tar_members"] = self.members
        return out


class _Broken(Exception):
    """The content is damaged; ``verdict`` says how."""

    def __init__(self, verdict: Verdict, message: str) -> None:
        super().__init__(message)
        self.verdict = verdict
        self.message = message


# ---------------------------------------------------------------------------- decoders


class _Decoder:
    """Turns file bytes into content bytes; ``finish`` raises when the stream is cut."""

    name = "plain"

    def push(self, data: bytes) -> Iterator[bytes]:
        yield data

    def finish(self) -> None:
        return None


class _Decompressor(_Decoder):
    """gzip, xz or bzip2, with concatenated streams and trailing zero padding allowed."""

    def __init__(self, name: str, factory: Callable[[], Any], errors: tuple[type[BaseException],
                 ...], zlib_style: bool) -> None:
        self.name = name
        self._factory = factory
        self._errors = errors
        self._zlib_style = zlib_style
        self._stream = factory()
        self._padding = False

    def push(self, data: bytes) -> Iterator[bytes]:
        try:
            while data:
                if self._padding:
                    if data.strip(b"\0"):
                        raise _Broken(Verdict.CORRUPT,
                                      f"data after the end of the {self.name} stream")
                    return
                if self._stream.eof:
                    # Another stream follows (pigz, pbzip2, `cat a.gz b.gz`), or zero padding.
                    if data[:1] == b"\0":
                        self._padding = True
                        continue
                    self._stream = self._factory()
                yield from self._decode(data)
                data = self._stream.unused_data if self._stream.eof else b""
        except self._errors as err:
            raise _Broken(Verdict.CORRUPT, f"{self.name}: {err}") from None
        except EOFError as err:
            raise _Broken(Verdict.CORRUPT, f"{self.name}: {err}") from None

    def _decode(self, data: bytes) -> Iterator[bytes]:
        stream = self._stream
        if self._zlib_style:
            while True:
                out = stream.decompress(data, OUTPUT_CHUNK)
                if out:
                    yield out
                data = stream.unconsumed_tail
                if stream.eof or (not data and len(out) < OUTPUT_CHUNK):
                    return
        out = stream.decompress(data, max_length=OUTPUT_CHUNK)
        if out:
            yield out
        while not stream.eof and not stream.needs_input:
            out = stream.decompress(b"", max_length=OUTPUT_CHUNK)
            if out:
                yield out

    def finish(self) -> None:
        if not self._padding and not self._stream.eof:
            raise _Broken(Verdict.TRUNCATED, f"the {self.name} stream ends before its end marker")


# What a file's name promises; content that breaks the promise is corrupt (a backup script
# that wrote "mysqldump: Got error: 1045" into db.sql.gz made a non-empty, useless file).
_NAME_COMPRESSION = {".gz": "gzip", ".tgz": "gzip", ".xz": "xz", ".txz": "xz", ".bz2": "bzip2",
                     ".tbz2": "bzip2", ".tbz": "bzip2"}
_TAR_SUFFIXES = (".tar", ".tgz", ".txz", ".tbz2", ".tbz")


def expected_by_name(name: str) -> tuple[str | None, bool]:
    """The compression (or None) and whether a tar archive is promised by a file name."""
    lower = name.lower()
    compression = next((c for s, c in _NAME_COMPRESSION.items() if lower.endswith(s)), None)
    stem = lower.rsplit(".", 1)[0] if compression else lower
    tar = lower.endswith(_TAR_SUFFIXES) or stem.endswith(".tar")
    return compression, tar


def _preview(data: bytes) -> str:
    text = data[:48].decode("ascii", "replace").splitlines()
    return repr(text[0] if text else "")


def _decoder_for(magic: bytes) -> _Decoder:
    if magic.startswith(b"\x1f\x8b"):
        import zlib

        return _Decompressor("gzip", lambda: zlib.decompressobj(wbits=31), (zlib.error,), True)
    if magic.startswith(b"\xfd7zXZ\x00"):
        import lzma

        return _Decompressor("xz", lzma.LZMADecompressor, (lzma.LZMAError,), False)
    if magic.startswith(b"BZh"):
        import bz2

        return _Decompressor("bzip2", bz2.BZ2Decompressor, (OSError, ValueError), False)
    return _Decoder()


# ---------------------------------------------------------------------------- content


def _is_tar_header(block: bytes) -> bool:
    return len(block) >= TAR_BLOCK and block[257:262] == b"ustar"


def _tar_number(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256 for sizes of 8 GiB and more
        value = int.from_bytes(field[1:], "big")
        return value
    text = field.replace(b"\0", b" ").strip()
    return int(text, 8) if text else 0


_NO_DATA_TYPES = frozenset(b"123456")
_META_TYPES = frozenset(b"xgLKX")


class _TarWalker:
    """Walks tar headers in a byte stream: checksums, sizes, the end-of-archive marker."""

    def __init__(self) -> None:
        self.members = 0
        self.files = 0
        """Entries other than directories."""
        self._skip = 0
        self._block = b""
        self._zero_blocks = 0
        self._ended = False
        self._current = ""

    def push(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end and not self._ended:
            if self._skip:
                taken = min(self._skip, end - pos)
                self._skip -= taken
                pos += taken
                continue
            taken = min(TAR_BLOCK - len(self._block), end - pos)
            self._block += data[pos:pos + taken]
            pos += taken
            if len(self._block) == TAR_BLOCK:
                block, self._block = self._block, b""
                self._header(block)

    def _header(self, block: bytes) -> None:
        if not block.strip(b"\0"):
            self._zero_blocks += 1
            self._ended = self._zero_blocks >= 2
            return
        self._zero_blocks = 0
        stored = block[148:156].replace(b"\0", b" ").strip()
        try:
            expected = int(stored, 8)
            size = _tar_number(block[124:136])
        except ValueError:
            raise _Broken(Verdict.CORRUPT,
                          f"tar: unreadable header after {self.members} members") from None
        computed = sum(block[:148]) + 8 * 32 + sum(block[156:])
        if computed != expected:
            raise _Broken(Verdict.CORRUPT,
                          f"tar: header checksum mismatch after {self.members} members")
        kind = block[156]
        self._current = block[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
        if kind not in _META_TYPES:
            self.members += 1
            self.files += kind != ord("5")
        if kind not in _NO_DATA_TYPES:
            self._skip = -(-size // TAR_BLOCK) * TAR_BLOCK

    def finish(self) -> None:
        if self._ended:
            return
        if self._skip or self._block:
            raise _Broken(Verdict.TRUNCATED, f"tar archive ends inside {self._current!r}")
        raise _Broken(Verdict.TRUNCATED, "tar archive has no end-of-archive marker")


class _Content:
    """Looks at the decoded bytes: the head decides tar or dump, the tail proves completion."""

    def __init__(self, dump: DumpKind) -> None:
        self.dump = dump
        self.head = b""
        self.tail = b""
        self.length = 0
        self.tar: _TarWalker | None = None
        self._decided = False
        self._pending = b""

    def push(self, data: bytes) -> None:
        self.length += len(data)
        self.tail = data[-TAIL_BYTES:] if len(data) >= TAIL_BYTES \
            else (self.tail + data)[-TAIL_BYTES:]
        if self._decided:
            if self.tar is not None:
                self.tar.push(data)
            return
        self._pending += data
        if len(self._pending) >= TAR_BLOCK:
            self._decide()

    def _decide(self) -> None:
        self._decided = True
        pending, self._pending = self._pending, b""
        self.head = pending[:HEAD_BYTES]
        if _is_tar_header(self.head):
            self.tar = _TarWalker()
            self.tar.push(pending)
        if self.dump == "auto" and self.tar is None:
            self.dump = self.detected_dump() or "none"

    def detected_dump(self) -> DumpKind | None:
        """The dump tool named in the head, if any."""
        for kind, headers in _DUMP_HEADERS.items():
            lines = self.head.splitlines()[:6]
            if any(line.startswith(h) for line in lines for h in headers):
                return "mysqldump" if kind == "mysqldump" else "pg_dump"
        return None

    @property
    def decided(self) -> bool:
        """Whether the head has been seen (tar or not is known)."""
        return self._decided

    @property
    def needs_all_bytes(self) -> bool:
        """A tar walk needs every byte; a dump completion line only the tail."""
        return self.tar is not None

    def finish(self) -> None:
        if not self._decided:
            self._decide()
        if self.tar is not None:
            self.tar.finish()
            return
        marker = COMPLETION_MARKERS.get(self.dump)
        if marker is not None:
            last_lines = self.tail.rstrip().splitlines()[-8:]
            if not any(line.startswith(marker) for line in last_lines):
                raise _Broken(Verdict.NO_COMPLETION,
                              f"no {self.dump} completion line ({marker.decode()} ...)")


# ---------------------------------------------------------------------------- driver


@dataclass(frozen=True, slots=True)
class Budget:
    """What one run may spend on verification: a monotonic deadline and a byte allowance."""

    deadline: float
    bytes_left: int


class Verification:
    """The resumable verification of one file, identified by ``fingerprint``."""

    def __init__(self, path: str, size: int, fingerprint: tuple[int, ...], dump: DumpKind):
        self.path = path
        self.expected_compression, self.expected_tar = expected_by_name(path)
        self.size = size
        self.fingerprint = fingerprint
        self.offset = 0
        self._decoder: _Decoder | None = None
        self._content = _Content(dump)
        self.outcome: Integrity | None = None

    def _format(self) -> str:
        decoder = self._decoder.name if self._decoder else "plain"
        inner = ""
        if self._content.tar is not None:
            inner = "tar"
        elif self._content.dump in COMPLETION_MARKERS:
            inner = str(self._content.dump)
        if not inner:
            return decoder
        return inner if decoder == "plain" else f"{decoder}+{inner}"

    def _done(self, verdict: Verdict, detail: str = "") -> Integrity:
        tar = self._content.tar
        self.outcome = Integrity(verdict, self._format(), detail, self.offset, self.size,
                                 tar.members if tar is not None else None)
        # Only the outcome is kept: an xz decoder holds its dictionary (8 MiB for xz -6).
        self._decoder = None
        self._content = _Content("none")
        return self.outcome

    def step(self, budget: Budget, *, monotonic: Callable[[], float] = time.monotonic,
             ) -> tuple[Integrity, int]:
        """Read on until the end or the budget; the outcome so far and the bytes read."""
        if self.outcome is not None:
            return self.outcome, 0
        spent = 0
        try:
            with open(self.path, "rb") as source:
                source.seek(self.offset)
                while True:
                    # One chunk per run at least, so every set makes progress.
                    if spent and (spent >= budget.bytes_left or monotonic() >= budget.deadline):
                        progress = Integrity(Verdict.IN_PROGRESS, self._format(),
                                             f"{self.offset} of {self.size} bytes verified",
                                             self.offset, self.size)
                        return progress, spent
                    # At least a few bytes, so the magic number is seen whole.
                    chunk = source.read(max(64, min(READ_CHUNK, budget.bytes_left - spent)))
                    if not chunk:
                        break
                    if self._decoder is None:
                        self._decoder = _decoder_for(chunk[:8])
                        wanted = self.expected_compression
                        if wanted is not None and self._decoder.name != wanted:
                            raise _Broken(Verdict.CORRUPT,
                                          f"not {wanted} data (starts with {_preview(chunk)})")
                    self.offset += len(chunk)
                    spent += len(chunk)
                    for piece in self._decoder.push(chunk):
                        self._content.push(piece)
                    if (
                        self._decoder.name == "plain"
                        and self._content.decided
                        and not self._content.needs_all_bytes
                        and self.offset < self.size - TAIL_BYTES
                    ):
                        # Plain text: only the tail matters for a completion line.
                        self.offset = self.size - TAIL_BYTES
                        source.seek(self.offset)
                        self._content.tail = b""
            if self._decoder is None:
                return self._done(Verdict.NOT_CHECKED, "empty file"), spent
            self._decoder.finish()
            if self._decoder.name != "plain" and self._content.length == 0:
                raise _Broken(Verdict.EMPTY, f"{self._decoder.name} of 0 bytes")
            self._content.finish()
            if self.expected_tar and self._content.tar is None:
                content = self._content
                if not (content.head + content.tail).strip(b"\0") and content.length >= 1024:
                    raise _Broken(Verdict.EMPTY, "tar archive without files")  # end blocks only
                raise _Broken(Verdict.CORRUPT, "not a tar archive")
            if self._content.tar is not None and self._content.tar.files == 0:
                raise _Broken(Verdict.EMPTY, "tar archive without files")
        except _Broken as broken:
            return self._done(broken.verdict, broken.message), spent
        except OSError as err:
            return self._done(Verdict.UNREADABLE, f"cannot read: {err.strerror or err}"), spent
        if self._decoder.name == "plain" and self._content.tar is None \
                and self._content.dump not in COMPLETION_MARKERS:
            return self._done(Verdict.NOT_CHECKED, "plain file of no known format"), spent
        return self._done(Verdict.OK), spent
