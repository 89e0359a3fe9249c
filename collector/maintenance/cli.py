"""``watchkeeper-collector`` commands for maintenance windows.

    maintenance add --customer C [--host H] [--check K] --start ISO --end ISO
                    [--every day|week] [--until ISO] [--timezone TZ] --reason TEXT [--by NAME]
    maintenance list [--customer C] [--active]
    maintenance delete ID [--by NAME]

Times are ISO 8601; one without a UTC offset is a local time in the window's time zone
(``--timezone``, else the customer's calendar's). A date alone is midnight, except for
``--until``, where it means the end of that local day.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from datetime import time as wall_time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from checks.config import ConfigError
from collector.commands import fail, in_store
from collector.errors import CollectorError
from collector.hosts.models import Customer
from collector.maintenance import service
from collector.maintenance.models import DAILY, ONCE, WEEKLY
from collector.policy import build_policy
from collector.settings import Settings
from collector.timefmt import iso

EVERY = {"day": DAILY, "week": WEEKLY}
# The service's fields, as the options that give them.
OPTIONS = {
    "customer": "--customer", "host": "--host", "check": "--check", "starts_at": "--start",
    "ends_at": "--end", "recurrence": "--every", "timezone": "--timezone", "until": "--until",
    "reason": "--reason", "created_by": "--by",
}


def add_commands(sub: Any) -> None:
    """Add this domain's subcommands to the collector's command line."""
    parser = sub.add_parser("maintenance", help="maintenance windows: no ticket opens for "
                                                "what they cover")
    verbs = parser.add_subparsers(dest="maintenance_command", required=True)

    add = verbs.add_parser("add", help="add a window for a customer, one host, or one check")
    add.add_argument("--customer", required=True, help="the customer the window is for")
    add.add_argument("--host", help="only this host (FQDN) of the customer")
    add.add_argument("--check", help="only this check of --host")
    add.add_argument("--start", required=True,
                     help="first start, ISO 8601 (without an offset: local to --timezone)")
    add.add_argument("--end", required=True, help="first end, ISO 8601 (end exclusive)")
    add.add_argument("--every", choices=sorted(EVERY),
                     help="repeat daily or weekly at the same local time (default: once)")
    add.add_argument("--until", help="last day or time a repetition may start, ISO 8601")
    add.add_argument("--timezone", help="IANA time zone of the local times (default: the "
                                        "customer's calendar's, else UTC)")
    add.add_argument("--reason", required=True, help="why: shown on the problems it holds")
    add.add_argument("--by", help="who adds it (default: the login name)")
    _common(add, _add)

    listing = verbs.add_parser("list", help="list windows with their current or next time")
    listing.add_argument("--customer", help="only this customer's windows")
    listing.add_argument("--active", action="store_true", help="only windows covering now")
    _common(listing, _list)

    remove = verbs.add_parser("delete", help="delete a window (recorded in the audit log)")
    remove.add_argument("id", metavar="ID", help="the window's id (see 'maintenance list')")
    remove.add_argument("--by", help="who deletes it (default: the login name)")
    _common(remove, _delete)


def _common(parser: argparse.ArgumentParser, handler: Callable[..., int]) -> None:
    parser.add_argument("--config", help="TOML config file")
    parser.set_defaults(handler=handler)


class _BadArgument(Exception):
    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")




def _actor(given: str | None) -> str:
    if given:
        return given
    try:
        return getpass.getuser()
    except OSError:  # no login name in the environment or the password database
        return "cli"


def _when(option: str, text: str, zone: ZoneInfo, *, end_of_day: bool = False) -> float:
    """An ISO 8601 time; without an offset it is local to ``zone``."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        if end_of_day:
            return datetime.combine(day + timedelta(days=1), wall_time(), zone).timestamp() - 1
        return datetime.combine(day, wall_time(), zone).timestamp()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _BadArgument(option, f"{text!r} is not an ISO 8601 time such as "
                                   "2027-03-25T02:00+02:00") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.timestamp()


def _add(args: argparse.Namespace, settings: Settings) -> int:
    now = time.time()
    try:
        timezone = args.timezone
        if timezone is None:
            timezone = build_policy(settings).calendar_for(args.customer).timezone
        zone = service.zone_named(timezone)
        starts_at = _when("--start", args.start, zone)
        ends_at = _when("--end", args.end, zone)
        until = None if args.until is None else _when("--until", args.until, zone,
                                                      end_of_day=True)
        window_id = in_store(settings, lambda conn: service.create_window(
            conn, customer=args.customer, host=args.host, check=args.check,
            starts_at=starts_at, ends_at=ends_at,
            recurrence=EVERY[args.every] if args.every else ONCE, timezone=timezone,
            until=until, reason=args.reason, created_by=_actor(args.by), now=now,
            known_customers=settings.customers.keys()))
    except service.WindowError as exc:
        return fail(f"{OPTIONS.get(exc.field, exc.field)}: {exc.message}")
    except (_BadArgument, ConfigError) as exc:
        return fail(str(exc))
    print(f"added maintenance window {window_id}", file=sys.stderr)
    print(window_id)
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    now = time.time()

    def work(conn: Connection) -> list[service.Window]:
        customer_id = None
        if args.customer is not None:
            customer_id = conn.scalar(select(Customer.id).where(Customer.name == args.customer))
            if customer_id is None:
                raise _BadArgument("--customer", f"no customer {args.customer!r}")
        return service.list_windows(conn, customer_id=customer_id,
                                    active_at=now if args.active else None)

    try:
        windows: list[service.Window] = in_store(settings, work)
    except _BadArgument as exc:
        return fail(str(exc))
    for w in windows:
        print("\t".join((str(w.id), w.customer, w.host or "*", w.check or "*",
                         _schedule(w), _state(w, now), w.reason)))
    return 0


def _schedule(window: service.Window) -> str:
    """``daily 02:00-04:00 Europe/Kyiv from 2027-03-25 until 2027-04-30T23:59:59.000Z``."""
    zone = ZoneInfo(window.timezone)
    start = datetime.fromtimestamp(window.starts_at, zone)
    end = datetime.fromtimestamp(window.ends_at, zone)
    if window.recurrence == ONCE:
        return (f"once {start:%Y-%m-%d %H:%M} - {end:%Y-%m-%d %H:%M} {window.timezone}")
    until = f" until {iso(window.until)}" if window.until is not None else ""
    weekday = f" {start:%a}" if window.recurrence == WEEKLY else ""
    return (f"{window.recurrence}{weekday} {start:%H:%M}-{end:%H:%M} {window.timezone} "
            f"from {start:%Y-%m-%d}{until}")


def _state(window: service.Window, now: float) -> str:
    span = window.upcoming(now)
    if span is None:
        return "over"
    if span[0] <= now:
        return f"active until {iso(span[1])}"
    return f"next {iso(span[0])}"


def _delete(args: argparse.Namespace, settings: Settings) -> int:
    try:
        window_id = int(args.id)
    except ValueError:
        return fail(f"ID: a maintenance window id is a number, got {args.id!r}")
    try:
        window: service.Window = in_store(settings, lambda conn: service.delete_window(
            conn, window_id, actor=_actor(args.by), now=time.time()))
    except CollectorError as exc:
        return fail(f"ID: {exc.detail}")
    print(f"deleted maintenance window {window_id} ({window.customer}: {window.reason})",
          file=sys.stderr)
    return 0
