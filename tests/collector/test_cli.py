"""watchkeeper-collector enroll / migrate / hosts, and config errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from collector.cli import main
from collector.db import create_db_engine, session_factory
from collector.hosts.models import Host
from collector.hosts.service import hash_token, list_hosts
from collector.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "collector.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/store/wk.db"\n')
    return path


def stored_hashes(config: Path) -> list[str]:
    engine = create_db_engine(load_settings(config))
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(Host.token_hash)).scalars())
    finally:
        engine.dispose()


def test_enroll_prints_the_token_once_and_stores_only_its_hash(config, tmp_path, capsys):
    code = main(["enroll", "--customer", "acme", "--host", "db1.example.net",
                 "--config", str(config)])
    out, err = capsys.readouterr()
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 1
    token = lines[0]
    assert len(token) >= 40 and " " not in token
    assert "shown only once" in err and token not in err
    assert stored_hashes(config) == [hash_token(token)]
    for file in (tmp_path / "store").iterdir():  # the database, its WAL and shm
        assert token.encode() not in file.read_bytes(), file


def test_re_enroll_needs_rotate_and_replaces_the_token(config, capsys):
    args = ["enroll", "--customer", "acme", "--host", "db1.example.net", "--config", str(config)]
    assert main(args) == 0
    first = capsys.readouterr().out.strip()

    assert main(args) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "--rotate" in err and "already enrolled" in err
    assert stored_hashes(config) == [hash_token(first)]

    assert main([*args, "--rotate"]) == 0
    second = capsys.readouterr().out.strip()
    assert second != first
    assert stored_hashes(config) == [hash_token(second)]

    assert main(["hosts", "--config", str(config)]) == 0
    assert "db1.example.net" in capsys.readouterr().out


def test_config_error_names_file_and_key_and_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[ingest]\nmax_body_bytez = 10\n')
    assert main(["migrate", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "ingest.max_body_bytez" in err


def test_enroll_without_config_uses_sqlite_under_var(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env = {k: v for k, v in env.items() if not k.startswith("WATCHKEEPER_")}
    proc = subprocess.run(
        [sys.executable, "-m", "collector.cli", "enroll", "--customer", "acme",
         "--host", "web1.example.net", "--critical"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 1
    assert (tmp_path / "var" / "watchkeeper.db").exists()


def test_enroll_tags_a_host_for_the_priority_rules_and_rotate_replaces_them(config, capsys):
    def tags() -> list[list[str]]:
        engine = create_db_engine(load_settings(config))
        try:
            with engine.connect() as conn:
                return list(conn.execute(select(Host.tags)).scalars())
        finally:
            engine.dispose()

    assert main(["enroll", "--customer", "acme", "--host", "db1.example.net", "--tag",
                 "billing", "--tag", "db", "--config", str(config)]) == 0
    assert tags() == [["billing", "db"]]
    assert main(["enroll", "--customer", "acme", "--host", "db1.example.net", "--rotate",
                 "--config", str(config)]) == 0
    assert tags() == [["billing", "db"]]  # kept when no --tag is given
    assert main(["enroll", "--customer", "acme", "--host", "db1.example.net", "--rotate",
                 "--tag", "softswitch", "--config", str(config)]) == 0
    assert tags() == [["softswitch"]]
    capsys.readouterr()
    engine = create_db_engine(load_settings(config))
    try:
        with session_factory(engine)() as session:
            (host,) = list_hosts(session=session)
    finally:
        engine.dispose()
    assert host.tags == ["softswitch"]  # as GET /api/v1/hosts shows them
