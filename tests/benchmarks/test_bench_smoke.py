"""A quick smoke of the benchmark harness (the real runs: `make bench`, see README)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from tests.benchmarks import bench_agent_footprint, bench_engine, bench_ingest, bench_metrics

pytestmark = pytest.mark.benchmark


def test_ingest_harness_measures_both_servers() -> None:
    report = bench_ingest.main(
        ["--rounds", "1", "--duration", "1", "--warmup", "0.3", "--rate", "40", "--hosts", "2",
         "--connections", "2"]
    )
    for server in ("collector", "bare_fastapi"):
        for mode in ("closed", "open"):
            figures = report[server][mode]  # type: ignore[index]
            assert figures["errors"] == {}, (server, mode, figures)
            assert figures["pushes"] > 0
            assert figures["results_per_s"] == pytest.approx(12 * figures["pushes_per_s"], rel=0.01)
    assert report["ratio"] > 0


def test_footprint_harness_reads_the_running_agent() -> None:
    report = bench_agent_footprint.main(["--warmup", "1", "--measure", "2"])
    assert "disk" in report["checks"]  # type: ignore[operator]
    for scheme in ("http", "https"):
        figures = report[scheme]
        assert 5 < figures["rss_mb"] < 500  # type: ignore[index]
        assert figures["cpu_pct_of_one_core"] >= 0  # type: ignore[index]
        assert any(s.startswith("disk: ") for s in figures["statuses"])  # type: ignore[index]


def test_engine_harness_measures_steady_and_quiet_passes() -> None:
    report = bench_engine.main(["--hosts", "4", "--checks", "5", "--passes", "2"])
    assert report["failing_rows"] == 4
    for figures in report["steady"]:  # type: ignore[attr-defined]
        assert figures["results"] == 4 and figures["transactions"] >= 1
        assert 0 < figures["lock_ms"] <= figures["wall_ms"]
    assert report["quiet"]["transactions"] == 0  # type: ignore[index]


def test_metrics_harness_times_a_scrape_and_the_dashboard_of_the_filled_store() -> None:
    report = bench_metrics.main(["--hosts", "20", "--checks", "3", "--customers", "2",
                                 "--scrapes", "2", "--problem-every", "5",
                                 "--silent-every", "10", "--failing-every", "7"])
    # 60 check states and the silence of hosts 5 and 15
    assert report["check_states"] == 62 and report["silent_hosts"] == 2
    assert report["tickets"] == 4 and report["resolved_tickets"] == 8
    # the 4 CRITICAL ones with tickets, 2 silences, every 7th of the others WARNING
    assert report["problems"] == 4 + 2 + sum(
        1 for n in range(60) if n % 7 == 0 and n not in (0, 15, 30, 45))
    # every check state a status line and two metric lines, every host two
    assert report["lines"] > 60 * 3 + 20 * 2
    assert len(report["scrape_s"]) == 2  # type: ignore[arg-type]
    assert 0 < report["median_scrape_s"] < 5  # type: ignore[operator]
    pages = cast(dict[str, dict[str, Any]], report["pages"])
    assert set(pages) == {"overview", "problems", "hosts"}
    for figures in pages.values():
        assert len(figures["s"]) == 2 and 0 < figures["median_s"] < 5
    assert report["targets_missed"] == []
