"""Every table of the collector, gathered so Alembic and the tests see one metadata."""

from __future__ import annotations

from collector.db import Base
from collector.hosts.models import Customer, Host
from collector.ingest.models import Result
from collector.maintenance.models import MaintenanceWindow
from collector.notify.models import Notification
from collector.people.models import ApiToken, User
from collector.problems.models import EngineState, ProblemRecord
from collector.rt.models import RtChange, RtLink
from collector.state.models import CheckState, StatusChange
from collector.tickets.models import Ticket, TicketBreach, TicketEscalation, TicketEvent

metadata = Base.metadata

__all__ = ["ApiToken", "CheckState", "Customer", "EngineState", "Host", "MaintenanceWindow",
           "Notification", "ProblemRecord", "Result", "RtChange", "RtLink", "StatusChange",
           "Ticket", "TicketBreach", "TicketEscalation", "TicketEvent", "User", "metadata"]
