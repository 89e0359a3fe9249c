"""OsUpdatesCheck with its seams: recorded outputs through the runner, a fake root tree."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from checks.commands import CommandOutput
from checks.os_updates import (
    DAY,
    OsUpdatesCheck,
    OsUpdatesConfig,
    family_from_os_release,
    parse_apt_simulation,
    parse_check_update,
    parse_updateinfo,
    rpm_name,
)
from checks.registry import CheckContext
from checks.result import CheckResult, Status
from tests.checks.os_updates_scenarios import DATA, debian_tree

NOW = 1_800_000_000.0


def recorded(name: str) -> str:
    return (DATA / name).read_text()


class Recorded:
    """A command runner answering from recorded outputs, keyed by a word of the command."""

    def __init__(self, answers: dict[str, CommandOutput]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> CommandOutput:
        self.calls.append(list(argv))
        for word, output in self.answers.items():
            if word in argv:
                return output
        raise AssertionError(f"unexpected command {argv}")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def program(tmp_path: Path, name: str) -> str:
    """An executable file (never run: the recorded runner answers instead)."""
    path = tmp_path / "bin" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 99\n")
    path.chmod(0o755)
    return str(path)


def by_target(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.target: r for r in results}


# ---------------------------------------------------------------------------- parsing


def test_recorded_debian_simulation() -> None:
    listing = parse_apt_simulation(recorded("apt-debian12-pending.txt"))
    assert len(listing.updates) == 119
    assert len(listing.security) == 65
    by_name = {u.name: u for u in listing.updates}
    # In both the point release and the security archive: security.
    assert by_name["libgcrypt20"].security
    assert by_name["libssl3"].security and by_name["libssl3"].old_version == "3.0.19-1~deb12u2"
    assert not by_name["base-files"].security
    assert by_name["base-files"].new_version == "12.4+deb12u15"


def test_recorded_ubuntu_simulation_with_kept_back_and_new_packages() -> None:
    listing = parse_apt_simulation(recorded("apt-ubuntu-kept-back.txt"))
    assert [u.name for u in listing.updates] == ["libssl3", "openssl", "python3-update-manager",
                                                 "tzdata"]
    assert [u.name for u in listing.security] == ["libssl3", "openssl"]
    assert listing.held_back == ("linux-generic", "linux-headers-generic", "linux-image-generic")


def test_nothing_pending_and_non_security_only() -> None:
    assert parse_apt_simulation(recorded("apt-none.txt")).updates == ()
    listing = parse_apt_simulation(recorded("apt-debian-nonsecurity.txt"))
    assert len(listing.updates) == 2 and listing.security == ()


def test_apt_output_without_summary_is_refused() -> None:
    with pytest.raises(ValueError, match="summary"):
        parse_apt_simulation("E: Could not open lock file\n")


def test_dnf_and_yum_updateinfo() -> None:
    dnf = parse_updateinfo(recorded("dnf-updateinfo-security.txt"))
    assert sorted(dnf) == ["gnutls", "kernel", "kernel-core", "kernel-modules", "openssh",
                           "openssh-clients", "openssl-libs"]
    assert dnf["openssl-libs"] == ("RHSA-2024:1250", "1:1.1.1k-12.el8_9")
    yum = parse_updateinfo(recorded("yum-updateinfo-security.txt"))
    assert sorted(yum) == ["kernel", "python", "python-libs"]
    assert parse_updateinfo(recorded("yum-updateinfo-none.txt")) == {}
    assert parse_updateinfo(recorded("dnf-updateinfo-none.txt")) == {}


def test_check_update_lists() -> None:
    dnf = parse_check_update(recorded("dnf-check-update.txt"))
    assert len(dnf) == 9 and dnf["tzdata"] == "2024a-1.el8"
    assert "grub2-tools" not in dnf  # the Obsoleting block is not a list of updates
    yum = parse_check_update(recorded("yum-check-update.txt"))
    assert sorted(yum) == ["kernel", "python", "python-libs", "tzdata"]


def test_rpm_names() -> None:
    assert rpm_name("openssl-libs-1:1.1.1k-12.el8_9.x86_64") == "openssl-libs"
    assert rpm_name("kernel-core-4.18.0-513.24.1.el8_9.x86_64") == "kernel-core"


@pytest.mark.parametrize(
    ("text", "family"),
    [
        ("ID=debian\n", "debian"),
        ('ID=ubuntu\nID_LIKE=debian\n', "debian"),
        ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "rhel"),
        ('ID="almalinux"\nID_LIKE="rhel centos fedora"\n', "rhel"),
        ("ID=fedora\n", "rhel"),
        ('ID=ol\nID_LIKE="fedora"\n', "rhel"),
        ("ID=alpine\n", None),
        ("", None),
    ],
)
def test_family_from_os_release(text: str, family: str | None) -> None:
    assert family_from_os_release(text) == family


# ---------------------------------------------------------------------------- Debian path


def debian_check(tmp_path: Path, clock: Clock, runner: Recorded, **keys: object
                 ) -> OsUpdatesCheck:
    root = tmp_path / "root"
    if not root.exists():
        debian_tree(root, clock.now)
    config = OsUpdatesConfig(root=str(root), apt_get=program(tmp_path, "apt-get"),
                             **keys)  # type: ignore[arg-type]
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    return OsUpdatesCheck(config, CheckContext("upd", state, timeout=300, clock=clock),
                          runner=runner)


def apt_runner(name: str) -> Recorded:
    return Recorded({"dist-upgrade": CommandOutput(0, recorded(name), "")})


def test_debian_run_simulates_only(tmp_path: Path) -> None:
    clock = Clock(NOW)
    runner = apt_runner("apt-debian12-pending.txt")
    results = by_target(debian_check(tmp_path, clock, runner).run())
    assert runner.calls == [[str(tmp_path / "bin/apt-get"), "-s", "-o", "Debug::NoLocking=1",
                             "dist-upgrade"]]
    assert results["security"].status == Status.WARNING
    assert results["security"].summary.startswith("65 security updates pending: ")
    assert results["reboot"].status == Status.OK
    assert results["metadata"].status == Status.OK


def test_pending_for_longer_than_the_limit_turns_critical(tmp_path: Path) -> None:
    clock = Clock(NOW)
    runner = apt_runner("apt-debian12-pending.txt")
    check = debian_check(tmp_path, clock, runner, cache_for=0)
    assert by_target(check.run())["security"].status == Status.WARNING
    clock.now = NOW + 30 * DAY - 1
    assert by_target(check.run())["security"].status == Status.WARNING
    clock.now = NOW + 30 * DAY
    result = by_target(check.run())["security"]
    assert result.status == Status.CRITICAL
    assert "pending for 30 days" in result.summary


def test_installed_updates_are_forgotten(tmp_path: Path) -> None:
    clock = Clock(NOW)
    runner = apt_runner("apt-debian12-pending.txt")
    check = debian_check(tmp_path, clock, runner, cache_for=0)
    check.run()
    runner.answers["dist-upgrade"] = CommandOutput(0, recorded("apt-none.txt"), "")
    clock.now = NOW + 40 * DAY
    assert by_target(check.run())["security"].status == Status.OK
    assert json.loads(check.state_path.read_text())["first_seen"] == {}
    # A new security update after that is new: WARNING, not CRITICAL.
    runner.answers["dist-upgrade"] = CommandOutput(0, recorded("apt-ubuntu-kept-back.txt"), "")
    clock.now = NOW + 41 * DAY
    assert by_target(check.run())["security"].status == Status.WARNING


def test_the_answer_is_cached_until_cache_for_or_a_package_change(tmp_path: Path) -> None:
    clock = Clock(NOW)
    runner = apt_runner("apt-debian12-pending.txt")
    check = debian_check(tmp_path, clock, runner)  # cache_for: 6 h by default
    check.run()
    clock.now = NOW + 6 * 3600 - 1
    result = by_target(check.run())["security"]
    assert len(runner.calls) == 1
    assert result.details["computed_at"] == NOW
    clock.now = NOW + 6 * 3600
    check.run()
    assert len(runner.calls) == 2
    # dpkg ran (the status file changed): ask again at once.
    status = tmp_path / "root/var/lib/dpkg/status"
    os.utime(status, (clock.now, clock.now))
    check.run()
    assert len(runner.calls) == 3
    # apt-get update ran (the lists changed): ask again at once.
    lists = tmp_path / "root/var/lib/apt/lists"
    os.utime(lists, (clock.now - 5, clock.now - 5))
    check.run()
    assert len(runner.calls) == 4
    check.run()
    assert len(runner.calls) == 4


def test_a_failed_simulation_is_unknown_and_not_cached(tmp_path: Path) -> None:
    clock = Clock(NOW)
    runner = Recorded({"dist-upgrade": CommandOutput(
        100, "", "E: The package lists or status file could not be parsed or opened.")})
    check = debian_check(tmp_path, clock, runner)
    result = by_target(check.run())["security"]
    assert result.status == Status.UNKNOWN
    assert "could not be parsed" in result.summary
    check.run()
    assert len(runner.calls) == 2


def test_a_timed_out_simulation_is_unknown(tmp_path: Path) -> None:
    runner = Recorded({"dist-upgrade": CommandOutput(None, "", "no answer within 120s")})
    result = by_target(debian_check(tmp_path, Clock(NOW), runner).run())["security"]
    assert result.status == Status.UNKNOWN and "no answer within 120s" in result.summary


def test_missing_apt_get_is_unknown(tmp_path: Path) -> None:
    clock = Clock(NOW)
    debian_tree(tmp_path / "root", NOW)
    config = OsUpdatesConfig(root=str(tmp_path / "root"), apt_get=str(tmp_path / "nope"))
    check = OsUpdatesCheck(config, CheckContext("upd", tmp_path, clock=clock),
                           runner=apt_runner("apt-none.txt"))
    result = by_target(check.run())["security"]
    assert result.status == Status.UNKNOWN and "not found" in result.summary


def test_a_corrupt_state_file_is_unknown_once_then_starts_again(tmp_path: Path) -> None:
    clock = Clock(NOW)
    check = debian_check(tmp_path, clock, apt_runner("apt-debian12-pending.txt"))
    check.state_path.write_text("{not json")
    result = by_target(check.run())["security"]
    assert result.status == Status.UNKNOWN
    assert result.summary == ("65 security updates pending; state file corrupt; "
                              "first-seen times lost")
    assert result.details["state_file"] == str(check.state_path)
    assert by_target(check.run())["security"].status == Status.WARNING


def test_an_unwritable_state_dir_is_unknown(tmp_path: Path) -> None:
    clock = Clock(NOW)
    check = debian_check(tmp_path, clock, apt_runner("apt-debian12-pending.txt"))
    (tmp_path / "plain-file").write_text("")
    check.state_path = tmp_path / "plain-file" / "os_updates-upd.json"  # cannot be created
    result = by_target(check.run())["security"]
    assert result.status == Status.UNKNOWN and "cannot keep first-seen" in result.summary


def test_reboot_marker_and_packages_in_a_fake_root(tmp_path: Path) -> None:
    clock = Clock(NOW)
    root = debian_tree(tmp_path / "root", NOW)
    marker = root / "var/run/reboot-required"
    marker.parent.mkdir(parents=True)
    marker.write_text("*** System restart required ***\n")
    os.utime(marker, (NOW - 3 * DAY, NOW - 3 * DAY))
    (root / "var/run/reboot-required.pkgs").write_text("libc6\nlibssl3\nlibc6\n")
    result = by_target(debian_check(tmp_path, clock, apt_runner("apt-none.txt")).run())["reboot"]
    assert result.status == Status.WARNING
    assert result.summary == "reboot required for 3 days by libc6, libssl3"
    assert result.details["packages"] == ["libc6", "libssl3"]


def test_marker_in_run_without_pkgs(tmp_path: Path) -> None:
    root = debian_tree(tmp_path / "root", NOW)
    (root / "run").mkdir()
    (root / "run/reboot-required").write_text("")
    os.utime(root / "run/reboot-required", (NOW, NOW))
    check = debian_check(tmp_path, Clock(NOW), apt_runner("apt-none.txt"),
                         reboot_status="critical")
    result = by_target(check.run())["reboot"]
    assert result.status == Status.CRITICAL
    assert result.summary == "reboot required for 0 minutes (reboot-required)"


def test_running_kernel_older_than_boot(tmp_path: Path) -> None:
    root = debian_tree(tmp_path / "root", NOW)  # runs 6.1.0-28-amd64
    for release in ("6.1.0-9-amd64", "6.1.0-31-amd64"):
        (root / f"boot/vmlinuz-{release}").write_text("")
    result = by_target(debian_check(tmp_path, Clock(NOW), apt_runner("apt-none.txt")).run())
    assert result["reboot"].status == Status.WARNING
    assert result["reboot"].details["newest_kernel"] == "6.1.0-31-amd64"
    assert result["reboot"].summary == ("reboot required: running kernel 6.1.0-28-amd64, "
                                        "installed 6.1.0-31-amd64")


def test_other_kernel_flavours_are_not_compared(tmp_path: Path) -> None:
    root = debian_tree(tmp_path / "root", NOW)  # runs 6.1.0-28-amd64
    (root / "boot/vmlinuz-6.1.0-31-rt-amd64").write_text("")
    (root / "boot/vmlinuz-6.1.0-28-cloud-amd64").write_text("")
    result = by_target(debian_check(tmp_path, Clock(NOW), apt_runner("apt-none.txt")).run())
    assert result["reboot"].status == Status.OK
    assert result["reboot"].details["newest_kernel"] == "6.1.0-28-amd64"


def test_no_kernels_in_boot_is_a_note_not_a_problem(tmp_path: Path) -> None:
    root = debian_tree(tmp_path / "root", NOW)
    (root / "boot/vmlinuz-6.1.0-28-amd64").unlink()
    result = by_target(debian_check(tmp_path, Clock(NOW), apt_runner("apt-none.txt")).run())
    assert result["reboot"].status == Status.OK
    assert any("no amd64 kernels" in n for n in result["reboot"].details["notes"])


def test_stale_and_missing_lists(tmp_path: Path) -> None:
    clock = Clock(NOW)
    root = debian_tree(tmp_path / "root", NOW, lists_age=8 * DAY)
    check = debian_check(tmp_path, clock, apt_runner("apt-none.txt"))
    result = by_target(check.run())["metadata"]
    assert result.status == Status.WARNING and "8 days ago" in result.summary
    # The periodic stamp is evidence of a refresh too.
    stamp = root / "var/lib/apt/periodic/update-success-stamp"
    stamp.parent.mkdir(parents=True)
    stamp.write_text("")
    os.utime(stamp, (NOW - DAY, NOW - DAY))
    assert by_target(check.run())["metadata"].status == Status.OK
    for path in (root / "var/lib/apt").rglob("*"):
        if path.is_file():
            path.unlink()
    for path in sorted((root / "var/lib/apt").rglob("*"), reverse=True):
        path.rmdir()
    assert by_target(check.run())["metadata"].status == Status.UNKNOWN


def test_unknown_family_is_unknown_for_every_target(tmp_path: Path) -> None:
    (tmp_path / "root/etc").mkdir(parents=True)
    (tmp_path / "root/etc/os-release").write_text("ID=alpine\n")
    config = OsUpdatesConfig(root=str(tmp_path / "root"))
    results = OsUpdatesCheck(config, CheckContext("upd", tmp_path), runner=Recorded({})).run()
    assert [r.status for r in results] == [Status.UNKNOWN] * 3
    assert "set family" in results[0].summary


def test_family_seam_overrides_os_release(tmp_path: Path) -> None:
    debian_tree(tmp_path / "root", NOW)
    config = OsUpdatesConfig(root=str(tmp_path / "root"))
    check = OsUpdatesCheck(config, CheckContext("upd", tmp_path), runner=Recorded({}),
                           family="rhel")
    assert check.detect_family() == "rhel"


def test_refresh_runs_apt_get_update_first_and_skips_the_cache(tmp_path: Path) -> None:
    runner = Recorded({"update": CommandOutput(0, "", ""),
                       "dist-upgrade": CommandOutput(0, recorded("apt-none.txt"), "")})
    check = debian_check(tmp_path, Clock(NOW), runner, refresh=True)
    check.run()
    check.run()
    assert [c[-1] for c in runner.calls] == ["update", "dist-upgrade"] * 2


# ---------------------------------------------------------------------------- RHEL path


def rhel_tree(root: Path, now: float) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text('ID="rocky"\nID_LIKE="rhel centos fedora"\n')
    (root / "var/lib/rpm").mkdir(parents=True)
    (root / "var/lib/rpm/rpmdb.sqlite").write_text("")
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/osrelease").write_text("4.18.0-513.18.1.el8_9.x86_64\n")
    repomd = root / "var/cache/dnf/baseos-1a2b3c/repodata/repomd.xml"
    repomd.parent.mkdir(parents=True)
    repomd.write_text("<repomd/>")
    os.utime(repomd, (now - 2 * DAY, now - 2 * DAY))
    return root


def rhel_check(tmp_path: Path, runner: Recorded, *, dnf: bool = True,
               needs_restarting: bool = True) -> OsUpdatesCheck:
    root = rhel_tree(tmp_path / "root", NOW)
    config = OsUpdatesConfig(
        root=str(root),
        dnf=program(tmp_path, "dnf") if dnf else str(tmp_path / "no-dnf"),
        yum=program(tmp_path, "yum"),
        needs_restarting=(program(tmp_path, "needs-restarting") if needs_restarting
                          else str(tmp_path / "no-needs-restarting")),
        rpm=program(tmp_path, "rpm"),
    )
    return OsUpdatesCheck(config, CheckContext("upd", tmp_path, timeout=300,
                                               clock=Clock(NOW)), runner=runner)


def test_dnf_with_security_updates_and_needs_restarting(tmp_path: Path) -> None:
    runner = Recorded({
        "check-update": CommandOutput(100, recorded("dnf-check-update.txt"), ""),
        "--security": CommandOutput(0, recorded("dnf-updateinfo-security.txt"), ""),
        "-r": CommandOutput(1, "Core libraries or services have been updated since boot-up:\n"
                               "  * kernel\n\nReboot is required to fully utilize these "
                               "updates.\n", ""),
        "--last": CommandOutput(0, recorded("rpm-q-last-kernel.txt"), ""),
    })
    results = by_target(rhel_check(tmp_path, runner).run())
    security = results["security"]
    assert security.status == Status.WARNING
    assert security.summary.startswith("7 security updates pending: ")
    assert {m.name: m.value for m in security.metrics}["updates"] == 9
    assert security.details["origins"]["openssl-libs"] == "RHSA-2024:1250"
    # dnf reads its cache only (-C): it never refreshes metadata unless told to.
    assert all("-C" in call for call in runner.calls if "check-update" in call
               or "updateinfo" in call)
    reboot = results["reboot"]
    assert reboot.status == Status.WARNING
    assert reboot.details["newest_kernel"] == "4.18.0-513.24.1.el8_9.x86_64"
    assert results["metadata"].status == Status.OK
    assert "2 days" in results["metadata"].summary


def test_dnf_with_nothing_pending(tmp_path: Path) -> None:
    runner = Recorded({
        "check-update": CommandOutput(0, recorded("dnf-check-update-none.txt"), ""),
        "--security": CommandOutput(0, recorded("dnf-updateinfo-none.txt"), ""),
        "-r": CommandOutput(0, "No core libraries or services have been updated since "
                               "boot-up.\nReboot should not be necessary.\n", ""),
        "--last": CommandOutput(0, "kernel-4.18.0-513.18.1.el8_9.x86_64  Wed 13 Mar 2024\n",
                                ""),
    })
    results = by_target(rhel_check(tmp_path, runner).run())
    assert [r.status for r in results.values()] == [Status.OK] * 3
    assert results["security"].summary == "no updates pending"


def test_yum_when_dnf_is_missing(tmp_path: Path) -> None:
    runner = Recorded({
        "check-update": CommandOutput(100, recorded("yum-check-update.txt"), ""),
        "security": CommandOutput(0, recorded("yum-updateinfo-security.txt"), ""),
        "--last": CommandOutput(0, recorded("rpm-q-last-kernel.txt"), ""),
    })
    results = by_target(rhel_check(tmp_path, runner, dnf=False, needs_restarting=False).run())
    security = results["security"]
    assert security.status == Status.WARNING
    assert security.details["security_updates"] == ["kernel", "python", "python-libs"]
    assert [c[-3:] for c in runner.calls if "updateinfo" in c] == [
        ["updateinfo", "list", "security"]]
    # Without needs-restarting, the kernel comparison still answers (and finds a newer one).
    assert results["reboot"].status == Status.WARNING


def test_yum_with_nothing_pending_and_no_reboot_evidence(tmp_path: Path) -> None:
    runner = Recorded({
        "check-update": CommandOutput(0, "Loaded plugins: fastestmirror\n", ""),
        "security": CommandOutput(0, recorded("yum-updateinfo-none.txt"), ""),
        "--last": CommandOutput(1, "", "package kernel is not installed"),
    })
    results = by_target(rhel_check(tmp_path, runner, dnf=False, needs_restarting=False).run())
    assert results["security"].status == Status.OK
    assert results["reboot"].status == Status.UNKNOWN
    assert "not installed" in results["reboot"].summary


def test_dnf_failure_is_unknown(tmp_path: Path) -> None:
    runner = Recorded({
        "check-update": CommandOutput(1, "", "Error: Cache-only enabled but no cache for "
                                             "'baseos'"),
        "-r": CommandOutput(0, "", ""),
        "--last": CommandOutput(0, recorded("rpm-q-last-kernel.txt"), ""),
    })
    result = by_target(rhel_check(tmp_path, runner).run())["security"]
    assert result.status == Status.UNKNOWN and "no cache for 'baseos'" in result.summary


# ---------------------------------------------------------------------------- config


def test_config_from_toml_names_the_key() -> None:
    from checks.config import ConfigError, build

    config = build(OsUpdatesConfig, {"cache_for": "1h", "security_age_crit": "14d"})
    assert (config.cache_for, config.security_age_crit) == (3600, 14 * DAY)
    for table, key in (
        ({"security_warn": 3, "security_crit": 2}, "checks.u.security_crit"),
        ({"reboot_status": "page"}, "checks.u.reboot_status"),
        ({"family": "arch"}, "checks.u.family"),
        ({"root": "tree"}, "checks.u.root"),
        ({"refesh": True}, "checks.u.refesh"),
    ):
        with pytest.raises(ConfigError) as err:
            build(OsUpdatesConfig, table, key="checks.u")
        assert err.value.key == key, err.value
