"""A real collector process with ``[request_tracker]`` set, against a real RT 5.

The connector runs as the collector runs it (its scheduled jobs in the app's lifespan):
a failing host opens a ticket that appears in RT with its priority code; a priority
change and a resolve made in watchkeeper follow; a reply made in RT by staff becomes the
ticket's first response; the backlog is in /metrics.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.ticketing import (
    CUSTOMER,
    Api,
    ClockFile,
    Host,
    TicketCollector,
    collector_config,
    disk_result,
    only,
    parse_time,
    wait_for,
)
from tests.services.rt import (
    CONNECTOR_USER,
    STAFF_PASSWORD,
    STAFF_USER,
    RtServer,
    rt_client,
)


def _metric(url: str, name: str) -> float:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_a_collector_mirrors_its_tickets_into_rt_and_counts_a_reply_made_there(
        tmp_path: Path, rt_server: RtServer, rt_token: str) -> None:
    token_file = tmp_path / "rt.token"
    token_file.write_text(rt_token + "\n")
    clock = ClockFile(tmp_path / "clock-offset")
    config = collector_config(smtp=None, extra=(
        f'[request_tracker]\nurl = "{rt_server.url}"\nuser = "{CONNECTOR_USER}"\n'
        f'token_file = "{token_file}"\nsync_every = "0.5s"\npoll_every = "1s"\n'))
    collector = TicketCollector(tmp_path / "collector", clock=clock, config=config)
    fqdn = "rt1.acme.example"
    host = Host(collector.url, fqdn, collector.enroll(CUSTOMER, fqdn))
    api = Api(collector.url, collector.user_token("tse1", "tse"))
    rt = rt_client(rt_server.url, CONNECTOR_USER, token=rt_token)
    staff = rt_client(rt_server.url, STAFF_USER, password=STAFF_PASSWORD)
    collector.start()
    try:
        for _ in range(2):
            host.push([disk_result(host, 2, clock.now())])
            time.sleep(0.2)
        wait_for(lambda: api.tickets_for(fqdn, "disk"), 30, "the disk ticket",
                 tail=collector.log_tail)
        ticket = only(api.tickets_for(fqdn, "disk"), "disk ticket")
        ticket_id = int(ticket["id"])

        def rt_ticket() -> dict[str, Any] | None:
            found = list(rt._search(f"Subject LIKE '{fqdn}' AND "
                                    f"'CF.{{Watchkeeper Key}}' LIKE '#{ticket_id}@'",
                                    fields="Priority,Status"))
            return found[0] if found else None

        wait_for(rt_ticket, 30, "the ticket in RT", tail=collector.log_tail)
        record = rt_ticket()
        assert record is not None
        assert int(record["Priority"]) == ticket["rt_priority"]
        rt_id = int(record["id"])

        # A TSE raises it to P1 in watchkeeper: RT 80.
        answer = api.post(f"/api/v1/tickets/{ticket_id}/priority",
                          {"priority": "P1", "reason": "billing halted"})
        assert answer.status_code == 200, answer.text
        wait_for(lambda: (rt_ticket() or {}).get("Priority") == "80", 30, "RT priority 80",
                 tail=collector.log_tail)

        # Staff answer in RT: the first response, at RT's time.
        staff.correspond(rt_id, subject="Re: disk", content="Cleaning up /srv now.")
        replied = staff.history(rt_id)[-1].created
        wait_for(lambda: api.ticket(ticket_id)["first_response_at"] is not None, 30,
                 "the first response read back from RT", tail=collector.log_tail)
        assert abs(parse_time(api.ticket(ticket_id)["first_response_at"]) - replied) < 2

        # Resolved in watchkeeper: resolved in RT; nothing waits.
        answer = api.post(f"/api/v1/tickets/{ticket_id}/state",
                          {"state": "resolved", "reason": "space freed"})
        assert answer.status_code == 200, answer.text
        wait_for(lambda: (rt_ticket() or {}).get("Status") == "resolved", 30,
                 "RT status resolved", tail=collector.log_tail)
        wait_for(lambda: _metric(collector.url, "watchkeeper_rt_backlog") == 0, 30,
                 "an empty RT backlog in /metrics", tail=collector.log_tail)
    finally:
        collector.stop()
        rt.close()
        staff.close()
