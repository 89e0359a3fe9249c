"""Backup sets on disk, made by the real tools, for the backup check's tests and the e2e test.

``build(kind, workdir, now)`` writes one named scenario under ``workdir`` and returns a
``Scenario``: the whole ``[checks.<name>]`` TOML table (``type = "backup"`` and its sets)
and the status the check must report. Files are mysqldump-shaped SQL text compressed by
the ``gzip``, ``xz`` and ``bzip2`` binaries or archived by ``tar``; their mtimes are set
relative to ``now`` with ``os.utime`` (no sleeping), so ``now`` must be the clock the check
will use (``time.time()`` for a real agent). Nothing is left running.

Kinds (``KINDS``): ``ok``, ``truncated``, ``corrupt``, ``empty``, ``shrinking``,
``shrinking_critical``, ``stale``, ``incomplete``, ``few_copies``, ``dated``.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from checks.result import Status

HOUR = 3600.0
DAY = 24 * HOUR
ROWS = 4000
"""Rows in a normal dump: about 200 KiB of SQL, 90 KiB gzipped."""

# Debian packages of the tools, named when one is missing (a failure, never a skip).
PACKAGES = {"gzip": "gzip", "xz": "xz-utils", "bzip2": "bzip2", "tar": "tar"}
SUFFIX = {"gzip": ".gz", "xz": ".xz", "bzip2": ".bz2"}


@dataclass(frozen=True)
class Scenario:
    """One set-up: the agent config table, the expected status, one line about it."""

    toml: str
    expected: Status
    describe: str
    directory: Path
    newest: Path


def tool(name: str) -> str:
    """The absolute path of a command-line tool; a missing one fails naming its package."""
    found = shutil.which(name)
    if found is None:
        raise AssertionError(f"{name} is not installed: install the Debian package "
                             f"'{PACKAGES.get(name, name)}'")
    return found


def dump_text(rows: int, *, seed: int, complete: bool = True, stamp: str = "2026-11-20 02:00:01",
              ) -> bytes:
    """SQL text shaped like mysqldump's, with its completion line unless cut short."""
    rng = random.Random(seed)
    lines = [
        "-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)",
        "--",
        "-- Host: localhost    Database: billing",
        "-- ------------------------------------------------------",
        "-- Server version\t10.11.6-MariaDB-0+deb12u1",
        "",
        "/*!40101 SET NAMES utf8mb4 */;",
        "DROP TABLE IF EXISTS `cdr`;",
        "CREATE TABLE `cdr` (`id` bigint NOT NULL, `caller` varchar(20), `callee` varchar(20),",
        "  `seconds` int, PRIMARY KEY (`id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;",
        "LOCK TABLES `cdr` WRITE;",
    ]
    for start in range(0, rows, 50):
        values = ",".join(
            f"({i},'+3531{rng.randrange(10**7):07d}','+4420{rng.randrange(10**7):07d}',"
            f"{rng.randrange(3600)})"
            for i in range(start, min(rows, start + 50))
        )
        lines.append(f"INSERT INTO `cdr` VALUES {values};")
    lines += ["UNLOCK TABLES;", "/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;", ""]
    if complete:
        lines.append(f"-- Dump completed on {stamp}")
    return ("\n".join(lines) + "\n").encode()


def compress(plain: Path, compressor: str) -> Path:
    """``plain`` compressed by the real tool (``gzip``, ``xz`` or ``bzip2``); plain removed."""
    target = plain.with_name(plain.name + SUFFIX[compressor])
    with open(target, "wb") as out:
        subprocess.run([tool(compressor), "-c", str(plain)], stdout=out, check=True, timeout=60)
    plain.unlink()
    return target


def write_dump(path: Path, rows: int, *, seed: int, compressor: str | None = "gzip",
               complete: bool = True) -> Path:
    """A dump of ``rows`` rows at ``path`` (without the compression suffix); the file made."""
    path.write_bytes(dump_text(rows, seed=seed, complete=complete))
    return compress(path, compressor) if compressor else path


def write_tar(path: Path, members: int, *, seed: int, flags: str = "z") -> Path:
    """A tar archive (``flags``: "" plain, "z" gzip, "J" xz, "j" bzip2) made by tar."""
    source = path.parent / f".src-{path.name}"
    source.mkdir()
    for i in range(members):
        (source / f"part-{i}.sql").write_bytes(dump_text(ROWS // 4, seed=seed * 100 + i))
    subprocess.run([tool("tar"), f"-c{flags}f", str(path), "-C", str(source), "."],
                   check=True, timeout=60)
    shutil.rmtree(source)
    return path


def cut(path: Path, keep: float = 0.6) -> None:
    """Truncate ``path`` to ``keep`` of its size, as a full disk or a killed copy leaves it."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(int(size * keep))


def flip(path: Path, count: int = 16) -> None:
    """Invert ``count`` bytes in the middle of ``path`` (a bad sector, a flaky link)."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2)
        data = f.read(count)
        f.seek(size // 2)
        f.write(bytes(b ^ 0xFF for b in data))


def set_age(path: Path, now: float, age: float) -> None:
    """Give ``path`` an mtime ``age`` seconds before ``now``."""
    os.utime(path, (now - age, now - age))


def daily_series(directory: Path, now: float, sizes: Sequence[int], *, newest_age: float = HOUR,
                 compressor: str = "gzip", prefix: str = "db-", first_day: int = 10) -> list[Path]:
    """One dump per day of ``sizes[i]`` rows, oldest first, named db-2026-11-DD.sql.gz."""
    directory.mkdir(parents=True, exist_ok=True)
    made = []
    count = len(sizes)
    for i, rows in enumerate(sizes):
        path = write_dump(directory / f"{prefix}2026-11-{first_day + i:02d}.sql", rows, seed=i,
                          compressor=compressor)
        set_age(path, now, newest_age + (count - 1 - i) * DAY)
        made.append(path)
    return made


def check_toml(check_name: str, sets: Sequence[dict[str, object]]) -> str:
    """The ``[checks.<check_name>]`` table with ``[[checks.<check_name>.sets]]`` entries."""
    lines = [f"[checks.{check_name}]", 'type = "backup"', ""]
    for backup_set in sets:
        lines.append(f"[[checks.{check_name}.sets]]")
        for key, value in backup_set.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


KINDS = ("ok", "truncated", "corrupt", "empty", "shrinking", "shrinking_critical", "stale",
         "incomplete", "few_copies", "dated")


def build(kind: str, workdir: Path, now: float, *, check_name: str = "backup") -> Scenario:
    """Set up scenario ``kind`` under ``workdir``; its config table and expected status."""
    directory = workdir / f"backup-{kind}"
    extra: dict[str, object] = {}
    normal = [ROWS] * 8
    if kind == "ok":
        files = daily_series(directory, now, normal)
        expected, describe = Status.OK, "eight whole daily gzip dumps, the newest 1h old"
    elif kind == "truncated":
        files = daily_series(directory, now, normal)
        cut(files[-1])
        set_age(files[-1], now, HOUR)  # a fresh mtime would mean "still being written"
        expected, describe = Status.CRITICAL, "the newest gzip dump cut to 60 % of its size"
    elif kind == "corrupt":
        files = daily_series(directory, now, normal)
        flip(files[-1])
        set_age(files[-1], now, HOUR)
        expected, describe = Status.CRITICAL, "16 bytes flipped in the middle of the newest dump"
    elif kind == "empty":
        files = daily_series(directory, now, normal)
        files[-1].write_bytes(b"")
        set_age(files[-1], now, HOUR)
        expected, describe = Status.CRITICAL, "the newest dump is an empty file"
    elif kind == "shrinking":
        files = daily_series(directory, now, [*normal[:-1], int(ROWS * 0.6)])
        expected, describe = Status.WARNING, "the newest dump is about 40 % smaller than usual"
    elif kind == "shrinking_critical":
        files = daily_series(directory, now, [*normal[:-1], int(ROWS * 0.2)])
        expected, describe = Status.CRITICAL, "the newest dump is about 80 % smaller than usual"
    elif kind == "stale":
        files = daily_series(directory, now, normal, newest_age=3 * DAY)
        expected, describe = Status.CRITICAL, "the newest dump is 3 days old (max 50h)"
    elif kind == "incomplete":
        files = daily_series(directory, now, normal[:-1])
        last = write_dump(directory / "db-2026-11-17.sql", ROWS, seed=7, complete=False)
        set_age(last, now, HOUR)
        files.append(last)
        expected, describe = Status.CRITICAL, "the newest dump has no '-- Dump completed' line"
    elif kind == "few_copies":
        files = daily_series(directory, now, normal[:3])
        extra["min_copies"] = 7
        expected, describe = Status.WARNING, "three copies kept where seven are expected"
    elif kind == "dated":
        # Copied from another host in one go: fresh mtimes, the oldest dump copied last.
        files = _dated_series(directory, now, normal, newest_age=2 * DAY + HOUR)
        extra["name_date"] = "%Y-%m-%d_%H%M"
        extra["name_date_utc"] = True
        expected, describe = Status.WARNING, \
            "copied dumps with fresh mtimes, the newest named 49h ago"
    else:
        raise ValueError(f"unknown backup scenario {kind!r} (known: {', '.join(KINDS)})")
    backup_set: dict[str, object] = {
        "name": kind, "directory": str(directory), "pattern": "db-*.sql.gz", **extra,
    }
    return Scenario(check_toml(check_name, [backup_set]), expected, describe, directory,
                    files[-1])


def _dated_series(directory: Path, now: float, sizes: Sequence[int], *, newest_age: float,
                  ) -> list[Path]:
    """Dumps named db-YYYY-MM-DD_HHMM.sql.gz (UTC) by when they were made, oldest first,
    whose mtimes say the opposite: the oldest has the freshest mtime, as after a copy."""
    files = daily_series(directory, now, sizes, newest_age=newest_age)
    named = []
    for i, path in enumerate(files):
        made = path.stat().st_mtime
        stamp = time.strftime("%Y-%m-%d_%H%M", time.gmtime(made))
        target = path.with_name(f"db-{stamp}.sql.gz")
        path.rename(target)
        set_age(target, now, 600 + i)
        named.append(target)
    return named
