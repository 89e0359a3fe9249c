"""What the collector's subcommands share: the handler type, the error exit, the store."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from collector.db import create_db_engine, migrate, write_transaction
from collector.settings import Settings

EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace, Settings], int]
"""A collector subcommand: the parsed arguments and the settings in, the exit status out."""


def fail(message: str) -> int:
    """Print a usage error (naming the argument that is wrong) and return exit status 2."""
    print(f"watchkeeper-collector: {message}", file=sys.stderr)
    return EXIT_USAGE


def in_store(settings: Settings, work: Callable[[Connection], Any]) -> Any:
    """Run ``work`` in one write transaction on the configured store (migrated first)."""
    engine = create_db_engine(settings)
    try:
        migrate(engine)
        with write_transaction(engine) as conn:
            return work(conn)
    finally:
        engine.dispose()
