"""Reading logrotate's own files: its configuration (with includes) and its state file.

Pure text handling plus the few reads it needs; no judgement. The parser understands the
directives the ``logrotate`` check judges by and skips every other one (and every script
block) without failing, so a configuration that logrotate accepts is read here too. A
problem that logrotate would also complain about (an unreadable include, an unclosed
block, a bad size) is recorded as a ``ConfigProblem`` and the rest is still read.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

HOUR = 3600.0
DAY = 86400.0
MiB = 1024 * 1024

# The time criteria logrotate knows, as the longest interval between two rotations.
# ``monthly`` rotates when the month changes (up to 31 days), ``yearly`` when the year does.
PERIODS: dict[str, float] = {
    "hourly": HOUR,
    "daily": DAY,
    "weekly": 7 * DAY,
    "monthly": 31 * DAY,
    "yearly": 366 * DAY,
}

COMPRESSION_EXTENSIONS = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".lzma", ".lz", ".Z", ".zip")
_COMPRESS_COMMAND_EXT = {
    "gzip": ".gz", "pigz": ".gz", "bzip2": ".bz2", "pbzip2": ".bz2", "xz": ".xz",
    "zstd": ".zst", "lz4": ".lz4", "lzma": ".lzma", "lzip": ".lz", "compress": ".Z",
}
# Files logrotate skips when it reads an include directory (its built-in tabooext list).
TABOO_SUFFIXES = (
    ",v", ".cfsaved", ".disabled", ".dpkg-bak", ".dpkg-del", ".dpkg-dist", ".dpkg-new",
    ".dpkg-old", ".dpkg-tmp", ".rhn-cfg-tmp-*", ".rpmnew", ".rpmorig", ".rpmsave", ".swp",
    ".ucf-dist", ".ucf-new", ".ucf-old", "~",
)
_SCRIPT_DIRECTIVES = {"prerotate", "postrotate", "firstaction", "lastaction", "preremove"}
_MAX_INCLUDE_DEPTH = 8


@dataclass(frozen=True, slots=True)
class LogSettings:
    """The directives of one block that the check judges by, defaults as logrotate's."""

    period: float | None = None
    """Seconds between rotations for a time criterion, None for a size-only log."""
    period_name: str = "size"
    size: int | None = MiB
    """The ``size`` criterion (logrotate's default is 1 MiB when no time is given)."""
    minsize: int | None = None
    maxsize: int | None = None
    rotate: int = 0
    compress: bool = False
    delaycompress: bool = False
    compressext: str | None = None
    dateext: bool = False
    dateformat: str = "-%Y%m%d"
    olddir: str | None = None
    missingok: bool = False
    notifempty: bool = False

    @property
    def compressed_extension(self) -> str:
        """The extension compressed rotations get (``compressext``, else gzip's)."""
        return self.compressext or ".gz"


@dataclass(frozen=True, slots=True)
class Block:
    """One ``paths { ... }`` block with the settings it ended up with."""

    patterns: tuple[str, ...]
    settings: LogSettings
    source: str
    """``file:line`` where the block starts."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """Something in the configuration that could not be read or understood."""

    source: str
    message: str


@dataclass
class ParsedConfig:
    """Every block and every problem found from the main file through its includes."""

    blocks: list[Block] = field(default_factory=list)
    problems: list[ConfigProblem] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


_TOKEN = re.compile(r'"([^"]*)"|\'([^\']*)\'|([^\s"\']+)')
_LOGROTATE_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([kKmMgG]?)$")
_SIZE_FACTOR = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def tokens(line: str) -> list[str]:
    """Words of a line; quotes group, and ``{``/``}`` stand alone."""
    words: list[str] = []
    for m in _TOKEN.finditer(line):
        quoted = m.group(1) if m.group(1) is not None else m.group(2)
        if quoted is not None:
            words.append(quoted)
            continue
        raw = m.group(3)
        for piece in re.split(r"([{}])", raw):
            if piece:
                words.append(piece)
    return words


def parse_logrotate_size(text: str) -> int:
    """Bytes from logrotate's size syntax: ``100``, ``100k``, ``10M``, ``1G``."""
    m = _LOGROTATE_SIZE.match(text.strip())
    if not m:
        raise ValueError(f"bad size {text!r}")
    return int(float(m.group(1)) * _SIZE_FACTOR[m.group(2).lower()])


def compression_extension_for(command: str) -> str | None:
    """The extension a compression command writes (``/usr/bin/xz`` gives ``.xz``)."""
    return _COMPRESS_COMMAND_EXT.get(os.path.basename(command))


class _Parser:
    def __init__(self) -> None:
        self.result = ParsedConfig()
        self.defaults = LogSettings()
        self.seen: set[str] = set()

    def problem(self, source: str, message: str) -> None:
        self.result.problems.append(ConfigProblem(source, message))

    def apply(self, settings: LogSettings, words: list[str], source: str) -> LogSettings:
        """``settings`` changed by one directive; unknown directives change nothing."""
        key = words[0].lower()
        args = [w for w in words[1:] if w != "="]
        arg = args[0] if args else ""
        try:
            if key in PERIODS:
                return replace(settings, period=PERIODS[key], period_name=key)
            if key == "size":
                return replace(settings, period=None, period_name="size",
                               size=parse_logrotate_size(arg))
            if key == "minsize":
                return replace(settings, minsize=parse_logrotate_size(arg))
            if key == "maxsize":
                return replace(settings, maxsize=parse_logrotate_size(arg))
            if key == "rotate":
                return replace(settings, rotate=int(arg))
            flags: dict[str, tuple[str, Any]] = {
                "compress": ("compress", True), "nocompress": ("compress", False),
                "delaycompress": ("delaycompress", True),
                "nodelaycompress": ("delaycompress", False),
                "dateext": ("dateext", True), "nodateext": ("dateext", False),
                "missingok": ("missingok", True), "nomissingok": ("missingok", False),
                "notifempty": ("notifempty", True), "ifempty": ("notifempty", False),
                "noolddir": ("olddir", None),
            }
            if key in flags:
                name, value = flags[key]
                return replace(settings, **{name: value})
            if key == "compressext" and arg:
                return replace(settings, compressext=arg)
            if key == "compresscmd" and arg and settings.compressext is None:
                ext = compression_extension_for(arg)
                return replace(settings, compressext=ext) if ext else settings
            if key == "dateformat" and arg:
                return replace(settings, dateformat=arg)
            if key == "olddir" and arg:
                return replace(settings, olddir=os.path.expanduser(arg))
        except ValueError as err:
            self.problem(source, f"{key}: {err}")
        return settings

    def read_path(self, path: str, source: str, depth: int) -> None:
        if depth > _MAX_INCLUDE_DEPTH:
            self.problem(source, f"include nested too deeply at {path}")
            return
        if os.path.isdir(path):
            try:
                names = sorted(os.listdir(path))
            except OSError as err:
                self.problem(source, f"cannot list {path}: {err.strerror or err}")
                return
            for name in names:
                full = os.path.join(path, name)
                if name.startswith(".") or not os.path.isfile(full):
                    continue
                if any(_taboo(name, suffix) for suffix in TABOO_SUFFIXES):
                    continue
                self.read_file(full, source, depth + 1)
            return
        self.read_file(path, source, depth)

    def read_file(self, path: str, source: str, depth: int) -> None:
        real = os.path.realpath(path)
        if real in self.seen:
            return
        self.seen.add(real)
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError as err:
            self.problem(source or path, f"cannot read {path}: {err.strerror or err}")
            return
        self.result.files.append(path)
        self.parse_text(text, path, depth)

    def parse_text(self, text: str, path: str, depth: int) -> None:
        in_script = False
        block: LogSettings | None = None
        block_source = ""
        pending: list[str] = []
        pending_source = ""
        patterns: tuple[str, ...] = ()
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            source = f"{path}:{number}"
            if in_script:
                in_script = line != "endscript"
                continue
            if not line or line.startswith("#"):
                continue
            words = tokens(line)
            if not words:
                continue
            if block is not None:
                if words[0] == "}":
                    self.result.blocks.append(Block(patterns, block, block_source))
                    block = None
                    continue
                if words[0].lower() in _SCRIPT_DIRECTIVES:
                    in_script = True
                    continue
                if words[0].lower() == "include":
                    self.problem(source, "include is not allowed inside a log block")
                    continue
                block = self.apply(block, words, source)
                continue
            if pending or _starts_paths(words[0]):
                if not pending:
                    pending_source = source
                if "{" in words:
                    cut = words.index("{")
                    pending.extend(words[:cut])
                    patterns = tuple(os.path.expanduser(p) for p in pending)
                    block, block_source, pending = self.defaults, pending_source, []
                    rest = words[cut + 1:]
                    if rest == ["}"]:
                        self.result.blocks.append(Block(patterns, block, block_source))
                        block = None
                else:
                    pending.extend(words)
                continue
            if words[0] == "}":
                self.problem(source, "} without an open block")
                continue
            if words[0].lower() == "include":
                if len(words) < 2:
                    self.problem(source, "include needs a path")
                    continue
                target = words[1]
                if not os.path.isabs(target):
                    target = os.path.join(os.path.dirname(path), target)
                self.read_path(target, source, depth + 1)
                continue
            self.defaults = self.apply(self.defaults, words, source)
        if block is not None or pending:
            self.problem(block_source or pending_source, "block is not closed before end of file")


def _starts_paths(word: str) -> bool:
    return word.startswith(("/", "~", "*")) or word == "{"


def _taboo(name: str, suffix: str) -> bool:
    if "*" in suffix:
        head = suffix.split("*", 1)[0]
        return head in name
    return name.endswith(suffix)


def parse_config(main_file: str) -> ParsedConfig:
    """All blocks of ``main_file`` and its includes, in logrotate's reading order."""
    parser = _Parser()
    parser.read_path(main_file, "", 0)
    return parser.result


def parse_config_text(text: str, path: str = "logrotate.conf") -> ParsedConfig:
    """Blocks of a configuration given as text (its includes are still read from disk)."""
    parser = _Parser()
    parser.result.files.append(path)
    parser.parse_text(text, path, 0)
    return parser.result


# ---------------------------------------------------------------------------- state file

_STATE_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:-(\d{1,2}):(\d{1,2}):(\d{1,2}))?$")


def parse_state_date(text: str) -> float:
    """Epoch seconds of a state-file date (``2026-11-23-7:8:51``, local time as written)."""
    m = _STATE_DATE.match(text.strip())
    if not m:
        raise ValueError(f"bad date {text!r}")
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    hour, minute, second = (int(m.group(i) or 0) for i in (4, 5, 6))
    return time.mktime((year, month, day, hour, minute, second, 0, 0, -1))


def parse_state(text: str) -> dict[str, float]:
    """Last rotation per log path from a state file; malformed lines are skipped."""
    entries: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("logrotate state"):
            continue
        if line.startswith('"'):
            end = line.rfind('"')
            if end <= 0:
                continue
            path = line[1:end].replace('\\"', '"').replace("\\\\", "\\")
            date = line[end + 1:].strip()
        else:
            path, _, date = line.rpartition(" ")
        try:
            entries[path] = parse_state_date(date)
        except (ValueError, OverflowError):
            continue
    return entries
