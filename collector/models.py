"""Every table of the collector, gathered so Alembic and the tests see one metadata."""

from __future__ import annotations

from collector.db import Base
from collector.hosts.models import Customer, Host
from collector.ingest.models import Result
from collector.state.models import CheckState, StatusChange

metadata = Base.metadata

__all__ = ["CheckState", "Customer", "Host", "Result", "StatusChange", "metadata"]
