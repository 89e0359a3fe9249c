"""Start a private PostgreSQL server for tests: its own data directory, port and socket.

The server runs from the installed PostgreSQL binaries (found with ``pg_config --bindir``
or under ``/usr/lib/postgresql/<version>/bin``), with trust authentication, listening on
loopback and on a unix socket inside its temporary directory. PostgreSQL refuses to run
as root, so under root the data directory is handed to the ``postgres`` user and the
server runs through ``runuser``.

A missing binary is an error (``PostgresUnavailable``), never a reason to skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.ports import free_port


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed or the server would not start."""


def find_bindir() -> Path:
    """The directory holding initdb, pg_ctl and postgres."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(Path(p) for p in versions)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found; install the 'postgresql' package"
    )


@dataclass
class PostgresServer:
    """A running private server; ``url(db)`` names a database on it."""

    bindir: Path
    workdir: Path
    port: int
    _as_postgres: bool = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def socket_dir(self) -> Path:
        return self.workdir / "run"

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (psycopg 3 driver) over the unix socket."""
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def tcp_url(self, database: str = "postgres") -> str:
        """The same database over loopback TCP, for processes that prefer it."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run one SQL statement with psql and return its unaligned output."""
        out = _run(
            [str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres",
             "-d", database, "-c", sql],
            as_postgres=False,
        )
        return out.strip()

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory."""
        if self._stopped:
            return
        self._stopped = True
        try:
            _run(
                [str(self.bindir / "pg_ctl"), "-D", str(self.workdir / "data"), "-m", "fast",
                 "-w", "stop"],
                as_postgres=self._as_postgres,
                check=False,
            )
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _run(
    argv: Sequence[str], *, as_postgres: bool, check: bool = True
) -> str:
    cmd = ["runuser", "-u", "postgres", "--", *argv] if as_postgres else list(argv)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    if check and proc.returncode != 0:
        raise PostgresUnavailable(
            f"{' '.join(argv[:2])} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}"
        )
    return proc.stdout


def start_postgres() -> PostgresServer:
    """Initialise and start a private PostgreSQL server; call ``stop()`` when done."""
    bindir = find_bindir()
    as_postgres = os.geteuid() == 0
    workdir = Path(tempfile.mkdtemp(prefix="wk-pg-"))
    data = workdir / "data"
    (workdir / "run").mkdir()
    if as_postgres:
        shutil.chown(workdir, "postgres", "postgres")
        shutil.chown(workdir / "run", "postgres", "postgres")
    port = free_port()
    server = PostgresServer(bindir, workdir, port, as_postgres)
    try:
        _run(
            [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
             "-E", "UTF8", "--no-sync", "--locale=C"],
            as_postgres=as_postgres,
        )
        options = (
            f"-p {port} -k {workdir / 'run'} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        _run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
             str(workdir / "server.log"), "-w", "-t", "60", "start"],
            as_postgres=as_postgres,
        )
    except BaseException:
        log = workdir / "server.log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        server.stop()
        if detail:
            raise PostgresUnavailable(f"PostgreSQL did not start:\n{detail}") from None
        raise
    return server
