"""BackupCheck against dumps made by the real dump tools: mariadb-dump and pg_dump.

A private MariaDB server (its own data directory, a unix socket, no TCP) and a private
PostgreSQL server (``tests/services/postgres.py``) are started for this module and stopped
at its end. The dumps are made the way backup scripts make them (``dump | gzip > file``),
including the ways they fail: the dump tool stops with an error half-way and the pipe
still leaves a well-formed gzip file behind. A missing binary fails, naming its package.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from checks.backup import BackupCheck, BackupConfig
from checks.config import build as build_config
from checks.registry import CheckContext
from checks.result import CheckResult, Status
from tests.checks.backup_scenarios import HOUR, set_age, tool
from tests.services.postgres import PostgresServer, start_postgres

pytestmark = pytest.mark.integration

NOW = time.time()


def binary(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    assert found, f"{name} is not installed: install the Debian package '{package}'"
    return found


@dataclass
class MariaDB:
    """A private MariaDB server reachable only through its unix socket."""

    socket: Path
    process: subprocess.Popen[bytes]

    def sql(self, statements: str) -> None:
        """Run SQL statements with the mariadb client; an error names what the server said."""
        done = subprocess.run([binary("mariadb", "mariadb-client"), "-S", str(self.socket),
                               "-uroot", "-e", statements], capture_output=True, timeout=60)
        if done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout,
                                                done.stderr)

    def dump_command(self, *args: str) -> list[str]:
        return [binary("mariadb-dump", "mariadb-client"), "-S", str(self.socket), "-uroot",
                *args]


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    workdir = tmp_path_factory.mktemp("mariadb")
    data, socket = workdir / "data", workdir / "mysqld.sock"
    subprocess.run(
        [binary("mariadb-install-db", "mariadb-server"), "--no-defaults", f"--datadir={data}",
         "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"],
        check=True, capture_output=True, timeout=120,
    )
    process = subprocess.Popen(
        [binary("mariadbd", "mariadb-server"), "--no-defaults", f"--datadir={data}",
         "--user=root", "--skip-networking", f"--socket={socket}",
         f"--pid-file={workdir / 'mysqld.pid'}", f"--log-error={workdir / 'error.log'}",
         "--innodb-buffer-pool-size=16M"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    server = MariaDB(socket, process)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                server.sql("SELECT 1")
                break
            except subprocess.CalledProcessError:
                log = (workdir / "error.log")
                assert process.poll() is None, \
                    f"mariadbd exited:\n{log.read_text(errors='replace')[-2000:]}"
                assert time.monotonic() < deadline, "mariadbd did not answer within 60 s"
                time.sleep(0.2)
        setup = (
            "CREATE DATABASE billing; USE billing; "
            "CREATE TABLE billing.cdr (id INT PRIMARY KEY, caller VARCHAR(20), seconds INT); "
            "INSERT INTO billing.cdr SELECT seq, CONCAT('+3531', seq), seq % 3600 "
            "FROM seq_1_to_20000; "
            "CREATE DATABASE broken; CREATE TABLE broken.t (x INT); "
            "CREATE VIEW broken.v AS SELECT x FROM broken.t; DROP TABLE broken.t;"
        )
        try:
            server.sql(setup)
        except subprocess.CalledProcessError as err:
            raise AssertionError(f"setting up MariaDB failed: {err.stderr!r}") from None
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = start_postgres()
    try:
        server.psql("CREATE TABLE cdr (id int PRIMARY KEY, caller text, seconds int)")
        server.psql("INSERT INTO cdr SELECT i, '+3531' || i, i % 3600 "
                    "FROM generate_series(1, 20000) i")
        yield server
    finally:
        server.stop()


def dump_to(path: Path, command: list[str], *, compress: bool) -> int:
    """``command > path`` or ``command | gzip > path``, as a backup script does; its exit code."""
    with open(path, "wb") as out:
        if not compress:
            return subprocess.run(command, stdout=out, stderr=subprocess.DEVNULL,
                                  timeout=120).returncode
        dump = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert dump.stdout is not None
        gzip = subprocess.run([tool("gzip"), "-c"], stdin=dump.stdout, stdout=out, timeout=120)
        dump.stdout.close()
        assert gzip.returncode == 0  # gzip is content: the pipe hides the dump's failure
        return dump.wait(timeout=120)


def check(directory: Path, pattern: str) -> CheckResult:
    config = build_config(BackupConfig, {"sets": [{"name": "db", "directory": str(directory),
                                                   "pattern": pattern}]}, key="checks.backup")
    context = CheckContext(name="backup", state_dir=Path("/nonexistent"), clock=lambda: NOW)
    results = BackupCheck(config, context).run()
    assert len(results) == 1
    return results[0]


@pytest.mark.parametrize(("compress", "pattern", "fmt"), [
    (False, "billing-*.sql", "mysqldump"),
    (True, "billing-*.sql.gz", "gzip+mysqldump"),
])
def test_a_whole_mariadb_dump_is_ok(mariadb: MariaDB, tmp_path: Path, compress: bool,
                                    pattern: str, fmt: str) -> None:
    path = tmp_path / pattern.replace("*", "2026-11-20")
    assert dump_to(path, mariadb.dump_command("billing"), compress=compress) == 0
    set_age(path, NOW, HOUR)
    result = check(tmp_path, pattern)
    assert result.status is Status.OK, result.summary
    assert result.details["integrity"]["format"] == fmt
    assert result.details["integrity"]["verdict"] == "ok"


def test_a_mariadb_dump_that_failed_half_way_is_incomplete(mariadb: MariaDB,
                                                           tmp_path: Path) -> None:
    # The broken view stops mariadb-dump with an error after it began writing.
    path = tmp_path / "broken-2026-11-20.sql.gz"
    assert dump_to(path, mariadb.dump_command("broken"), compress=True) != 0
    set_age(path, NOW, HOUR)
    assert path.stat().st_size > 100
    result = check(tmp_path, "broken-*.sql.gz")
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "incomplete")
    assert result.summary == "backup broken-2026-11-20.sql.gz has no mysqldump completion line"


def test_a_dump_of_a_missing_database_is_incomplete(mariadb: MariaDB, tmp_path: Path) -> None:
    path = tmp_path / "gone-2026-11-20.sql.gz"
    assert dump_to(path, mariadb.dump_command("no_such_db"), compress=True) != 0
    set_age(path, NOW, HOUR)
    result = check(tmp_path, "gone-*.sql.gz")
    assert result.status is Status.CRITICAL
    assert result.details["condition"] == "incomplete", result.summary


def test_a_killed_mariadb_dump_is_caught(mariadb: MariaDB, tmp_path: Path) -> None:
    whole = tmp_path / "whole.sql"
    assert dump_to(whole, mariadb.dump_command("--skip-extended-insert", "billing"),
                   compress=False) == 0
    text = whole.read_bytes()
    whole.unlink()
    # What a dump killed after writing half of its rows leaves, cut at a line end.
    path = tmp_path / "billing-2026-11-20.sql"
    path.write_bytes(text[: text.index(b"\n", len(text) // 2) + 1])
    set_age(path, NOW, HOUR)
    result = check(tmp_path, "billing-*.sql")
    assert (result.status, result.details["condition"]) == (Status.CRITICAL, "incomplete")


@pytest.mark.parametrize(("compress", "pattern", "fmt"), [
    (False, "pg-*.sql", "pg_dump"),
    (True, "pg-*.sql.gz", "gzip+pg_dump"),
])
def test_a_whole_pg_dump_is_ok_and_a_cut_one_is_incomplete(
    postgres: PostgresServer, tmp_path: Path, compress: bool, pattern: str, fmt: str,
) -> None:
    command = [str(postgres.bindir / "pg_dump"), "-h", str(postgres.socket_dir), "-p",
               str(postgres.port), "-U", "postgres", "postgres"]
    path = tmp_path / pattern.replace("*", "2026-11-20")
    assert dump_to(path, command, compress=compress) == 0
    set_age(path, NOW, HOUR)
    result = check(tmp_path, pattern)
    assert result.status is Status.OK, result.summary
    assert result.details["integrity"]["format"] == fmt

    if not compress:
        text = path.read_bytes()
        path.write_bytes(text[: text.index(b"\n", len(text) // 2) + 1])
        set_age(path, NOW, HOUR)
        result = check(tmp_path, pattern)
        assert (result.status, result.details["condition"]) == (Status.CRITICAL, "incomplete")
        assert result.summary.endswith("has no pg_dump completion line")
