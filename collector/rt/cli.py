"""``watchkeeper-collector`` commands for the Request Tracker connector.

    rt check [--queue Q]   can the connector work with RT? one OK/FAIL line per step
    rt backlog [--limit N] the changes not in RT yet: counts, then one line per change

``rt check`` asks RT what the connector needs, in order: RT answers, the credentials
work, the user is privileged and has a time zone, each queue tickets may go to is
visible, the key field applies to it, and a search by the key field works. It exits 0
only when every line is OK, so it can gate a deployment.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from collector.commands import fail
from collector.db import create_db_engine, migrate
from collector.rt.client import RtClient, RtError
from collector.rt.models import Backlog, backlog
from collector.rt.queries import WaitingChange, waiting_changes
from collector.settings import RequestTrackerSettings, Settings
from collector.timefmt import human_duration, human_time

NOT_CONFIGURED = ("the [request_tracker] section is missing from the configuration: "
                  "add it (url, user, token_file) to use Request Tracker")
ERROR_WIDTH = 300  # a change's last error on one line of `rt backlog`


def add_commands(sub: Any) -> None:
    """Add this domain's subcommands to the collector's command line."""
    parser = sub.add_parser("rt", help="the Request Tracker connector: check the setup, "
                                       "see what waits for RT")
    verbs = parser.add_subparsers(dest="rt_command", required=True)

    check = verbs.add_parser("check", help="check RT's address, credentials, rights, queues "
                                           "and key field; exit 0 only when all are OK")
    check.add_argument("--queue", action="append", dest="queues", metavar="QUEUE",
                       help="check this queue (repeatable; default: request_tracker.queue "
                            "and every customer's rt_queue)")
    _common(check, _check)

    waiting = verbs.add_parser("backlog", help="the ticket changes not in RT yet: counts, "
                                               "then each waiting or given-up change")
    waiting.add_argument("--limit", type=int, default=200,
                         help="list at most this many changes (default 200)")
    _common(waiting, _backlog)


def _common(parser: argparse.ArgumentParser, handler: Callable[..., int]) -> None:
    parser.add_argument("--config", help="TOML config file")
    parser.set_defaults(handler=handler)


def queues_to_check(settings: Settings, config: RequestTrackerSettings) -> list[str]:
    """The default queue, then each customer's own, once each, in the order configured."""
    queues = [config.queue]
    for customer in settings.customers.values():
        if customer.rt_queue and customer.rt_queue not in queues:
            queues.append(customer.rt_queue)
    return queues


def _check(args: argparse.Namespace, settings: Settings) -> int:
    config = settings.request_tracker
    if config is None:
        return fail(NOT_CONFIGURED)
    queues: list[str] = args.queues or queues_to_check(settings, config)
    lines: list[tuple[str, bool, str]] = []
    try:
        client = RtClient(config)
    except RtError as exc:  # an unreadable token file or CA file: nothing to ask RT with
        lines.append(("credentials", False, str(exc)))
    else:
        with client:
            for queue in queues:
                # The steps before the queue are the same for every queue: shown once.
                lines += [line for line in client.check(queue) if line not in lines]
    for what, ok, detail in lines:
        print(f"{'OK  ' if ok else 'FAIL'}  {what}: {detail}")
    failed = sum(1 for _, ok, _ in lines if not ok)
    if failed:
        print(f"watchkeeper-collector: rt check: {failed} of {len(lines)} checks failed "
              f"against {config.url}", file=sys.stderr)
        return 1
    return 0


def _backlog(args: argparse.Namespace, settings: Settings) -> int:
    if args.limit < 1:
        return fail(f"--limit: must be a whole number from 1, got {args.limit}")
    now = time.time()
    engine = create_db_engine(settings)
    try:
        migrate(engine)
        with engine.connect() as conn:
            counts = backlog(conn, now=now)
            changes = waiting_changes(conn, limit=args.limit)
    finally:
        engine.dispose()
    if settings.request_tracker is None:
        print("Request Tracker is not configured ([request_tracker]): no change is queued")
    for line in summary(counts):
        print(line)
    if changes:
        print("\t".join(("ticket", "event", "state", "attempts", "next try", "last error")))
    for change in changes:
        print(change_line(change, now))
    shown = counts.pending + counts.dead
    if len(changes) < shown:
        print(f"... and {shown - len(changes)} more (--limit)")
    return 0


def summary(counts: Backlog) -> list[str]:
    """The backlog in words, as the dashboard's card says it."""
    if counts.pending == 0:
        lines = ["in step: no change waits for RT"]
    else:
        lines = [f"{counts.pending} change{'' if counts.pending == 1 else 's'} waiting for RT "
                 f"({counts.tickets} ticket{'' if counts.tickets == 1 else 's'}), oldest "
                 f"{human_duration(counts.oldest_seconds)}"]
        lines.append(f"failing: {counts.failing} (their last try failed)")
    if counts.last_error:
        lines.append(f"last error: {_one_line(counts.last_error)}")
    lines.append(f"given up: {counts.dead}")
    return lines


def change_line(change: WaitingChange, now: float) -> str:
    """One change: ticket, event kind, state, attempts, next try, last error."""
    if change.next_attempt_at is None:
        next_try = "never (given up)"
    elif change.next_attempt_at <= now:
        next_try = "now"
    else:
        next_try = (f"{human_time(change.next_attempt_at)} "
                    f"(in {human_duration(change.next_attempt_at - now)})")
    return "\t".join((f"#{change.ticket_id}", change.event_kind, change.state,
                      str(change.attempts), next_try, _one_line(change.last_error or "")))


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= ERROR_WIDTH else flat[:ERROR_WIDTH - 3] + "..."
