"""``watchkeeper-collector`` commands for maintenance windows."""

from __future__ import annotations

from typing import Any


def add_commands(sub: Any) -> None:
    """Add this domain's subcommands to the collector's command line."""
    del sub  # the commands are added as they are built
