"""The offline agent bundle as an operator uses it: build, install, enroll, upgrade, remove.

- ``deploy/bundle/build.sh`` builds the tarball (twice: the project's version and a
  higher one); ``install.sh --root`` installs it into a throw-away root with the package
  index unreachable, and the installed agent runs ``watchkeeper-agent check``;
- a second install changes no file (paths, modes, owners, mtimes, contents) and says
  ``unchanged``;
- ``--enroll-secret-file`` enrolls against a real collector process, the token lands in
  the token file (0640) and the installed agent pushes with it; a wrong secret fails the
  install with the collector's reason and leaves no token;
- an upgrade in place while results wait in the spool loses none of them: every spooled
  result id reaches the collector exactly once, pushed by the upgraded agent;
- ``uninstall.sh`` removes the agent and keeps configuration, token, state and spool;
  ``--purge`` removes those too; files of others stay.

Nothing here touches the machine's /etc, /opt, /var, users or systemd: every path lies
under the test's own directory. The wheels the bundle needs are fetched from the package
index once per run (into WATCHKEEPER_WHEELHOUSE_CACHE when set, to reuse across runs).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.spool import peek_stats
from tests.support.processes import Collector, Proc, wait_until

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "deploy" / "bundle" / "build.sh"
CUSTOMER = "acme"
SECRET = "bundle-test-enrollment-secret-42"
# Whatever the bundle's install would fetch from the network fails at once.
OFFLINE = {"PIP_NO_INDEX": "1", "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}


@dataclass(frozen=True)
class Built:
    """A built bundle, unpacked: its version and its install.sh."""

    version: str
    tarball: Path
    directory: Path

    @property
    def install(self) -> Path:
        return self.directory / "install.sh"

    @property
    def uninstall(self) -> Path:
        return self.directory / "uninstall.sh"


def _higher(version: str) -> str:
    parts = [int(p) for p in re.findall(r"\d+", version)[:3]]
    parts += [0] * (3 - len(parts))
    return f"{parts[0]}.{parts[1]}.{parts[2] + 1}"


def _build(out: Path, cache: Path, version: str | None = None) -> Built:
    args = [str(BUILD), *(["--version", version] if version else []), str(out)]
    env = {**os.environ, "PYTHON": sys.executable, "WATCHKEEPER_WHEELHOUSE_CACHE": str(cache)}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    assert done.returncode == 0, f"build.sh failed:\n{done.stdout}\n{done.stderr}"
    tarball = Path(done.stdout.strip().splitlines()[-1])
    name = tarball.name.removesuffix(".tar.gz")
    unpacked = out / "unpacked"
    unpacked.mkdir(exist_ok=True)
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(unpacked)], check=True)
    return Built(name.removeprefix("watchkeeper-agent-"), tarball, unpacked / name)


@pytest.fixture(scope="module")
def wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """WATCHKEEPER_WHEELHOUSE_CACHE, else a directory of this run: the dependency wheels
    are fetched once."""
    cache_env = os.environ.get("WATCHKEEPER_WHEELHOUSE_CACHE")
    return Path(cache_env) if cache_env else tmp_path_factory.mktemp("wheel-cache")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, wheel_cache: Path) -> tuple[Built, Built]:
    """The project's bundle and one of a higher version, built once."""
    cache = wheel_cache
    started = time.monotonic()
    first = _build(tmp_path_factory.mktemp("bundle-1"), cache)
    second = _build(tmp_path_factory.mktemp("bundle-2"), cache, _higher(first.version))
    print(f"two bundles built in {time.monotonic() - started:.1f} s: "
          f"{first.tarball.name} ({first.tarball.stat().st_size / 1e6:.1f} MB), "
          f"{second.tarball.name}")
    return first, second


@pytest.fixture
def bundle(bundles: tuple[Built, Built]) -> Built:
    return bundles[0]


def install(built: Built, root: Path, *args: str | Path, ok: bool = True
            ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(built.install), "--root", str(root), *map(str, args)],
                          capture_output=True, text=True, env={**os.environ, **OFFLINE},
                          timeout=300, check=False)
    if ok:
        assert done.returncode == 0, f"install.sh failed:\n{done.stdout}\n{done.stderr}"
    return done


def last_line(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class Installed:
    """Where the throw-away root puts things."""

    root: Path

    @property
    def agent(self) -> Path:
        return self.root / "opt/watchkeeper/venv/bin/watchkeeper-agent"

    @property
    def config(self) -> Path:
        return self.root / "etc/watchkeeper/agent.toml"

    @property
    def token(self) -> Path:
        return self.root / "etc/watchkeeper/token"

    @property
    def state(self) -> Path:
        return self.root / "var/lib/watchkeeper"

    @property
    def unit(self) -> Path:
        return self.root / "etc/systemd/system/watchkeeper-agent.service"

    def run_agent(self, log: Path) -> Proc:
        return Proc([str(self.agent), "run", "--config", str(self.config)], log).start()


def _mount_of(path: Path) -> tuple[str, str]:
    """(mount point, file system type) of ``path``."""
    mount = path.resolve()
    while not os.path.ismount(mount):
        mount = mount.parent
    fstype = ""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[1] == str(mount):
            fstype = fields[2]
    return str(mount), fstype


def agent_config(where: Path, root: Path, *, host: str, url: str = "http://127.0.0.1:9",
                 fast: bool = False) -> Path:
    """An agent.toml for the throw-away root: a disk check of the test's own file system,
    state and token under the root."""
    mount, fstype = _mount_of(where)
    cadence = ('push_interval = "0.3s"\nbackoff_initial = "0.1s"\nbackoff_max = "0.5s"\n'
               'timeout = "2s"\n') if fast else ""
    config = where / f"agent-{host}.toml"
    config.write_text(
        f'[agent]\nhost = "{host}"\nstate_dir = "{root}/var/lib/watchkeeper"\n\n'
        f'[collector]\nurl = "{url}"\ntoken_file = "{root}/etc/watchkeeper/token"\n{cadence}\n'
        f'[checks.agent]\ninterval = "{"0.2s" if fast else "60s"}"\n\n'
        f'[checks.disk]\ninterval = "{"0.5s" if fast else "60s"}"\njitter = "0s"\n'
        f'include_mounts = ["{mount}"]\ninclude_types = ["{fstype}"]\n'
        'space_warn_pct = 99\nspace_crit_pct = 100\n'
    )
    return config


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under ``root``: type, mode, owner, mtime and content (or link target)."""
    seen: dict[str, tuple[object, ...]] = {}
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(directory, name)
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                content: object = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                content = None
            seen[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid,
                                                 st.st_mtime_ns, content)
    return seen


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    """A collector process taking the enrollment secret (not started yet)."""
    secret_file = tmp_path / "enrollment-secret"
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(0o600)
    workdir = tmp_path / "collector"
    workdir.mkdir()
    server = Collector(workdir, extra_config=f'\n[enrollment]\nsecret_file = "{secret_file}"\n')
    try:
        yield server
    finally:
        server.stop()


def _host(collector: Collector, fqdn: str) -> dict[str, object] | None:
    answer = collector.get(f"/api/v1/hosts/{fqdn}")
    return answer.json() if answer.status_code == 200 else None


# -- the tests ---------------------------------------------------------------------------------


def test_the_installed_agent_checks_and_a_second_install_changes_nothing(
    bundle: Built, tmp_path: Path,
) -> None:
    manifest = json.loads((bundle.directory / "MANIFEST.json").read_text())
    wheels = sorted(manifest["wheels"])
    assert [w.split("-")[0] for w in wheels] == ["ntplib", "pip", "psutil", "watchkeeper"], \
        "the wheelhouse holds the agent, its dependencies and pip, nothing of the collector"

    root = tmp_path / "root"
    where = Installed(root)
    config = agent_config(tmp_path, root, host="check.bundle.example")
    started = time.monotonic()
    first = install(bundle, root, "--config", config)
    took = time.monotonic() - started
    assert last_line(first) == f"watchkeeper-agent {bundle.version}: installed", first.stdout
    assert where.config.read_bytes() == config.read_bytes()
    assert stat.S_IMODE(where.config.stat().st_mode) == 0o640
    assert stat.S_IMODE(where.config.parent.stat().st_mode) == 0o750
    assert stat.S_IMODE(where.state.stat().st_mode) == 0o700
    unit = where.unit.read_text()
    assert f"ExecStart={root}/opt/watchkeeper/venv/bin/watchkeeper-agent run --config " \
           f"{root}/etc/watchkeeper/agent.toml" in unit
    assert f"ReadWritePaths={root}/var/lib/watchkeeper" in unit
    version = subprocess.run([str(where.agent), "--version"], capture_output=True, text=True,
                             check=True)
    assert version.stdout.split() == ["watchkeeper-agent", bundle.version]
    python = where.agent.parent / "python"
    for module in ("collector", "fastapi", "sqlalchemy"):
        assert subprocess.run([str(python), "-I", "-c", f"import {module}"], capture_output=True,
                              check=False).returncode != 0, f"{module} is in the agent's venv"
    assert not (where.agent.parent / "watchkeeper-collector").exists()

    checked = subprocess.run(
        [str(where.agent), "check", "--json", "--config", str(where.config)],
        capture_output=True, text=True, timeout=60, check=False)
    rows = json.loads(checked.stdout)
    assert {row["check"] for row in rows} == {"agent", "disk"}, checked.stderr
    disk = next(row for row in rows if row["check"] == "disk")
    assert disk["target"] == _mount_of(tmp_path)[0]
    assert disk["status"] in (0, 1, 2), disk["summary"]  # measured, not UNKNOWN
    assert checked.returncode == max(row["status"] for row in rows)
    assert (where.state / "checks").is_dir()

    before = snapshot(root)
    second = install(bundle, root, "--config", config)
    assert last_line(second) == f"watchkeeper-agent {bundle.version}: unchanged"
    assert second.stdout.strip().splitlines() == [last_line(second)], second.stdout
    after = snapshot(root)
    assert {k: v for k, v in after.items() if before.get(k) != v} == {}
    assert set(before) == set(after)
    print(f"install {took:.1f} s; {len(after)} paths unchanged by the second install")


def test_a_build_of_the_same_source_is_the_same_tarball(
    bundle: Built, tmp_path: Path, wheel_cache: Path,
) -> None:
    again = _build(tmp_path, wheel_cache)
    assert again.tarball.name == bundle.tarball.name
    assert hashlib.sha256(again.tarball.read_bytes()).hexdigest() == \
        hashlib.sha256(bundle.tarball.read_bytes()).hexdigest()


def test_install_enrolls_with_a_secret_and_the_agent_pushes(
    bundle: Built, tmp_path: Path, collector: Collector,
) -> None:
    collector.start()
    secret_file = collector.workdir.parent / "enrollment-secret"
    root = tmp_path / "root"
    where = Installed(root)
    fqdn = "web1.bundle.example"
    config = agent_config(tmp_path, root, host=fqdn, url=collector.url, fast=True)

    wrong = tmp_path / "wrong-secret"
    wrong.write_text("not-the-enrollment-secret-000\n")
    refused = install(bundle, root, "--config", config, "--enroll-secret-file", wrong,
                      "--customer", CUSTOMER, ok=False)
    assert refused.returncode == 1
    assert "the enrollment secret is not valid" in refused.stderr
    assert not where.token.exists()

    done = install(bundle, root, "--config", config, "--enroll-secret-file", secret_file,
                   "--customer", CUSTOMER, "--tag", "web")
    assert last_line(done) == f"watchkeeper-agent {bundle.version}: installed"
    assert f"enrolled {fqdn} for customer {CUSTOMER}" in done.stdout
    assert stat.S_IMODE(where.token.stat().st_mode) == 0o640
    assert len(where.token.read_text().strip()) >= 40
    enrolled = _host(collector, fqdn)
    assert enrolled is not None and enrolled["customer"] == CUSTOMER
    assert enrolled["tags"] == ["web"]

    # The token is kept: a second install does not enroll again, nor does the agent.
    again = install(bundle, root, "--config", config, "--enroll-secret-file", secret_file,
                    "--customer", CUSTOMER)
    assert last_line(again) == f"watchkeeper-agent {bundle.version}: unchanged"
    twice = subprocess.run(
        [str(where.agent), "enroll", "--config", str(where.config), "--secret-file",
         str(secret_file), "--customer", CUSTOMER], capture_output=True, text=True,
        timeout=60, check=False)
    assert twice.returncode == 1
    assert "holds a token already" in twice.stderr

    agent = where.run_agent(tmp_path / "agent.log")
    try:
        wait_until(lambda: (_host(collector, fqdn) or {}).get("last_seen_at") is not None,
                   30, f"the installed agent's first push\n{agent.tail()}")
    finally:
        assert agent.stop() == 0, agent.tail()
    host = _host(collector, fqdn)
    assert host is not None and host["agent_version"] == bundle.version


def _spooled_ids(state: Path) -> list[str]:
    """The ids of the results waiting in the spool of a stopped agent."""
    with contextlib.closing(sqlite3.connect(state / "spool" / "spool.sqlite3")) as db:
        return [row[0] for row in db.execute("SELECT id FROM results ORDER BY seq")]


def _depth(state: Path) -> int:
    """Results waiting in the spool of a running agent."""
    stats = peek_stats(state / "spool")
    return 0 if stats is None else stats.depth


def _stored(collector: Collector, fqdn: str) -> dict[str, int]:
    """Times the collector stored each result id of ``fqdn``."""
    with sqlite3.connect(collector.workdir / "collector.db") as db:
        rows = db.execute(
            "SELECT r.result_uid, COUNT(*) FROM results r JOIN hosts h ON h.id = r.host_id "
            "WHERE h.fqdn = ? GROUP BY r.result_uid", (fqdn,)).fetchall()
    return {uid: int(n) for uid, n in rows}


def test_an_upgrade_in_place_loses_no_spooled_result(
    bundles: tuple[Built, Built], tmp_path: Path, collector: Collector,
) -> None:
    old, new = bundles
    root = tmp_path / "root"
    where = Installed(root)
    fqdn = "db1.bundle.example"
    config = agent_config(tmp_path, root, host=fqdn, url=collector.url, fast=True)
    collector.start()
    install(old, root, "--config", config, "--enroll-secret-file",
            collector.workdir.parent / "enrollment-secret", "--customer", CUSTOMER)
    collector.stop()

    # The collector is away: the old agent's results wait in the spool.
    agent = where.run_agent(tmp_path / "agent-old.log")
    try:
        wait_until(lambda: _depth(where.state) >= 20, 30,
                   f"results to wait in the spool\n{agent.tail()}")
    finally:
        assert agent.stop() == 0, agent.tail()
    waiting = _spooled_ids(where.state)
    assert len(waiting) >= 20

    upgraded = install(new, root)
    assert last_line(upgraded) == f"watchkeeper-agent {new.version}: upgraded from " \
                                  f"{old.version}", upgraded.stdout
    assert _spooled_ids(where.state) == waiting, "the upgrade touched the spool"
    assert where.config.read_bytes() == config.read_bytes()
    assert [p.name for p in (root / "opt/watchkeeper/venvs").iterdir()] == \
        [os.readlink(root / "opt/watchkeeper/venv").split("/")[-1]]

    collector.start()
    agent = where.run_agent(tmp_path / "agent-new.log")
    try:
        wait_until(lambda: set(waiting) <= set(_stored(collector, fqdn)), 60,
                   f"every spooled result at the collector\n{agent.tail()}")
    finally:
        assert agent.stop() == 0, agent.tail()
    stored = _stored(collector, fqdn)
    assert [uid for uid in waiting if stored.get(uid) != 1] == []
    host = _host(collector, fqdn)
    assert host is not None and host["agent_version"] == new.version
    print(f"{len(waiting)} results spooled across the upgrade {old.version} -> "
          f"{new.version}, each stored once")


def test_uninstall_keeps_the_data_and_purge_removes_it_but_nothing_else(
    bundle: Built, tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    where = Installed(root)
    config = agent_config(tmp_path, root, host="gone.bundle.example")
    token = tmp_path / "token"
    token.write_text("a-token-from-the-operator\n")
    install(bundle, root, "--config", config, "--token-file", token)
    assert where.token.read_text() == "a-token-from-the-operator\n"
    subprocess.run([str(where.agent), "check", "--config", str(where.config)],
                   capture_output=True, timeout=60, check=False)
    (where.state / "spool").mkdir()
    (where.state / "spool" / "spool.sqlite3").write_bytes(b"results not yet pushed")
    others = [root / "etc/watchkeeper/notes.txt", root / "opt/other/keep",
              root / "etc/systemd/system/other.service", root / "var/lib/other/data"]
    for path in others:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not the agent's\n")

    # Without --purge, from the installation itself: the agent goes, its data stays.
    removed = subprocess.run([str(root / "opt/watchkeeper/uninstall.sh")],
                             capture_output=True, text=True, timeout=60, check=False)
    assert removed.returncode == 0, removed.stderr
    assert last_line(removed).startswith(f"watchkeeper-agent {bundle.version}: uninstalled")
    assert not (root / "opt/watchkeeper").exists()
    assert not where.unit.exists()
    for kept in (where.config, where.token, where.state / "checks",
                 where.state / "spool" / "spool.sqlite3", *others):
        assert kept.exists(), f"uninstall removed {kept}"

    purged = subprocess.run([str(bundle.uninstall), "--root", str(root), "--purge"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert purged.returncode == 0, purged.stderr
    assert last_line(purged).endswith(": purged")
    for gone in (where.config, where.token, where.state):
        assert not gone.exists(), f"--purge left {gone}"
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert left == sorted(str(p.relative_to(root)) for p in others)


FAKE_SYSTEMCTL = """#!/bin/sh
# Stands in for systemctl: records each call with the venv the link points to then, and
# keeps the unit's enabled and active state in files.
state={state}
echo "$* -> $(readlink {prefix}/venv)" >> "$state/calls"
case "$1" in
    is-active) [ -e "$state/active" ] ;;
    is-enabled) [ -e "$state/enabled" ] ;;
    enable) touch "$state/enabled" ;;
    start) touch "$state/active" ;;
    stop) rm -f "$state/active" ;;
    disable) rm -f "$state/enabled" "$state/active" ;;
    daemon-reload) ;;
    *) exit 1 ;;
esac
"""


def test_with_systemd_an_upgrade_stops_the_old_agent_and_starts_the_new(
    bundles: tuple[Built, Built], tmp_path: Path,
) -> None:
    # A prefix layout with systemd, where systemctl is a stand-in that records its calls
    # (the machine's own systemd and users are not touched).
    old, new = bundles
    prefix, state = tmp_path / "opt", tmp_path / "systemctl"
    state.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text(FAKE_SYSTEMCTL.format(state=state, prefix=prefix))
    fake.chmod(0o755)
    token = tmp_path / "token-given"
    token.write_text("a-token-from-the-operator\n")
    config = agent_config(tmp_path, tmp_path / "unused-root", host="sd.bundle.example")
    options = ["--prefix", prefix, "--config-dir", tmp_path / "etc", "--state-dir",
               tmp_path / "state", "--unit-dir", tmp_path / "units", "--no-user",
               "--user", "root", "--config", config, "--token-file", token]
    env = {**os.environ, **OFFLINE, "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    def run(built: Built) -> str:
        done = subprocess.run([str(built.install), *map(str, options)], capture_output=True,
                              text=True, env=env, timeout=300, check=False)
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
        return last_line(done)

    def calls() -> list[str]:
        lines = (state / "calls").read_text().splitlines()
        (state / "calls").unlink()
        return [line.replace("watchkeeper-agent.service", "UNIT") for line in lines]

    assert run(old) == f"watchkeeper-agent {old.version}: installed"
    old_venv = os.readlink(prefix / "venv")
    assert calls() == [f"{c} -> {old_venv}" for c in (
        "daemon-reload", "is-enabled --quiet UNIT", "enable UNIT", "is-active --quiet UNIT",
        "start UNIT")]
    unit = (tmp_path / "units" / "watchkeeper-agent.service").read_text()
    assert f"ExecStart={prefix}/venv/bin/watchkeeper-agent run --config {tmp_path}/etc/" \
           "agent.toml" in unit
    assert "\nUser=root\n" in unit

    assert run(old) == f"watchkeeper-agent {old.version}: unchanged"
    assert [c.split(" -> ")[0] for c in calls()] == ["is-enabled --quiet UNIT"]  # a question

    assert run(new) == f"watchkeeper-agent {new.version}: upgraded from {old.version}"
    new_venv = os.readlink(prefix / "venv")
    assert calls() == [
        f"is-active --quiet UNIT -> {old_venv}",
        f"stop UNIT -> {old_venv}",          # stopped before the swap
        f"is-enabled --quiet UNIT -> {new_venv}",
        f"is-active --quiet UNIT -> {new_venv}",
        f"start UNIT -> {new_venv}",         # started on the new venv
    ]
    assert (state / "active").exists()

    removed = subprocess.run([str(prefix / "uninstall.sh")], capture_output=True, text=True,
                             env=env, timeout=60, check=False)
    assert removed.returncode == 0, removed.stderr
    assert [c.split(" -> ")[0] for c in calls()] == ["disable --now UNIT", "daemon-reload"]
    assert not (tmp_path / "units" / "watchkeeper-agent.service").exists()
    assert (tmp_path / "etc" / "agent.toml").exists()
