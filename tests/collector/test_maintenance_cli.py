"""watchkeeper-collector maintenance add / list / delete."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from collector.cli import main
from collector.db import create_db_engine
from collector.maintenance.models import MaintenanceWindow
from collector.settings import load_settings
from collector.tickets.models import TicketEvent

KYIV = ZoneInfo("Europe/Kyiv")


@pytest.fixture
def config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A SQLite store with customers acme (Kyiv calendar; db1) and globex (UTC; gx1)."""
    path = tmp_path / "collector.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/store/wk.db"\n'
        '[calendars.kyiv]\ntimezone = "Europe/Kyiv"\n'
        '[customers.acme]\ncalendar = "kyiv"\n'
    )
    for customer, host in (("acme", "db1.acme.example"), ("globex", "gx1.globex.example")):
        assert main(["enroll", "--customer", customer, "--host", host,
                     "--config", str(path)]) == 0
    capsys.readouterr()
    return path


def stored(config: Path) -> list[MaintenanceWindow]:
    engine = create_db_engine(load_settings(config))
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(MaintenanceWindow).order_by(
                MaintenanceWindow.id)).all())
    finally:
        engine.dispose()


def tomorrow() -> str:
    return (datetime.now(KYIV) + timedelta(days=1)).date().isoformat()


def run(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main([*args, "--config", str(config)])
    out, err = capsys.readouterr()
    return code, out, err


def test_add_list_delete_round_trip(config, capsys):
    day = tomorrow()
    code, out, err = run(config, capsys, "maintenance", "add", "--customer", "acme",
                         "--host", "db1.acme.example", "--start", f"{day}T02:00",
                         "--end", f"{day}T04:00", "--every", "day", "--until", "2099-12-31",
                         "--reason", "nightly backup", "--by", "alice")
    assert code == 0, err
    window_id = int(out.strip())
    assert f"added maintenance window {window_id}" in err
    [row] = stored(config)
    # No offset given: local time in the customer's calendar's zone (Kyiv).
    first = datetime.fromisoformat(f"{day}T02:00").replace(tzinfo=KYIV)
    assert (row.timezone, row.recurrence, row.host, row.check) == (
        "Europe/Kyiv", "daily", "db1.acme.example", None)
    assert (row.starts_at, row.ends_at - row.starts_at) == (first.timestamp(), 7200)
    assert row.until == datetime(2100, 1, 1, tzinfo=KYIV).timestamp() - 1
    assert (row.created_by, row.reason) == ("alice", "nightly backup")

    code, out, _ = run(config, capsys, "maintenance", "list", "--customer", "acme")
    assert code == 0
    [line] = out.splitlines()
    fields = line.split("\t")
    assert fields[:4] == [str(window_id), "acme", "db1.acme.example", "*"]
    assert fields[4].startswith(f"daily 02:00-04:00 Europe/Kyiv from {day} until ")
    assert fields[6] == "nightly backup"
    assert fields[5] == f"next {first.astimezone(UTC):%Y-%m-%dT%H:%M:%S.000Z}"
    assert run(config, capsys, "maintenance", "list", "--customer", "globex")[1] == ""
    assert run(config, capsys, "maintenance", "list", "--active")[1] == ""

    code, _, err = run(config, capsys, "maintenance", "delete", str(window_id), "--by", "bob")
    assert code == 0 and "deleted maintenance window" in err and "nightly backup" in err
    assert stored(config) == []
    assert run(config, capsys, "maintenance", "list")[1] == ""
    engine = create_db_engine(load_settings(config))
    try:
        with engine.connect() as conn:
            audit = conn.execute(select(TicketEvent.kind, TicketEvent.actor)
                                 .order_by(TicketEvent.id)).all()
    finally:
        engine.dispose()
    assert [tuple(a) for a in audit] == [("maintenance_created", "alice"),
                                         ("maintenance_deleted", "bob")]


def test_an_active_window_is_listed_as_active_with_its_end(config, capsys):
    now = datetime.fromtimestamp(time.time(), UTC)
    start = (now - timedelta(minutes=5)).isoformat()
    end = (now + timedelta(hours=1)).replace(microsecond=0)
    code, out, err = run(config, capsys, "maintenance", "add", "--customer", "globex",
                         "--start", start, "--end", end.isoformat(), "--reason", "move rack")
    assert code == 0, err
    [row] = stored(config)
    assert row.timezone == "UTC"  # globex has no calendar: the default one, UTC
    code, out, _ = run(config, capsys, "maintenance", "list", "--active")
    fields = out.strip().split("\t")
    assert fields[1:4] == ["globex", "*", "*"]
    assert fields[5] == f"active until {end:%Y-%m-%dT%H:%M:%S.000Z}"


@pytest.mark.parametrize(("args", "message"), [
    (["--host", "gx1.globex.example"], "--host: host 'gx1.globex.example' does not belong"),
    (["--check", "disk"], "--check: a window for one check needs the host"),
    (["--timezone", "Mars/Olympus"], "--timezone: unknown time zone 'Mars/Olympus'"),
    (["--until", "yesterday"], "--until: 'yesterday' is not an ISO 8601 time"),
    (["--every", "day", "--until", "2000-01-01"], "--until: must be after the window's"),
    (["--end", "2000-01-01T00:00Z"], "--end: the window must end after it starts"),
])
def test_add_refuses_bad_input_naming_the_option(config, capsys, args, message):
    day = tomorrow()
    base = {"--customer": "acme", "--start": f"{day}T02:00", "--end": f"{day}T04:00",
            "--reason": "upgrade"}
    for option, value in zip(args[::2], args[1::2], strict=True):
        base[option] = value
    argv = [item for pair in base.items() for item in pair]
    code, out, err = run(config, capsys, "maintenance", "add", *argv)
    assert (code, out) == (2, "")
    assert message in err
    assert stored(config) == []


def test_list_and_delete_name_what_is_wrong(config, capsys):
    code, _, err = run(config, capsys, "maintenance", "list", "--customer", "initech")
    assert code == 2 and "--customer: no customer 'initech'" in err
    code, _, err = run(config, capsys, "maintenance", "delete", "42")
    assert code == 2 and "ID: no maintenance window 42" in err
    code, _, err = run(config, capsys, "maintenance", "delete", "first")
    assert code == 2 and "ID: a maintenance window id is a number, got 'first'" in err


def test_add_without_a_required_option_is_a_usage_error(config, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["maintenance", "add", "--customer", "acme", "--start", "2099-01-01T00:00Z",
              "--end", "2099-01-01T01:00Z", "--config", str(config)])
    assert exited.value.code == 2
    assert "--reason" in capsys.readouterr().err
