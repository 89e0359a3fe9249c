"""Migrations: alembic upgrade head builds the schema; the models and the migrations agree."""

from __future__ import annotations

import threading

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from collector.db import alembic_config, create_db_engine, migrate
from collector.models import metadata
from collector.settings import Settings, normalize_database_url

TABLES = {"customers", "hosts", "results", "check_states", "status_changes",
          "problem_states", "engine_states", "tickets", "ticket_events", "ticket_escalations",
          "ticket_breaches", "notifications", "users", "api_tokens", "maintenance_windows",
          "web_sessions", "rt_changes", "rt_links",
          "alembic_version"}


def test_alembic_upgrade_head_on_an_empty_store_matches_the_models(db_url):
    cfg = alembic_config()
    cfg.cmd_opts = type("Opts", (), {"x": [f"url={db_url}"]})()
    command.upgrade(cfg, "head")
    engine = create_engine(normalize_database_url(db_url))
    try:
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == TABLES
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_migrate_is_idempotent_and_safe_to_run_concurrently(db_url):
    settings = Settings.model_validate({"database": {"url": db_url}})
    engines = [create_db_engine(settings) for _ in range(3)]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            migrate(engines[i])
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        migrate(engines[0])
        with engines[0].connect() as conn:
            assert set(inspect(conn).get_table_names()) == TABLES
    finally:
        for engine in engines:
            engine.dispose()


def test_collectors_opening_a_new_sqlite_store_at_once_all_get_wal(tmp_path):
    # SQLite refuses a racing journal-mode switch at once ("database is locked") instead
    # of waiting: collectors starting together on a new store must not fail on it.
    errors: list[BaseException] = []
    for n in range(15):
        url = f"sqlite:///{tmp_path}/store{n}.db"
        settings = Settings.model_validate({"database": {"url": url}})
        engines = [create_db_engine(settings) for _ in range(6)]
        barrier = threading.Barrier(len(engines))

        def open_one(engine, barrier: threading.Barrier) -> None:
            barrier.wait()
            try:
                with engine.connect() as conn:
                    assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=open_one, args=(e, barrier)) for e in engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for engine in engines:
            engine.dispose()
    assert errors == []


def test_upgrading_a_store_with_failing_checks_hands_them_to_the_ticket_engine(db_url):
    # A store from before the ticket engine: its failing states must not wait for a
    # change of status to be seen, and its OK ones are no work.
    cfg = alembic_config()
    cfg.cmd_opts = type("Opts", (), {"x": [f"url={db_url}"]})()
    command.upgrade(cfg, "0002")
    engine = create_engine(normalize_database_url(db_url))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO customers (id, name, created_at) VALUES (1, 'acme', 0)")
            conn.exec_driver_sql(
                "INSERT INTO hosts (id, customer_id, fqdn, token_hash, enrolled_at, critical)"
                " VALUES (1, 1, 'db1', 'x', 0, false)")
            for check, status in (("disk", 2), ("ntp", 0)):
                conn.exec_driver_sql(
                    'INSERT INTO check_states (host_id, "check", target, type, status, summary,'
                    " metrics, details, last_result_at, last_change_at)"
                    f" VALUES (1, '{check}', '', '{check}', {status}, '', '[]', '{{}}', 0, 0)")
        command.upgrade(cfg, "head")
        with engine.connect() as conn:
            rows = dict(conn.exec_driver_sql(
                'SELECT "check", dirty FROM check_states').fetchall())
        assert rows == {"disk": True, "ntp": False}
    finally:
        engine.dispose()
