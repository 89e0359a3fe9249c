"""Agent footprint benchmark: RSS and CPU of ``watchkeeper-agent run`` with every available
check at a 60 s interval, pushing to a real collector on loopback.

Each check has real work to do, on loopback only: ``dns`` asks a dnsmasq started here,
``ntp`` asks a chronyd started here (and judges this machine's own synchronisation),
``mysql_replication`` a MariaDB replica (and its primary) started here, ``backup`` reads
and verifies a gzip series made here, ``intrusion`` reads an auth log written here and this
machine's listening sockets, ``logrotate``, ``firewall`` and ``os_updates`` read this
machine's own configuration, ruleset and package state (apt simulation), ``disk`` its
filesystems. Two agents run side by side, one pushing to a collector over plain HTTP and
one to a collector serving HTTPS (a self-signed certificate the agent trusts through
``ca_file``): TLS costs the agent the ``ssl`` module and a context.

    .venv/bin/python tests/benchmarks/bench_agent_footprint.py [--warmup 60] [--measure 180]
        [--collector http|https|both]

The agent's modules are byte-compiled first, as pip does when it installs a wheel: an agent
compiling its sources at every start (an editable install with PYTHONDONTWRITEBYTECODE set)
holds about 1.5 MB more. After the warm-up it samples the agent's resident set (VmRSS, and
the peak VmHWM) and the CPU time it used over the measurement window. ``run`` executes
itself once more as the daemon (``agent/launch.py``: same process id), so the figures,
the peak too, are the daemon's. Targets: <= 28 MB RSS and <= 0.1 % of one core (MB here
is MiB: kB / 1024). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import compileall
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from checks.registry import CHECK_TYPES  # noqa: E402
from tests.benchmarks.report import exit_code, finish  # noqa: E402
from tests.services.chrony import start_chronyd  # noqa: E402
from tests.services.dnsmasq import start_dnsmasq  # noqa: E402
from tests.services.mariadb import start_pair  # noqa: E402
from tests.support.processes import Collector, Proc, agent_command, wait_until  # noqa: E402
from tests.support.tls import self_signed  # noqa: E402

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


# What each check type needs beyond its defaults to work on loopback only.
def _settings(workdir: Path, dns: str, ntp: str, mysql_port: int) -> dict[str, str]:
    backups = workdir.parent / "backups"  # one series, made by main() for both agents
    auth_log = workdir / "auth.log"
    auth_log.write_text("".join(
        f"2026-11-26T01:0{i}:00.000000+00:00 host sshd[{100 + i}]: Failed password for invalid "
        f"user admin from 203.0.113.{i} port 4{i}022 ssh2\n" for i in range(5)))
    password = workdir / "mysql-password"
    password.write_text("monitor-secret\n")
    return {
        "intrusion": f'auth_log = "{auth_log}"\n',
        "mysql_replication": f'port = {mysql_port}\npassword_file = "{password}"\n',
        "backup": f'\n[[checks.backup.sets]]\nname = "db"\ndirectory = "{backups}"\n'
                  'pattern = "db-*.sql.gz"\n',
        "dns": f'resolvers = ["{dns}"]\n'
               '[[checks.dns.names]]\nname = "web1.ci.test"\naddresses = ["192.0.2.10"]\n',
        "ntp": f'servers = ["{ntp}"]\n',
    }


def _backup_series(directory: Path) -> None:
    """Seven daily gzip dumps of ~1 MB, the newest an hour old."""
    import gzip
    import random

    directory.mkdir(parents=True)
    rng = random.Random(7)
    now = time.time()
    for day in range(7):
        path = directory / f"db-2026-11-{10 + day:02d}.sql.gz"
        rows = "".join(f"INSERT INTO t VALUES ({i}, '{rng.random()}');\n" for i in range(20000))
        path.write_bytes(gzip.compress(f"{rows}-- Dump completed on 2026-11-{10 + day}\n".encode()))
        age = 3600 + (6 - day) * 86400
        os.utime(path, (now - age, now - age))


def agent_config(
    workdir: Path, collector: Collector, token_file: Path, *, dns: str, ntp: str,
    mysql_port: int,
) -> Path:
    """Every check type the registry knows, at 60 s, with loopback-only settings."""
    extra = _settings(workdir, dns, ntp, mysql_port)
    checks = "".join(
        f'\n[checks.{name}]\ntype = "{name}"\ninterval = "60s"\n' + extra.get(name, "")
        for name in sorted(CHECK_TYPES)
    )
    ca = f'ca_file = "{collector.ca}"\n' if isinstance(collector.ca, Path) else ""
    config = workdir / "agent.toml"
    config.write_text(
        f'[agent]\nhost = "{HOST}"\nstate_dir = "{workdir / "state"}"\n\n'
        f'[collector]\nurl = "{collector.url}"\ntoken_file = "{token_file}"\n{ca}' + checks
    )
    return config


HOST = "footprint.example.net"


class Variant:
    """One agent and the collector it pushes to, over plain HTTP or over TLS."""

    def __init__(self, workdir: Path, name: str, *, dns: str, ntp: str, mysql_port: int
                 ) -> None:
        self.name = name
        workdir.mkdir()
        tls = self_signed(workdir / "tls") if name == "https" else None
        self.collector = Collector(workdir, tls=tls)
        token_file = workdir / "token"
        token_file.write_text(self.collector.enroll("bench", HOST) + "\n")
        self.collector.start()
        config = agent_config(workdir, self.collector, token_file, dns=dns, ntp=ntp,
                              mysql_port=mysql_port)
        self.agent = Proc(agent_command("run", "--config", str(config)),
                          workdir / "agent.log").start()
        self.samples: list[int] = []
        self.cpu0 = 0.0

    def all_reported(self) -> bool:
        """Every check type's first results are at the collector."""
        checks = self.collector.get(f"/api/v1/hosts/{HOST}").json()["checks"]
        return {c["check"] for c in checks} >= set(CHECK_TYPES)

    def figures(self, cpu_window: float) -> dict[str, object]:
        final = _status(self.agent.pid)
        results = self.collector.get(f"/api/v1/hosts/{HOST}").json()["checks"]
        return {
            "rss_mb": round(max(self.samples) / 1024, 1),
            "rss_mb_mean": round(sum(self.samples) / len(self.samples) / 1024, 1),
            "peak_rss_mb": round(final["VmHWM"] / 1024, 1),
            "threads": final["Threads"],
            "cpu_pct_of_one_core": round(
                100 * (_cpu_seconds(self.agent.pid) - self.cpu0) / cpu_window, 3),
            "statuses": sorted({f"{r['check']}: {r['status_name']}" for r in results}),
        }

    def stop(self) -> None:
        self.agent.stop()
        self.collector.stop()


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before measuring")
    parser.add_argument("--measure", type=float, default=180.0, help="measurement window, s")
    parser.add_argument("--collector", choices=("http", "https", "both"), default="both",
                        help="the collector's scheme; both: two agents side by side")
    args = parser.parse_args(argv)
    names = ["http", "https"] if args.collector == "both" else [args.collector]

    with tempfile.TemporaryDirectory(prefix="wk-footprint-") as tmp:
        workdir = Path(tmp)
        for package in ("agent", "checks"):
            compileall.compile_dir(str(HERE.parent.parent / package), quiet=1)
        dns = start_dnsmasq(workdir / "dnsmasq", host_records=[("web1.ci.test", "192.0.2.10")])
        ntp = start_chronyd(workdir / "chrony")
        mysql = start_pair(workdir / "mariadb")
        _backup_series(workdir / "backups")
        variants: list[Variant] = []
        try:
            for name in names:
                variants.append(Variant(workdir / name, name, dns=dns.address,
                                        ntp=ntp.address, mysql_port=mysql.replica.port))
            for v in variants:
                wait_until(v.all_reported, 120,
                           f"every check of the {v.name} agent reported\n{v.agent.tail()}")
            time.sleep(args.warmup)
            for v in variants:
                assert v.agent.alive(), v.agent.tail()
                v.cpu0 = _cpu_seconds(v.agent.pid)
            t0 = time.monotonic()
            while time.monotonic() - t0 < args.measure:
                for v in variants:
                    v.samples.append(_status(v.agent.pid)["VmRSS"])
                time.sleep(min(1.0, args.measure / 10))
            window = time.monotonic() - t0
            figures = {v.name: v.figures(window) for v in variants}
        finally:
            for v in variants:
                v.stop()
            dns.stop()
            ntp.stop()
            mysql.stop()

    report: dict[str, object] = {
        "benchmark": "agent_footprint",
        "checks": sorted(CHECK_TYPES),
        "window_s": round(window, 1),
        "targets": {"rss_mb": 28, "cpu_pct_of_one_core": 0.1},
        **figures,
    }
    print(f"agents with checks {', '.join(sorted(CHECK_TYPES))} at 60 s, "
          f"measured over {report['window_s']} s")
    targets: dict[str, bool] = {}
    for name, f in figures.items():
        print(f"  {name} collector: RSS max {f['rss_mb']} MB (mean {f['rss_mb_mean']}, peak "
              f"ever {f['peak_rss_mb']}; target <= 28 MB), CPU {f['cpu_pct_of_one_core']} % "
              f"of one core (target <= 0.1 %)")
        print(f"    statuses at the collector: {', '.join(f['statuses'])}")  # type: ignore[arg-type]
        targets[f"{name} rss"] = f["rss_mb"] <= 28  # type: ignore[operator]
        targets[f"{name} cpu"] = f["cpu_pct_of_one_core"] <= 0.1  # type: ignore[operator]
    return finish(report, targets)


if __name__ == "__main__":
    sys.exit(exit_code(main()))
