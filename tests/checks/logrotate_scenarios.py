"""Real logrotate scenarios for the ``logrotate`` check, built under a given directory.

``build(name, workdir, now)`` runs the real ``/usr/sbin/logrotate`` with its own
configuration and state file (``logrotate -s STATE CONF``), then moves file times and
state-file dates back where the scenario needs time to have passed, and returns a
``Scenario``: the ``[checks.<name>]`` TOML table for an agent and the worst status the
check must report. Nothing keeps running afterwards, so there is nothing to stop.

Names (``SCENARIOS``): ok, stale, uncompressed, failed_rotation, over_maxsize, uncovered.
``now`` must be the clock the check will use (``time.time()`` for a real agent): logrotate
itself stamps with the real time, and the scenario moves times back relative to ``now``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from checks.result import Status

DAY = 86400.0
MiB = 1024 * 1024
SCENARIOS = ("ok", "stale", "uncompressed", "failed_rotation", "over_maxsize", "uncovered")


@dataclass(frozen=True)
class Scenario:
    """What one scenario built: the agent TOML, the worst expected status, and evidence."""

    toml: str
    expected: Status
    describe: str
    log: Path
    """The configured log (the target of its per-log result)."""
    state_file: Path
    config_file: Path
    watch_dir: Path
    runs: tuple[subprocess.CompletedProcess[str], ...] = field(default=())
    """Every logrotate run, in order (returncode, stdout, stderr)."""
    expected_targets: dict[str, Status] = field(default_factory=dict)
    """Expected status per result target."""


def logrotate_binary() -> str:
    """The real logrotate; a missing one fails with the Debian package to install."""
    path = shutil.which("logrotate") or (
        "/usr/sbin/logrotate" if os.path.exists("/usr/sbin/logrotate") else None)
    if path is None:
        raise AssertionError("logrotate is not installed: apt-get install logrotate")
    return path


def run_logrotate(config: Path, state: Path) -> subprocess.CompletedProcess[str]:
    """One verbose run of the real logrotate with the scenario's own state file."""
    return subprocess.run(
        [logrotate_binary(), "-v", "-s", str(state), str(config)],
        capture_output=True, text=True, timeout=30, check=False,
    )


def write_config(path: Path, log: Path, *directives: str) -> None:
    """A one-block configuration; logrotate ignores group/world-writable ones, so 0644."""
    body = "\n".join(f"    {d}" for d in directives)
    path.write_text(f"{log} {{\n{body}\n}}\n")
    path.chmod(0o644)


def state_date(epoch: float) -> str:
    """A date as logrotate writes it in its state file (local time, no zero padding)."""
    t = time.localtime(epoch)
    return f"{t.tm_year}-{t.tm_mon}-{t.tm_mday}-{t.tm_hour}:{t.tm_min}:{t.tm_sec}"


def write_state(state: Path, entries: dict[Path, float], mtime: float | None = None) -> None:
    """A state file saying each log was last rotated at the given time."""
    lines = ["logrotate state -- version 2"]
    lines += [f'"{log}" {state_date(when)}' for log, when in entries.items()]
    state.write_text("\n".join(lines) + "\n")
    if mtime is not None:
        os.utime(state, (mtime, mtime))


def read_state_dates(state: Path) -> dict[str, str]:
    """Path to date text, as the state file says."""
    out = {}
    for line in state.read_text().splitlines()[1:]:
        if line.startswith('"'):
            path, _, date = line[1:].rpartition('" ')
            out[path] = date
    return out


def age_files(paths: list[Path], seconds: float) -> None:
    """Move the mtime (and atime) of each file back by ``seconds``."""
    for p in paths:
        st = p.stat()
        os.utime(p, (st.st_atime - seconds, st.st_mtime - seconds))


def write_lines(log: Path, count: int, tag: str = "line") -> None:
    """Append ``count`` log lines."""
    with log.open("a") as out:
        out.writelines(f"{tag} {i}\n" for i in range(count))


BASE = ("daily", "rotate 5", "missingok", "notifempty", "create 0640 root root",
        "su root root")


def _rotate_once(
    workdir: Path, now: float, *extra: str, must_succeed: bool = True
) -> tuple[Path, Path, Path, list[subprocess.CompletedProcess[str]]]:
    """A log that logrotate rotated for real a day ago (state says so, files agree)."""
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log, conf, state = logs / "app.log", workdir / "logrotate.conf", workdir / "status"
    write_lines(log, 500)
    write_config(conf, log, *BASE, *extra)
    # Without a prior state entry logrotate only records a new log; an old one makes it due.
    write_state(state, {log: now - 30 * DAY})
    runs = [run_logrotate(conf, state)]
    if must_succeed and runs[0].returncode != 0:
        raise AssertionError(f"logrotate failed: {runs[0].stderr}")
    return log, conf, state, runs


def _toml(check_name: str, conf: Path, state: Path, watch: Path) -> str:
    # JSON string escapes are valid TOML basic strings, whatever the temp path holds.
    return (
        f"[checks.{check_name}]\n"
        'type = "logrotate"\n'
        f"config_file = {json.dumps(str(conf))}\n"
        f"state_file = {json.dumps(str(state))}\n"
        f"watch_dirs = [{json.dumps(str(watch))}]\n"
        'uncovered_min_size = "1MiB"\n'
    )


def build(name: str, workdir: Path, now: float, check_name: str = "logrotate") -> Scenario:
    """Set up scenario ``name`` under ``workdir`` with real logrotate runs."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r} (known: {', '.join(SCENARIOS)})")
    workdir.mkdir(parents=True, exist_ok=True)
    logs = workdir / "logs"
    expected = Status.OK
    describe = ""
    if name == "ok":
        log, conf, state, runs = _rotate_once(workdir, now, "compress", "delaycompress")
        write_lines(log, 50, "after")
        describe = "rotated by logrotate just now; state file fresh"
    elif name == "stale":
        log, conf, state, runs = _rotate_once(workdir, now, "compress")
        write_lines(log, 50, "after")
        # logrotate stopped running 5 days ago: every file and the state file are that old.
        age_files(list(logs.iterdir()), 5 * DAY)
        write_state(state, {log: now - 5 * DAY}, mtime=now - 5 * DAY)
        expected = Status.CRITICAL
        describe = "logrotate has not run for 5 days (daily log)"
    elif name == "uncompressed":
        # Compression fails (as on a full disk): the rotated file stays plain.
        log, conf, state, runs = _rotate_once(workdir, now, "compress", "compresscmd /bin/false",
                                              must_succeed=False)
        write_lines(log, 50, "after")
        expected = Status.WARNING
        describe = "compress configured, rotated file left uncompressed"
    elif name == "failed_rotation":
        log, conf, state, runs = _rotate_once(workdir, now, "compress")
        write_lines(log, 500, "after")
        age_files(list(logs.iterdir()), 3 * DAY)
        write_state(state, {log: now - 3 * DAY}, mtime=now - 3 * DAY)
        # A failing prerotate script: logrotate exits 1, leaves the log in place, and
        # still writes today's date into its state file.
        write_config(conf, log, *BASE, "compress", "prerotate", "    exit 1", "endscript")
        runs.append(run_logrotate(conf, state))
        expected = Status.CRITICAL
        describe = "rotation fails (prerotate), state file claims it rotated"
    elif name == "over_maxsize":
        log, conf, state, runs = _rotate_once(workdir, now, "compress", "maxsize 1M")
        with log.open("ab") as out:
            out.write(b"x" * (2 * MiB))
        expected = Status.WARNING
        describe = "live log 2 MiB over maxsize 1M"
    else:  # uncovered
        log, conf, state, runs = _rotate_once(workdir, now, "compress")
        (logs / "forgotten").mkdir(exist_ok=True)
        with (logs / "forgotten" / "debug.log").open("wb") as out:
            out.write(os.urandom(2 * MiB))
        expected = Status.WARNING
        describe = "2 MiB log in the watched directory that no block covers"
    targets = {str(log): Status.OK, str(state): Status.OK, f"uncovered:{logs}": Status.OK}
    if name in ("stale", "failed_rotation"):
        targets[str(log)] = Status.CRITICAL
    if name == "stale":
        targets[str(state)] = Status.CRITICAL
    if name in ("uncompressed", "over_maxsize"):
        targets[str(log)] = Status.WARNING
    if name == "uncovered":
        targets[f"uncovered:{logs}"] = Status.WARNING
    return Scenario(
        toml=_toml(check_name, conf, state, logs),
        expected=expected,
        describe=describe,
        log=log,
        state_file=state,
        config_file=conf,
        watch_dir=logs,
        runs=tuple(runs),
        expected_targets=targets,
    )
