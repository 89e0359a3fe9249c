"""Agent footprint benchmark: RSS and CPU of ``watchkeeper-agent run`` with every available
check at a 60 s interval, pushing to a real collector on loopback.

    .venv/bin/python tests/benchmarks/bench_agent_footprint.py [--warmup 60] [--measure 180]

After the warm-up it samples the agent's resident set (VmRSS, and the peak VmHWM) and the
CPU time it used over the measurement window. Targets: <= 28 MB RSS and <= 0.1 % of one
core. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from checks.registry import CHECK_TYPES  # noqa: E402
from tests.benchmarks.report import exit_code, finish  # noqa: E402
from tests.support.processes import Collector, Proc, agent_command, wait_until  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = int(value.split()[0])
    return out


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def agent_config(workdir: Path, collector_url: str, token_file: Path) -> Path:
    """Every check type the registry knows, at 60 s, with its default settings."""
    checks = "".join(
        f'\n[checks.{name}]\ntype = "{name}"\ninterval = "60s"\n' for name in sorted(CHECK_TYPES)
    )
    config = workdir / "agent.toml"
    config.write_text(
        f'[agent]\nhost = "footprint.example.net"\nstate_dir = "{workdir / "state"}"\n\n'
        f'[collector]\nurl = "{collector_url}"\ntoken_file = "{token_file}"\n' + checks
    )
    return config


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before measuring")
    parser.add_argument("--measure", type=float, default=180.0, help="measurement window, s")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="wk-footprint-") as tmp:
        workdir = Path(tmp)
        collector = Collector(workdir)
        token_file = workdir / "token"
        token_file.write_text(collector.enroll("bench", "footprint.example.net") + "\n")
        collector.start()
        config = agent_config(workdir, collector.url, token_file)
        agent = Proc(agent_command("run", "--config", str(config)), workdir / "agent.log").start()
        try:
            wait_until(lambda: collector.get("/api/v1/hosts/footprint.example.net").status_code
                       == 200, 60, f"the agent's first push\n{agent.tail()}")
            time.sleep(args.warmup)
            assert agent.alive(), agent.tail()
            cpu0, t0 = _cpu_seconds(agent.pid), time.monotonic()
            samples = []
            while time.monotonic() - t0 < args.measure:
                samples.append(_status(agent.pid)["VmRSS"])
                time.sleep(min(1.0, args.measure / 10))
            cpu1, t1 = _cpu_seconds(agent.pid), time.monotonic()
            final = _status(agent.pid)
        finally:
            agent.stop()
            collector.stop()

    report = {
        "benchmark": "agent_footprint",
        "checks": sorted(CHECK_TYPES),
        "rss_mb": round(max(samples) / 1024, 1),
        "rss_mb_mean": round(sum(samples) / len(samples) / 1024, 1),
        "peak_rss_mb": round(final["VmHWM"] / 1024, 1),
        "threads": final["Threads"],
        "cpu_pct_of_one_core": round(100 * (cpu1 - cpu0) / (t1 - t0), 3),
        "window_s": round(t1 - t0, 1),
        "targets": {"rss_mb": 28, "cpu_pct_of_one_core": 0.1},
    }
    print(f"agent with checks {', '.join(report['checks'])} at 60 s")  # type: ignore[arg-type]
    print(f"  RSS max {report['rss_mb']} MB (mean {report['rss_mb_mean']}, peak ever "
          f"{report['peak_rss_mb']}; target <= 28 MB)")
    print(f"  CPU {report['cpu_pct_of_one_core']} % of one core over {report['window_s']} s "
          f"(target <= 0.1 %)")
    return finish(report, {
        "rss": report["rss_mb"] <= 28,  # type: ignore[operator]
        "cpu": report["cpu_pct_of_one_core"] <= 0.1,  # type: ignore[operator]
    })


if __name__ == "__main__":
    sys.exit(exit_code(main()))
