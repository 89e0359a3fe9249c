"""Alembic environment: runs on the connection the collector passes in, or on -x url=..."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from collector.models import metadata
from collector.settings import normalize_database_url

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("give the database with: alembic -x url=<database URL> ...")
    engine = create_engine(normalize_database_url(url))
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()
