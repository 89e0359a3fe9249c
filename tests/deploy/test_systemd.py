"""The systemd units in systemd/, checked with systemd's own tools and by running the agent
with the unit's identity.

- ``systemd-analyze verify`` accepts both units without a single warning, in a throw-away
  root (``--root``) holding a stub program at each ExecStart path and the host's targets;
  without the stub it refuses the unit, so the verification has teeth;
- ``systemd-analyze security --offline=true`` rates the agent at 2.0 or lower and the
  collector at 1.5 or lower; the figures and every line that keeps some exposure are
  printed (``pytest -s`` shows them);
- every drop-in shown in docs/systemd.md passes verify and has the figure the guide gives;
- the agent's unit keeps what the agent needs: it may write where the example
  configuration writes, has the address families the checks use, and waits long enough for
  the graceful stop;
- the agent, run as an unprivileged user with exactly the unit's capabilities, reads a
  firewall ruleset (in a network namespace of its own) and a backup only root may read;
  without them both are UNKNOWN;
- under a seccomp filter built from the unit's SystemCallFilter=, ProtectClock= and
  RestrictAddressFamilies= (the groups expanded by ``systemd-analyze syscall-filter``)
  those checks still run, and ntp's
  kernel read is refused as docs/systemd.md says, until its "kernel clock" drop-in;
- the collector, as an unprivileged user without capabilities under its unit's filter,
  serves /metrics, keeps its SQLite file in its working directory and stops on SIGTERM.

What these runs do not reproduce: the mount namespace (ProtectSystem=, PrivateTmp=, ...),
ProtectProc= and MemoryDenyWriteExecute=; systemd applies those, and no systemd runs here.

Needs root. A missing systemd-analyze (systemd), nft (nftables), setpriv or unshare
(util-linux) or Python's seccomp module (python3-seccomp) fails naming the Debian package;
nothing here skips. About 15 s.
"""

from __future__ import annotations

import grp
import gzip
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.cli import FINAL_PUSH_BUDGET
from agent.config import load_config
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
AGENT = UNITS / "watchkeeper-agent.service"
COLLECTOR = UNITS / "watchkeeper-collector.service"
GUIDE = ROOT / "docs" / "systemd.md"
EXAMPLE_CONFIG = ROOT / "examples" / "agent.toml"

# The limits for `systemd-analyze security` (lower is better).
LIMITS = {AGENT.name: 2.0, COLLECTOR.name: 1.5}
# The agent's graceful stop waits this long for the scheduler before the last push
# (agent/cli.py, run_daemon).
SCHEDULER_JOIN = 5.0
NOBODY = 65534


# ----------------------------------------------------------------------------- the tools


def tool(name: str, package: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)
    if path is None:
        pytest.fail(f"{name} not found: install the Debian package {package}")
    return path


def systemd_analyze(*args: str, debug: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "COLUMNS": "400",
           "SYSTEMD_LOG_COLOR": "0"}
    if debug:
        env["SYSTEMD_ANALYZE_DEBUG"] = "1"  # adds the weight, badness and range columns
    return subprocess.run([tool("systemd-analyze", "systemd"), *args], capture_output=True,
                          text=True, timeout=60, check=False, env=env)


def host_unit_dir() -> Path:
    for candidate in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")):
        if (candidate / "multi-user.target").exists():
            return candidate
    pytest.fail("systemd's targets (multi-user.target) not found: install the Debian "
                "package systemd")


# ----------------------------------------------------------------------------- the units


@dataclass(frozen=True)
class Unit:
    """A unit file's settings: section -> key -> the values of its lines, in order; an
    empty assignment resets the list, as systemd does."""

    path: Path
    settings: Mapping[str, Mapping[str, tuple[str, ...]]]

    @classmethod
    def read(cls, path: Path, *dropins: str) -> Unit:
        """The unit at ``path``, with the texts of drop-ins applied after it in order."""
        text = "\n".join([path.read_text(encoding="utf-8"), *dropins])
        sections: dict[str, dict[str, list[str]]] = {}
        current: dict[str, list[str]] | None = None
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                current = sections.setdefault(line[1:-1], {})
                continue
            key, sep, value = line.partition("=")
            assert sep and current is not None, f"{path.name}:{number}: not a setting: {raw!r}"
            values = current.setdefault(key.strip(), [])
            if value.strip():
                values.append(value.strip())
            else:
                values.clear()
        return cls(path, {s: {k: tuple(v) for k, v in keys.items()}
                          for s, keys in sections.items()})

    def values(self, key: str, section: str = "Service") -> tuple[str, ...]:
        return self.settings.get(section, {}).get(key, ())

    def one(self, key: str, section: str = "Service") -> str:
        values = self.values(key, section)
        assert len(values) == 1, f"{self.path.name}: [{section}] {key}= set {len(values)} times"
        return values[0]

    def words(self, key: str) -> list[str]:
        return [word for value in self.values(key) for word in value.split()]

    def program(self) -> str:
        return self.one("ExecStart").split()[0].lstrip("-@:+!")


def seconds(value: str) -> float:
    """A systemd time span of the forms the units use: ``45s``, ``2min``, ``90``."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|sec|min|m)?", value)
    assert match, f"time span not understood: {value!r}"
    number = float(match.group(1))
    return number * 60 if match.group(2) in ("min", "m") else number


def unit_root(tmp: Path, unit: Path, dropins: Mapping[str, str] | None = None,
              stub: bool = True) -> Path:
    """A throw-away root for ``--root``: the unit and its drop-ins under /etc, the host's
    targets and slices (read, never changed), and a stub at the ExecStart path."""
    root = tmp / f"root-{unit.stem}"
    system = root / "etc/systemd/system"
    system.mkdir(parents=True)
    shutil.copy(unit, system / unit.name)
    for name, text in (dropins or {}).items():
        directory = system / f"{unit.name}.d"
        directory.mkdir(exist_ok=True)
        (directory / name).write_text(text, encoding="utf-8")
    library = root / "usr/lib/systemd/system"
    library.mkdir(parents=True)
    for pattern in ("*.target", "*.slice"):
        for source in host_unit_dir().glob(pattern):
            if source.exists():  # a dangling alias is left out
                shutil.copy(source, library / source.name)
    if stub:
        program = root / Unit.read(unit).program().lstrip("/")
        program.parent.mkdir(parents=True)
        program.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
        program.chmod(0o755)
    return root


def verify(root: Path, unit: Path) -> subprocess.CompletedProcess[str]:
    return systemd_analyze("verify", f"--root={root}", f"/etc/systemd/system/{unit.name}")


# ----------------------------------------------------------------------------- exposure


@dataclass(frozen=True)
class Row:
    name: str
    description: str
    weight: int
    badness: int
    range: int
    exposure: str


@dataclass(frozen=True)
class Assessment:
    overall: float
    rows: tuple[Row, ...]

    def costly(self) -> list[Row]:
        """The settings that keep some exposure (badness above 0, not "does not apply")."""
        return [r for r in self.rows if 0 < r.badness <= r.range]

    def report(self, title: str) -> str:
        lines = [f"{title}: overall exposure {self.overall:.1f}"]
        lines += [f"  {r.exposure or '-':>4}  {r.name:<55} {r.description}"
                  for r in sorted(self.costly(), key=lambda r: -r.badness * r.weight / r.range)]
        return "\n".join(lines)


ROW = re.compile(r"^\S?\s+(?P<name>[A-Z]\S*)\s+(?P<description>.*?)\s+(?P<weight>\d+)\s+"
                 r"(?P<badness>\d+)\s+(?P<range>\d+)(?:\s+(?P<exposure>\d+\.\d))?\s*$")
OVERALL = re.compile(r"Overall exposure level for \S+: (\d+\.\d)")


def assess(root: Path, unit: Path) -> Assessment:
    done = systemd_analyze("security", "--offline=true", f"--root={root}", "--no-pager",
                           f"/etc/systemd/system/{unit.name}", debug=True)
    assert done.returncode == 0, done.stdout + done.stderr
    overall = OVERALL.search(done.stdout)
    assert overall, f"no overall figure in:\n{done.stdout}"
    rows = tuple(Row(m["name"], m["description"], int(m["weight"]), int(m["badness"]),
                     int(m["range"]), m["exposure"] or "")
                 for m in map(ROW.match, done.stdout.splitlines()) if m)
    assert len(rows) > 50, f"the table was not understood:\n{done.stdout}"
    return Assessment(float(overall.group(1)), rows)


def documented_dropins() -> list[tuple[str, str, str, float]]:
    """(unit, drop-in file name, text, the figure the guide gives) for each drop-in
    shown in docs/systemd.md."""
    blocks = re.findall(r"```ini\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.DOTALL)
    found = []
    for block in blocks:
        path = re.match(r"# /etc/systemd/system/(\S+\.service)\.d/(\S+\.conf)\n", block)
        if path is None:
            continue
        figure = re.search(r"systemd-analyze security: (\d+\.\d)", block)
        assert figure, f"the drop-in {path.group(2)} in docs/systemd.md gives no figure"
        found.append((path.group(1), path.group(2), block, float(figure.group(1))))
    return found


# ----------------------------------------------------------------------------- verify


@pytest.mark.parametrize("unit", [AGENT, COLLECTOR], ids=lambda u: u.stem)
def test_the_unit_passes_verify_without_a_warning(unit: Path, tmp_path: Path) -> None:
    done = verify(unit_root(tmp_path, unit), unit)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", f"systemd-analyze verify warned:\n{done.stderr}"


@pytest.mark.parametrize("unit", [AGENT, COLLECTOR], ids=lambda u: u.stem)
def test_verify_refuses_the_unit_when_its_program_is_missing(unit: Path,
                                                             tmp_path: Path) -> None:
    done = verify(unit_root(tmp_path, unit, stub=False), unit)
    assert done.returncode != 0
    assert Unit.read(unit).program() in done.stderr


# ----------------------------------------------------------------------------- security


@pytest.mark.parametrize("unit", [AGENT, COLLECTOR], ids=lambda u: u.stem)
def test_the_exposure_is_within_the_limit(unit: Path, tmp_path: Path) -> None:
    result = assess(unit_root(tmp_path, unit), unit)
    print("\n" + result.report(f"{unit.name} (limit {LIMITS[unit.name]:.1f})"))
    assert result.overall <= LIMITS[unit.name], result.report(unit.name)


def test_every_drop_in_of_the_guide_passes_verify_and_has_the_figure_it_gives(
        tmp_path: Path) -> None:
    dropins = documented_dropins()
    assert {unit for unit, *_ in dropins} == {AGENT.name, COLLECTOR.name}
    for unit_name, name, text, figure in dropins:
        unit = UNITS / unit_name
        root = unit_root(tmp_path / name, unit, {name: text})
        done = verify(root, unit)
        assert done.returncode == 0 and done.stderr == "", f"{name}:\n{done.stderr}"
        result = assess(root, unit)
        print("\n" + result.report(f"{unit_name} with {name} (the guide says {figure:.1f})"))
        assert result.overall == figure, f"{name}: measured {result.overall}, guide {figure}"


# ----------------------------------------------------------------------- what the agent needs


def test_the_agent_may_write_where_the_example_configuration_writes() -> None:
    unit = Unit.read(AGENT)
    config = load_config(EXAMPLE_CONFIG)
    writable = [Path("/var/lib", d) for d in unit.words("StateDirectory")]
    writable += [Path(p.lstrip("-")) for p in unit.words("ReadWritePaths")]
    for needed in (config.state_dir, config.state_dir / "checks", config.spool_dir):
        assert any(needed.is_relative_to(w) for w in writable), \
            f"{needed} is read-only under the unit (writable: {writable})"
    assert unit.one("ProtectSystem") == "strict"


def test_the_agent_reads_the_configuration_the_example_describes() -> None:
    unit = Unit.read(AGENT)
    config = load_config(EXAMPLE_CONFIG)
    argv = unit.one("ExecStart").split()
    assert argv[1:] == ["run", "--config", "/etc/watchkeeper/agent.toml"]
    assert "/etc/watchkeeper/agent.toml" in EXAMPLE_CONFIG.read_text(encoding="utf-8")
    assert config.collector.token_file is not None
    assert Path(config.collector.token_file).is_relative_to("/etc/watchkeeper")
    # disk measures file systems under /home: "yes" or "tmpfs" would hide them.
    assert unit.one("ProtectHome") == "read-only"


def test_the_agent_keeps_the_address_families_and_groups_the_checks_use() -> None:
    unit = Unit.read(AGENT)
    families = set(unit.words("RestrictAddressFamilies"))
    # the collector and the servers (INET), MySQL and chronyc sockets (UNIX), nft (NETLINK)
    assert families == {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}
    # intrusion reads auth.log (root:adm) or the journal (systemd-journal)
    assert set(unit.words("SupplementaryGroups")) == {"adm", "systemd-journal"}
    assert set(unit.words("CapabilityBoundingSet")) == set(unit.words("AmbientCapabilities"))


def test_the_agent_unit_waits_for_the_graceful_stop() -> None:
    unit = Unit.read(AGENT)
    config = load_config(EXAMPLE_CONFIG)
    # run_daemon: the scheduler's join, then the last push (one request and its budget).
    needed = SCHEDULER_JOIN + float(config.collector.timeout) + FINAL_PUSH_BUDGET + 1.0
    assert seconds(unit.one("TimeoutStopSec")) >= needed
    assert unit.one("KillMode") == "mixed"  # SIGTERM to the agent, not to a running check
    assert unit.one("KillSignal") == "SIGTERM"


def test_the_collector_has_no_capability_and_a_user_of_its_own() -> None:
    collector, agent = Unit.read(COLLECTOR), Unit.read(AGENT)
    assert collector.values("CapabilityBoundingSet") == ()
    assert collector.values("AmbientCapabilities") == ()
    assert collector.one("User") != agent.one("User")
    assert collector.one("StateDirectory") != agent.one("StateDirectory")


# ------------------------------------------------------- the agent as the unit runs it

RULESET = """\
table inet filter {
    chain input {
        type filter hook input priority 0; policy drop;
        iif "lo" accept
        tcp dport 22 accept
    }
}
"""


@pytest.fixture
def sandbox() -> Iterator[Path]:
    """A directory the unprivileged agent can reach (tmp_path's parents are root-only):
    its configuration, a state directory it owns, and a backup only root may read."""
    if os.geteuid() != 0:
        pytest.fail("running the agent under the unit's capabilities needs root")
    top = Path(tempfile.mkdtemp(prefix="watchkeeper-unit-"))
    try:
        top.chmod(0o755)
        state = top / "state"
        state.mkdir()
        os.chown(state, NOBODY, NOBODY)
        backups = top / "backups"
        backups.mkdir(mode=0o700)
        backup = backups / "files-1.gz"
        backup.write_bytes(gzip.compress(b"the nightly archive\n" * 100))
        backup.chmod(0o600)
        an_hour_ago = time.time() - 3600  # older than the check's settle time
        os.utime(backup, (an_hour_ago, an_hour_ago))
        (top / "rules.nft").write_text(RULESET, encoding="utf-8")
        config = top / "agent.toml"
        config.write_text(f"""\
[agent]
host = "unit.example"
state_dir = "{state}"

[checks.firewall]
allowed_open_ports = ["22/tcp"]

[checks.ntp]
servers = ["127.0.0.1"]

[checks.backup]
[[checks.backup.sets]]
name = "files"
directory = "{backups}"
pattern = "files-*.gz"
max_age_warn = "1d"
max_age_crit = "2d"
""", encoding="utf-8")
        config.chmod(0o644)
        reachable = subprocess.run(
            [tool("setpriv", "util-linux"), f"--reuid={NOBODY}", f"--regid={NOBODY}",
             "--clear-groups", sys.executable, "-c", "import agent.cli"],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
        if reachable.returncode != 0:
            pytest.fail(f"the venv ({sys.executable}) and the checkout ({ROOT}) must be "
                        f"readable by other users for this test: {reachable.stderr[-300:]}")
        yield top
    finally:
        shutil.rmtree(top)


def syscall_group(name: str, seen: frozenset[str] = frozenset()) -> frozenset[str]:
    """The system calls of a systemd group such as ``@system-service``, nested groups
    expanded, as ``systemd-analyze syscall-filter`` lists them."""
    done = systemd_analyze("syscall-filter", name)
    assert done.returncode == 0, done.stderr
    calls: set[str] = set()
    for line in done.stdout.splitlines()[1:]:
        word = line.strip()
        if word.startswith("@") and word not in seen:
            calls |= syscall_group(word, seen | {name})
        elif word and not word.startswith(("#", "@")):
            calls.add(word)
    return frozenset(calls)


def allowed_calls(unit: Unit) -> frozenset[str]:
    """What the unit lets through: its SystemCallFilter= lines in order (the first makes an
    allow list, a plain line adds, a ``~`` line takes away), less the clock-setting calls
    that ProtectClock=yes refuses with a filter of its own."""
    allowed: set[str] = set()
    for value in unit.values("SystemCallFilter"):
        words = value.removeprefix("~").split()
        calls = set().union(*(syscall_group(w) if w.startswith("@") else {w} for w in words))
        allowed = allowed - calls if value.startswith("~") else allowed | calls
    if unit.values("ProtectClock")[-1:] == ("yes",):
        allowed -= syscall_group("@clock")
    assert unit.one("SystemCallErrorNumber") == "EPERM"
    return frozenset(allowed)


# Loads a seccomp filter that allows the calls listed in the file argv[1], socket() only
# for the address families numbered in argv[2] (RestrictAddressFamilies=), and fails any
# other call with EPERM (SystemCallErrorNumber=EPERM); then executes argv[3:] under it, as
# systemd does for the unit's process. A name this architecture does not have is left out.
SECCOMP_LAUNCHER = """\
import errno, os, sys, seccomp
f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
for name in open(sys.argv[1]).read().split():
    try:
        if name != "socket":
            f.add_rule(seccomp.ALLOW, name)
    except RuntimeError:
        pass
for family in sys.argv[2].split(","):
    f.add_rule(seccomp.ALLOW, "socket", seccomp.Arg(0, seccomp.EQ, int(family)))
f.load()
os.execv(sys.argv[3], sys.argv[3:])
"""
SYSTEM_PYTHON = "/usr/bin/python3"  # python3-seccomp is built for Debian's python3


def seccomp_launcher(sandbox: Path, calls: frozenset[str], families: list[str]) -> list[str]:
    found = subprocess.run([SYSTEM_PYTHON, "-c", "import seccomp"], capture_output=True,
                           text=True, timeout=60, check=False)
    if found.returncode != 0:
        pytest.fail("python3 cannot import seccomp: install the Debian package "
                    f"python3-seccomp ({found.stderr.strip()[-200:]})")
    listing = sandbox / "allowed-calls"
    listing.write_text("\n".join(sorted(calls)), encoding="utf-8")
    listing.chmod(0o644)
    numbers = ",".join(str(int(getattr(socket, family))) for family in families)
    return [SYSTEM_PYTHON, "-c", SECCOMP_LAUNCHER, str(listing), numbers]


def run_as_the_unit(sandbox: Path, *, capabilities: bool,
                    syscalls: frozenset[str] | None = None) -> dict[tuple[str, str], Any]:
    """``watchkeeper-agent check`` as an unprivileged user with the unit's groups and,
    when asked, exactly its capabilities, in a network namespace holding RULESET; with
    ``syscalls``, under a filter allowing only those."""
    unit = Unit.read(AGENT)
    caps = [c.removeprefix("CAP_").lower() for c in unit.words("AmbientCapabilities")]
    wanted = ",".join(["-all", *(f"+{c}" for c in caps)] if capabilities else ["-all"])
    gids = ",".join(str(grp.getgrnam(g).gr_gid) for g in unit.words("SupplementaryGroups"))
    agent = Path(sys.executable).parent / "watchkeeper-agent"  # the venv's console script
    as_unit = [tool("setpriv", "util-linux"), f"--reuid={NOBODY}", f"--regid={NOBODY}",
               f"--groups={gids}", f"--inh-caps={wanted}", f"--ambient-caps={wanted}",
               f"--bounding-set={wanted}", "--no-new-privs", "--",
               *(seccomp_launcher(sandbox, syscalls, unit.words("RestrictAddressFamilies"))
                 if syscalls is not None else []),
               str(agent), "check", "--json", "--config", str(sandbox / "agent.toml"),
               "firewall", "backup", "ntp"]
    script = f'{tool("nft", "nftables")} -f "$1" && shift && exec "$@"'
    done = subprocess.run([tool("unshare", "util-linux"), "--net", "sh", "-c", script, "sh",
                           str(sandbox / "rules.nft"), *as_unit],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.startswith("["), done.stdout + done.stderr
    return {(r["check"], r["target"]): r for r in json.loads(done.stdout)}


def test_the_units_capabilities_let_the_agent_read_the_ruleset_and_a_root_only_backup(
        sandbox: Path) -> None:
    results = run_as_the_unit(sandbox, capabilities=True)
    firewall, backup = results[("firewall", "input")], results[("backup", "files")]
    assert firewall["status"] == 0, firewall["summary"]
    assert "policy drop" in firewall["summary"]
    assert backup["status"] == 0, backup["summary"]


def test_without_the_units_capabilities_both_are_unknown(sandbox: Path) -> None:
    results = run_as_the_unit(sandbox, capabilities=False)
    firewall, backup = results[("firewall", "input")], results[("backup", "files")]
    assert firewall["status"] == 3, firewall["summary"]
    assert "cannot read the firewall ruleset" in firewall["summary"]
    assert backup["status"] == 3, backup["summary"]


def test_under_the_units_system_call_filter_the_checks_run_but_ntp_cannot_read_the_kernel(
        sandbox: Path) -> None:
    results = run_as_the_unit(sandbox, capabilities=True,
                              syscalls=allowed_calls(Unit.read(AGENT)))
    firewall, backup = results[("firewall", "input")], results[("backup", "files")]
    assert firewall["status"] == 0, firewall["summary"]
    assert backup["status"] == 0, backup["summary"]
    # No chronyd or ntpd answers in the namespace: ntp falls back to adjtimex, which the
    # unit refuses (docs/systemd.md, "What the sandbox changes for the checks").
    local = results[("ntp", "local")]
    assert local["status"] == 3, local["summary"]
    assert "adjtimex failed: Operation not permitted" in local["summary"]


def test_the_kernel_clock_drop_in_gives_ntp_the_kernel_back(sandbox: Path) -> None:
    (text,) = [text for _, name, text, _ in documented_dropins() if name == "kernel-clock.conf"]
    results = run_as_the_unit(sandbox, capabilities=True,
                              syscalls=allowed_calls(Unit.read(AGENT, text)))
    local = results[("ntp", "local")]
    assert local["status"] != 3, local["summary"]
    assert local["details"]["source"] == "kernel"


def test_the_collector_serves_under_its_units_filter_as_an_unprivileged_user() -> None:
    """The collector's unit gives no capability and its filter no netlink: uvicorn, uvloop,
    the store process and SQLite in the working directory still serve."""
    if os.geteuid() != 0:
        pytest.fail("running the collector as another user needs root")
    unit = Unit.read(COLLECTOR)
    top = Path(tempfile.mkdtemp(prefix="watchkeeper-collector-unit-"))
    try:
        top.chmod(0o755)
        working = top / "state"  # the unit's WorkingDirectory=, its StateDirectory=
        working.mkdir()
        os.chown(working, NOBODY, NOBODY)
        # Debian's python3 runs the collector from this checkout and the venv's packages, so
        # that the test does not depend on where the venv's interpreter lives.
        path = os.pathsep.join([str(ROOT), sysconfig.get_paths()["purelib"],
                                sysconfig.get_paths()["platlib"]])
        port = free_port()
        argv = [tool("setpriv", "util-linux"), f"--reuid={NOBODY}", f"--regid={NOBODY}",
                "--clear-groups", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all",
                "--no-new-privs", "--",
                *seccomp_launcher(top, allowed_calls(unit), unit.words("RestrictAddressFamilies")),
                SYSTEM_PYTHON, "-m", "collector.cli", "serve", "--host", "127.0.0.1",
                "--port", str(port)]
        server = subprocess.Popen(argv, cwd=working, env={**os.environ, "PYTHONPATH": path},
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        answer = None
        try:
            deadline = time.monotonic() + 30
            while answer is None and server.poll() is None and time.monotonic() < deadline:
                try:
                    answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
                except httpx.TransportError:
                    time.sleep(0.2)
        finally:
            server.terminate()  # SIGTERM, as KillSignal= says
            output, _ = server.communicate(timeout=seconds(unit.one("TimeoutStopSec")))
        assert answer is not None, f"the collector never answered:\n{output[-2000:]}"
        assert answer.status_code == 200 and "watchkeeper" in answer.text, answer.text[:500]
        assert "Application shutdown complete" in output, output[-2000:]
        assert (working / "var" / "watchkeeper.db").exists(), output[-2000:]
    finally:
        shutil.rmtree(top)
