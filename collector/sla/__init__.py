"""SLA clocks: business calendars, business-time arithmetic, and commitment due times."""

from collector.sla.business import (
    add_business_days,
    add_business_seconds,
    business_seconds_between,
    is_business_time,
    next_business_instant,
)
from collector.sla.calendar import (
    DEFAULT_CALENDAR,
    BusinessCalendar,
    UnknownCalendarError,
    calendar_from_table,
    calendar_named,
    calendars_from_table,
)
from collector.sla.clock import (
    PRIORITIES,
    SAME_TIME_NEXT_BUSINESS_DAY,
    ClockKind,
    Commitment,
    Pause,
    RunningClock,
    SlaPolicy,
    SlaState,
    Timing,
    Verdict,
    add_commitment,
    due_at,
    first_response_due,
    judge,
    next_update_due,
    priority_key,
    restart_clock,
    sla_policy_from_table,
)
from collector.timefmt import as_utc

__all__ = [
    "DEFAULT_CALENDAR", "PRIORITIES", "SAME_TIME_NEXT_BUSINESS_DAY", "BusinessCalendar",
    "ClockKind", "Commitment", "Pause", "RunningClock", "SlaPolicy", "SlaState", "Timing",
    "UnknownCalendarError", "Verdict", "calendar_named",
    "add_business_days", "add_business_seconds", "add_commitment", "as_utc",
    "business_seconds_between", "calendar_from_table", "calendars_from_table", "due_at",
    "first_response_due", "is_business_time", "judge", "next_business_instant",
    "next_update_due", "priority_key", "restart_clock", "sla_policy_from_table",
]
