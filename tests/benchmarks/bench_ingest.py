"""Ingest benchmark: simulated agents push batches of 12 results to one collector on SQLite.

    .venv/bin/python tests/benchmarks/bench_ingest.py [--rounds 3] [--duration 10] [--rate 1000]

Runs the same load against the real collector (``watchkeeper-collector serve``, SQLite,
every push durably committed before its 202) and against a bare FastAPI endpoint that only
parses and validates the batch with the same schema (``bare_app.py``), both as separate
processes under the same uvicorn settings. For each it reports the highest sustained rate
(closed loop) and, at a fixed offered rate (open loop, default 1,000 pushes/s), the p50 and
p99 latency measured from each request's due time. The two servers take turns for
``--rounds`` rounds, and the figures judged are the medians over the rounds: on a shared
machine a single run of either moves by 10-15 %. Targets: median collector/bare ratio
>= 0.6; median p99 < 100 ms at 1,000 pushes/s. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
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
    parser.add_argument("--rounds", type=int, default=3, help="turns of each server")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop pushes/s")
    parser.add_argument("--hosts", type=int, default=100, help="enrolled hosts pushing")
    parser.add_argument("--connections", type=int, default=256,
                        help="concurrent connections: agents pushing at the same moment")
    parser.add_argument("--results", type=int, default=12, help="results per push")
    args = parser.parse_args(argv)

    rounds: list[dict[str, dict[str, object]]] = []
    with tempfile.TemporaryDirectory(prefix="wk-bench-") as tmp:
        workdir = Path(tmp)
        collector = Collector(workdir)
        names = [f"bench{i:03d}.example.net" for i in range(args.hosts)]
        hosts = [(name, collector.enroll("bench", name)) for name in names]
        collector.start()
        bare_proc, bare_port = _start_bare(workdir)
        try:
            for _ in range(args.rounds):
                real = _measure(collector.port, hosts, args)
                bare = _measure(bare_port, hosts, args)
                rounds.append({"collector": real, "bare_fastapi": bare})
        finally:
            bare_proc.stop()
            collector.stop()

    def closed(server: str) -> list[float]:
        return [r[server]["closed"]["pushes_per_s"] for r in rounds]  # type: ignore[index]

    ratios = [c / max(b, 1e-9) for c, b in zip(closed("collector"), closed("bare_fastapi"),
                                                  strict=True)]
    ratio = statistics.median(ratios)
    p99 = statistics.median(r["collector"]["open"]["p99_ms"] for r in rounds)  # type: ignore[index]
    median_round = sorted(range(len(rounds)), key=lambda i: ratios[i])[len(rounds) // 2]
    report = {"benchmark": "ingest", **rounds[median_round], "rounds": rounds,
              "ratios": [round(r, 3) for r in ratios], "ratio": round(ratio, 3),
              "p99_ms_at_rate": p99, "targets": {"ratio": 0.6, "p99_ms_at_rate": 100}}
    print(f"{'':8}{'':24}{'pushes/s':>10}{'results/s':>11}{'p50 ms':>9}{'p99 ms':>9}  errors")
    for number, figures_of in enumerate(rounds, 1):
        for name, figures in (("collector", figures_of["collector"]),
                              ("bare FastAPI", figures_of["bare_fastapi"])):
            for mode in ("closed", "open"):
                f = figures[mode]  # type: ignore[index]
                print(f"{'round ' + str(number):8}{name + ' ' + f['mode']:24}"
                      f"{f['pushes_per_s']:>10}{f['results_per_s']:>11}"
                      f"{f['p50_ms']:>9}{f['p99_ms']:>9}  {f['errors'] or '-'}")
    print(f"ratio collector/bare (closed loop) per round: "
          f"{', '.join(f'{r:.2f}' for r in ratios)}; median {ratio:.2f} (target >= 0.6)")
    print(f"collector p99 at {args.rate:g}/s, median: {p99} ms (target < 100)")
    return finish(report, {"ratio": ratio >= 0.6, "p99": p99 < 100})


if __name__ == "__main__":
    sys.exit(exit_code(main()))
