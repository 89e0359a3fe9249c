"""Reusable set-ups of the mysql_replication check's acceptance scenarios, for end-to-end tests.

``build(kind, workdir, *, check_name)`` starts what the scenario needs (real ``mariadbd``
servers on loopback, see tests/services/mariadb.py) and returns a ``Scenario``: the whole
``[checks.<check_name>]`` TOML table, the status the check as a whole must report, a
sentence saying what was set up, and ``stop`` to shut down what it started.

Sharing servers: starting a server takes about 0.7 s, so the scenarios share ONE primary,
started by the first ``build`` (under that call's ``workdir / "shared-primary"``) and
stopped by the ``stop`` of the last scenario still using it. Every scenario that needs a
replica gets its own replica server of that primary (its own data directory under its
``workdir``) and its own database on the primary, so breaking one scenario's replica never
touches another's. Only ``primary_down`` starts a private primary, because it stops it.
Keep each workdir until its scenario is stopped. Kinds:

- ``healthy``: a replica applying changes -> OK (lag 0).
- ``sql_stopped``: ``STOP SLAVE SQL_THREAD`` on the replica -> CRITICAL.
- ``duplicate_key``: a row written on the replica, then the same key on the primary; the
  SQL thread stops with error 1062 -> CRITICAL ("1062 (duplicate key)" in the summary).
- ``lagging``: a replica with ``MASTER_DELAY = 3600`` and one write on the primary; the
  lag grows past ``lag_warn = 2 s`` and stays under ``lag_crit = 3600 s`` for an hour ->
  WARNING. ``build`` returns once the replica reports at least 2 s.
- ``primary_down``: a private primary and its replica; the primary is stopped and the
  replica's IO thread is reconnecting -> CRITICAL.
- ``bad_password``: the shared primary with a wrong password in ``password_file`` ->
  UNKNOWN ("monitoring credentials rejected").
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from checks.result import Status
from tests.services.mariadb import (
    MONITOR_PASSWORD,
    MONITOR_USER,
    MariadbServer,
    MariadbUnavailable,
    ReplicationPair,
    start_pair,
    start_primary,
    start_replica,
)

KINDS = ("healthy", "sql_stopped", "duplicate_key", "lagging", "primary_down", "bad_password")


@dataclass(frozen=True)
class Scenario:
    """A prepared scenario: agent TOML, the worst status expected, and how to stop it."""

    toml: str
    expected: Status
    describe: str
    stop: Callable[[], None]


_lock = threading.Lock()
_shared: MariadbServer | None = None
_users = 0
_ids = itertools.count(10)  # server ids of the replicas (the primary is 1)


def _acquire_primary(workdir: Path) -> MariadbServer:
    global _shared, _users
    with _lock:
        if _shared is None or not _shared.running:
            _shared = start_primary(workdir / "shared-primary")
        _users += 1
        return _shared


def _release_primary() -> None:
    global _shared, _users
    with _lock:
        _users -= 1
        if _users <= 0 and _shared is not None:
            _shared.stop()
            _shared = None
            _users = 0


def _toml(check_name: str, port: int, *, password_file: Path, extra: str = "") -> str:
    return (
        f"[checks.{check_name}]\n"
        'type = "mysql_replication"\n'
        'interval = "10s"\n'
        'timeout = "8s"\n'
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        f'user = "{MONITOR_USER}"\n'
        f'password_file = "{password_file}"\n'
        "connect_timeout = 3\n"
        f"{extra}"
    )


def _password_file(workdir: Path, password: str) -> Path:
    path = workdir / "monitor.password"
    path.write_text(password + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def _replica_scenario(kind: str, workdir: Path, check_name: str) -> Scenario:
    primary = _acquire_primary(workdir)
    try:
        server_id = next(_ids)
        delay = 3600 if kind == "lagging" else 0
        pair = start_replica(primary, workdir, f"replica{server_id}", server_id, delay=delay)
    except BaseException:
        _release_primary()
        raise

    def stop() -> None:
        try:
            pair.stop()
        finally:
            _release_primary()

    try:
        extra, expected, describe = _break(kind, pair, server_id)
    except BaseException:
        stop()
        raise
    toml = _toml(check_name, pair.replica.port,
                 password_file=_password_file(workdir, MONITOR_PASSWORD), extra=extra)
    return Scenario(toml, expected, describe, stop)


def _break(kind: str, pair: ReplicationPair, server_id: int) -> tuple[str, Status, str]:
    db = f"scenario_{server_id}"
    pair.primary.sql(f"CREATE DATABASE {db}",
                     f"CREATE TABLE {db}.t (id INT PRIMARY KEY, v VARCHAR(20))",
                     f"INSERT INTO {db}.t VALUES (1, 'a')")
    if kind == "healthy":
        pair.sync()
        return "", Status.OK, "a replica applying every change of its primary: lag 0"
    if kind == "sql_stopped":
        pair.sync()
        pair.replica.sql("STOP SLAVE SQL_THREAD")
        return "", Status.CRITICAL, "STOP SLAVE SQL_THREAD on the replica"
    if kind == "duplicate_key":
        pair.sync()
        pair.replica.sql(f"INSERT INTO {db}.t VALUES (2, 'replica-only')")
        pair.primary.sql(f"INSERT INTO {db}.t VALUES (2, 'primary')")
        pair.wait_status("Slave_SQL_Running", "No")
        return "", Status.CRITICAL, "the same key written on the replica, then the primary: 1062"
    if kind == "lagging":
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            behind = pair.replica.slave_status().get("Seconds_Behind_Master")
            if behind is not None and behind >= 2:
                break
            time.sleep(0.2)
        else:
            raise MariadbUnavailable("the delayed replica never reported 2 s of lag")
        return ("lag_warn = 2\nlag_crit = 3600\n", Status.WARNING,
                "a replica delayed by an hour (MASTER_DELAY): lag past 2 s, under 3600 s")
    raise ValueError(f"unknown scenario kind {kind!r}")


def build(kind: str, workdir: Path, *, check_name: str = "mysql_replication") -> Scenario:
    """Set up scenario ``kind`` (one of ``KINDS``) with its files under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    if kind in ("healthy", "sql_stopped", "duplicate_key", "lagging"):
        return _replica_scenario(kind, workdir, check_name)
    if kind == "bad_password":
        primary = _acquire_primary(workdir)
        toml = _toml(check_name, primary.port,
                     password_file=_password_file(workdir, "not-the-password"))
        return Scenario(toml, Status.UNKNOWN, "a wrong password in password_file",
                        _release_primary)
    if kind == "primary_down":
        pair = start_pair(workdir / "private")
        try:
            pair.primary.stop()
            pair.wait_status("Slave_IO_Running", "Connecting")
        except BaseException:
            pair.stop()
            raise
        toml = _toml(check_name, pair.replica.port,
                     password_file=_password_file(workdir, MONITOR_PASSWORD))
        return Scenario(toml, Status.CRITICAL,
                        "the primary stopped: the replica's IO thread is reconnecting", pair.stop)
    raise ValueError(f"unknown scenario kind {kind!r}; one of {', '.join(KINDS)}")
