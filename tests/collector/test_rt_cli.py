"""watchkeeper-collector rt check / rt backlog: against a real Request Tracker 5 (the
session's, loaded with deploy/rt/watchkeeper.initialdata), and on a real store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import update

from collector.cli import main
from collector.db import create_db_engine, write_transaction
from collector.policy import build_policy
from collector.rt.models import CHANGES, DEAD, set_enabled
from collector.settings import load_settings
from collector.tickets import service
from tests.collector.test_tickets_api import _open
from tests.services.rt import CONNECTOR_USER

FAILED_CREATE = "POST /REST/2.0/ticket: RT answered 503:\n  Service Unavailable"


def write_config(tmp_path: Path, rt: str | None, customers: str = "") -> Path:
    path = tmp_path / "collector.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/store/wk.db"\n'
                    + (rt or "") + customers)
    return path


def rt_section(url: str, token_file: Path, queue: str = "General") -> str:
    return (f'[request_tracker]\nurl = "{url}"\nuser = "{CONNECTOR_USER}"\n'
            f'token_file = "{token_file}"\nqueue = "{queue}"\ntimeout = 20\n')


def run(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main([*args, "--config", str(config)])
    out, err = capsys.readouterr()
    return code, out, err


def lines_of(out: str) -> dict[str, str]:
    """``OK  reachable: ...`` lines by what they check: {"reachable": "OK ...", ...}."""
    found: dict[str, str] = {}
    for line in out.splitlines():
        verdict, _, rest = line.partition("  ")
        what, _, detail = rest.strip().partition(": ")
        assert verdict.strip() in ("OK", "FAIL"), line
        found[what] = f"{verdict.strip()} {detail}"
    return found


# ------------------------------------------------------------------------------ rt check


def test_check_passes_against_an_rt_set_up_as_documented(rt_server, rt_token, tmp_path, capsys):
    token_file = tmp_path / "rt.token"
    token_file.write_text(rt_token + "\n")
    config = write_config(tmp_path, rt_section(rt_server.url, token_file))
    code, out, err = run(config, capsys, "rt", "check")
    assert code == 0, out + err
    checks = lines_of(out)
    assert list(checks) == ["reachable", "authenticated", "time zone", "queue", "key field",
                            "search"]
    assert all(verdict.startswith("OK ") for verdict in checks.values()), out
    assert checks["authenticated"].startswith(f"OK as {CONNECTOR_USER}")
    assert "Watchkeeper Key" in checks["key field"]
    assert rt_token not in out + err  # the secret is never shown


def test_a_wrong_token_fails_naming_the_credentials(rt_server, tmp_path, capsys):
    token_file = tmp_path / "rt.token"
    token_file.write_text("not-a-token-rt-knows\n")
    config = write_config(tmp_path, rt_section(rt_server.url, token_file))
    code, out, err = run(config, capsys, "rt", "check")
    assert code == 1
    checks = lines_of(out)
    assert checks["reachable"].startswith("OK ")
    assert checks["authenticated"].startswith("FAIL ")
    assert "credentials" in checks["authenticated"] and CONNECTOR_USER in checks["authenticated"]
    assert "not-a-token-rt-knows" not in out + err
    assert "rt check: " in err and "failed" in err


def test_a_customer_s_unknown_queue_fails(rt_server, rt_token, tmp_path, capsys):
    token_file = tmp_path / "rt.token"
    token_file.write_text(rt_token)
    config = write_config(tmp_path, rt_section(rt_server.url, token_file),
                          '[customers.globex]\nrt_queue = "No Such Queue"\n')
    code, out, _ = run(config, capsys, "rt", "check")
    assert code == 1
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1 and "'No Such Queue' not found" in fails[0], out
    # the default queue's lines are all OK, and the steps before the queue shown once
    assert out.count("reachable:") == 1 and out.count("OK    queue: General") == 1


def test_an_unreadable_token_file_fails_without_asking_rt(rt_server, tmp_path, capsys):
    config = write_config(tmp_path, rt_section(rt_server.url, tmp_path / "missing.token"))
    code, out, _ = run(config, capsys, "rt", "check")
    assert code == 1
    assert out.startswith("FAIL  credentials: ") and "missing.token" in out


def test_check_without_the_section_is_a_usage_error(tmp_path, capsys):
    config = write_config(tmp_path, None)
    code, out, err = run(config, capsys, "rt", "check")
    assert code == 2
    assert out == ""
    assert "[request_tracker]" in err


# ---------------------------------------------------------------------------- rt backlog


def test_backlog_counts_and_lists_the_changes_not_in_rt(tmp_path, capsys):
    config = write_config(tmp_path, rt_section("https://rt.example.net", tmp_path / "t"))
    assert main(["enroll", "--customer", "acme", "--host", "db1.acme.example",
                 "--config", str(config)]) == 0
    capsys.readouterr()  # the host's token
    code, out, _ = run(config, capsys, "rt", "backlog")
    assert (code, out.splitlines()) == (0, ["in step: no change waits for RT", "given up: 0"])

    settings = load_settings(config)
    engine = create_db_engine(settings)
    now = time.time()
    try:
        set_enabled(engine, True, now=now - 4000)
        with write_transaction(engine) as conn:
            disk = _open(conn, settings, customer="acme", host="db1.acme.example",
                         check="disk", priority="P2", at=now - 3600)
            service.reply(conn, disk, text="On it.", actor="tess",
                          policy=build_policy(settings), settings=settings, now=now - 3000)
            mysql = _open(conn, settings, customer="acme", host="db1.acme.example",
                          check="mysql", priority="P3", at=now - 600)
            c = CHANGES.c
            first = conn.execute(CHANGES.select().where(c.ticket_id == disk)
                                 .order_by(c.id)).first()
            assert first is not None
            conn.execute(update(CHANGES).where(c.id == first.id).values(
                attempts=4, last_error=FAILED_CREATE, next_attempt_at=now + 300))
            conn.execute(update(CHANGES).where(c.ticket_id == mysql).values(
                state=DEAD, attempts=10, last_error="RT answered 400: Queue not found"))
    finally:
        engine.dispose()

    code, out, _ = run(config, capsys, "rt", "backlog")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "2 changes waiting for RT (1 ticket), oldest 60m"
    assert lines[1:4] == ["failing: 1 (their last try failed)",
                          "last error: POST /REST/2.0/ticket: RT answered 503: Service "
                          "Unavailable",
                          "given up: 1"]
    rows = [line.split("\t") for line in lines[4:]]
    assert rows[0] == ["ticket", "event", "state", "attempts", "next try", "last error"]
    assert [row[:4] for row in rows[1:]] == [[f"#{disk}", "opened", "pending", "4"],
                                             [f"#{disk}", "reply", "pending", "0"],
                                             [f"#{mysql}", "opened", "dead", "10"]]
    assert rows[1][4].endswith("UTC (in 5m)") or rows[1][4].endswith("UTC (in 4m)")
    assert rows[1][5] == "POST /REST/2.0/ticket: RT answered 503: Service Unavailable"
    assert rows[2][4:] == ["now", ""]
    assert rows[3][4:] == ["never (given up)", "RT answered 400: Queue not found"]

    code, out, _ = run(config, capsys, "rt", "backlog", "--limit", "1")
    assert out.splitlines()[-1] == "... and 2 more (--limit)"


def test_backlog_without_the_section_says_nothing_is_queued(tmp_path, capsys):
    config = write_config(tmp_path, None)
    code, out, _ = run(config, capsys, "rt", "backlog")
    assert code == 0
    assert out.splitlines()[0] == ("Request Tracker is not configured ([request_tracker]): "
                                   "no change is queued")
