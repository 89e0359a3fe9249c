"""Agent versions outside the support window become problems, like any failing check.

For every host the agent version it last pushed with is judged against ``[agent_versions]``
(collector.tickets.versions). The verdict is written as the collector's own check state
(check ``collector``, target ``agent_version``, type ``agent_version``): WARNING with the
reason when the version is not supported, OK when it is again. It then flows through the
same problem rules and opens a P4 ticket (the priority policy's row for it). A row is
written only when the verdict changes; a supported version needs no row at all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, select, update

from checks.result import Status
from collector.db import upsert_insert
from collector.hosts.models import Host
from collector.state.models import SILENCE_CHECK, CheckState, StatusChange
from collector.state.service import DIGITS, folded_values
from collector.tickets.policy import AGENT_VERSION_CHECK_TYPE
from collector.tickets.versions import VersionWindow, version_supported

VERSION_CHECK = SILENCE_CHECK  # the collector's own check: agents cannot push under it
VERSION_TARGET = "agent_version"
STATES = cast(Table, CheckState.__table__)
CHANGES = cast(Table, StatusChange.__table__)
HOSTS = cast(Table, Host.__table__)


def check_agent_versions(conn: Connection, *, window: VersionWindow, now: float) -> list[str]:
    """Write the verdict of every host whose version's verdict changed; return those hosts."""
    changed = []
    for host_id, fqdn, version, new, text, status in version_changes(conn, window=window,
                                                                     now=now):
        _write(conn, host_id=host_id, status=new, summary=text, version=version, now=now,
               previous=status)
        changed.append(fqdn)
    return changed


VersionChange = tuple[int, str, str, Status, str, int | None]
"""A host whose verdict changed: host id, fqdn, version, new status, summary, old status."""


def version_changes(conn: Connection, *, window: VersionWindow,
                    now: float) -> list[VersionChange]:
    """The hosts whose version's verdict changed (read only: nothing is written)."""
    at = datetime.fromtimestamp(now, UTC)
    rows = conn.execute(
        select(HOSTS.c.id, HOSTS.c.fqdn, HOSTS.c.agent_version, STATES.c.status)
        .select_from(HOSTS.outerjoin(STATES, and_(
            STATES.c.host_id == HOSTS.c.id, STATES.c.check == VERSION_CHECK,
            STATES.c.target == VERSION_TARGET)))
        .where(HOSTS.c.agent_version.is_not(None))
        .order_by(HOSTS.c.id)
    ).all()
    changes: list[VersionChange] = []
    for host_id, fqdn, version, status in rows:
        verdict = version_supported(version=version, window=window, now=at)
        new = Status.OK if verdict.supported else Status.WARNING
        if status is None and new is Status.OK:
            continue  # nothing to say about a supported version
        if status is not None and Status(status) is new:
            continue
        changes.append((host_id, fqdn, version, new, f"agent {version}: {verdict.reason}",
                        None if status is None else int(status)))
    return changes


def _write(conn: Connection, *, host_id: int, status: Status, summary: str, version: str,
           now: float, previous: int | None) -> None:
    values: dict[str, Any] = {
        "type": AGENT_VERSION_CHECK_TYPE, "status": int(status), "summary": summary,
        "metrics": [], "details": {"agent_version": version}, "last_result_at": now,
        "last_change_at": now}
    if previous is None:
        conn.execute(upsert_insert(conn, STATES).values(
            host_id=host_id, check=VERSION_CHECK, target=VERSION_TARGET, previous_status=None,
            results_count=1, history=DIGITS[status], dirty=True, **values,
        ).on_conflict_do_nothing(index_elements=[STATES.c.host_id, STATES.c.check,
                                                 STATES.c.target]))
    else:
        conn.execute(update(STATES).where(
            STATES.c.host_id == host_id, STATES.c.check == VERSION_CHECK,
            STATES.c.target == VERSION_TARGET,
        ).values(previous_status=STATES.c.status, **values, **folded_values(status)))
    conn.execute(CHANGES.insert().values(
        host_id=host_id, check=VERSION_CHECK, target=VERSION_TARGET, from_status=previous,
        to_status=int(status), at=now, summary=summary))
