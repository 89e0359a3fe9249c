"""Ingest benchmark: simulated agents push batches of 12 results to one collector on SQLite.

    .venv/bin/python tests/benchmarks/bench_ingest.py [--duration 10] [--rate 1000]

Runs the same load against the real collector (``watchkeeper-collector serve``, SQLite,
every push durably committed before its 202) and against a bare FastAPI endpoint that only
parses and validates the batch with the same schema (``bare_app.py``), both as separate
processes under the same uvicorn settings. For each it reports the highest sustained rate
(closed loop) and, at a fixed offered rate (open loop, default 1,000 pushes/s), the p50 and
p99 latency measured from each request's due time. Targets: collector/bare ratio >= 0.6;
p99 < 100 ms at 1,000 pushes/s. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

import httpx  # noqa: E402

from tests.benchmarks.loadgen import LoadResult, RequestFactory, run_load  # noqa: E402
from tests.benchmarks.report import exit_code, finish  # noqa: E402
from tests.support.processes import Collector, Proc, free_port, wait_until  # noqa: E402


def _measure(
    port: int, hosts: list[tuple[str, str]], args: argparse.Namespace
) -> dict[str, object]:
    factory = RequestFactory(hosts, args.results, f"127.0.0.1:{port}")

    def go(rate: float | None, duration: float) -> LoadResult:
        return asyncio.run(
            run_load("127.0.0.1", port, factory, duration=duration, connections=args.connections,
                     rate=rate, results_per_push=args.results)
        )

    go(None, args.warmup)
    closed = go(None, args.duration)
    opened = go(args.rate, args.duration)
    return {"closed": closed.summary(), "open": opened.summary()}


def _start_bare(workdir: Path) -> tuple[Proc, int]:
    port = free_port()
    proc = Proc([sys.executable, str(HERE / "bare_app.py"), "--port", str(port)],
                workdir / "bare.log").start()

    def up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, 30, f"bare app\n{proc.tail()}")
    return proc, port


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop pushes/s")
    parser.add_argument("--hosts", type=int, default=100, help="enrolled hosts pushing")
    parser.add_argument("--connections", type=int, default=256,
                        help="concurrent connections: agents pushing at the same moment")
    parser.add_argument("--results", type=int, default=12, help="results per push")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="wk-bench-") as tmp:
        workdir = Path(tmp)
        collector = Collector(workdir)
        names = [f"bench{i:03d}.example.net" for i in range(args.hosts)]
        hosts = [(name, collector.enroll("bench", name)) for name in names]
        collector.start()
        try:
            real = _measure(collector.port, hosts, args)
        finally:
            collector.stop()
        bare_proc, bare_port = _start_bare(workdir)
        try:
            bare = _measure(bare_port, hosts, args)
        finally:
            bare_proc.stop()

    ratio = real["closed"]["pushes_per_s"] / max(bare["closed"]["pushes_per_s"], 1e-9)  # type: ignore[index]
    report = {"benchmark": "ingest", "collector": real, "bare_fastapi": bare,
              "ratio": round(ratio, 3), "targets": {"ratio": 0.6, "p99_ms_at_rate": 100}}
    print(f"{'':24}{'pushes/s':>10}{'results/s':>11}{'p50 ms':>9}{'p99 ms':>9}  errors")
    for name, figures in (("collector", real), ("bare FastAPI", bare)):
        for mode in ("closed", "open"):
            f = figures[mode]  # type: ignore[index]
            print(f"{name + ' ' + f['mode']:24}{f['pushes_per_s']:>10}{f['results_per_s']:>11}"
                  f"{f['p50_ms']:>9}{f['p99_ms']:>9}  {f['errors'] or '-'}")
    print(f"ratio collector/bare (closed loop): {ratio:.2f} (target >= 0.6); "
          f"collector p99 at {args.rate:g}/s: {real['open']['p99_ms']} ms (target < 100)")  # type: ignore[index]
    return finish(report, {
        "ratio": ratio >= 0.6,
        "p99": real["open"]["p99_ms"] < 100,  # type: ignore[index]
    })


if __name__ == "__main__":
    sys.exit(exit_code(main()))
