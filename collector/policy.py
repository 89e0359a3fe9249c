"""The support policy as the collector applies it, built once from the settings.

The policy's tables live in the collector's TOML (``[problems]``, ``[priority]``, ``[sla]``,
``[calendars]``, ``[escalation]``, ``[agent_versions]``, ``[customers]``); each is parsed by
the module that applies it, and a wrong key raises a ConfigError naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from checks.config import ConfigError
from collector.problems.config import ProblemRules
from collector.settings import CustomerSettings, Settings
from collector.sla.calendar import (
    BusinessCalendar,
    UnknownCalendarError,
    calendar_named,
    calendars_from_table,
)
from collector.sla.clock import SlaPolicy, sla_policy_from_table
from collector.tickets.escalation import EscalationMatrix
from collector.tickets.policy import PriorityPolicy
from collector.tickets.versions import VersionWindow

_NO_CUSTOMER = CustomerSettings()


@dataclass(frozen=True)
class Policy:
    """Every rule the ticket engine applies."""

    problems: ProblemRules
    priority: PriorityPolicy
    sla: SlaPolicy
    calendars: Mapping[str, BusinessCalendar]
    escalation: EscalationMatrix
    versions: VersionWindow
    customers: Mapping[str, CustomerSettings]

    def customer(self, name: str) -> CustomerSettings:
        """A customer's settings; a customer not in the config gets the defaults."""
        return self.customers.get(name, _NO_CUSTOMER)

    def calendar_for(self, customer: str) -> BusinessCalendar:
        """The business calendar of a customer (the ``default`` one unless configured)."""
        return calendar_named(self.calendars, self.customer(customer).calendar)


def build_policy(settings: Settings) -> Policy:
    """The policy from the settings; ConfigError names the key that is wrong."""
    calendars = calendars_from_table(settings.calendars)
    for name, customer in settings.customers.items():
        try:
            calendar_named(calendars, customer.calendar)
        except UnknownCalendarError as exc:
            raise ConfigError(f"customers.{name}.calendar", str(exc)) from None
    return Policy(
        problems=ProblemRules.from_table(settings.problems),
        priority=PriorityPolicy.from_table(settings.priority),
        sla=sla_policy_from_table(settings.sla),
        calendars=calendars,
        escalation=EscalationMatrix.from_table(settings.escalation),
        versions=VersionWindow.from_table(settings.agent_versions),
        customers=dict(settings.customers),
    )
