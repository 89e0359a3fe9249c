"""Table tests of the os_updates judgement: every threshold just below, at and above."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from checks.config import ConfigError, Seconds
from checks.os_updates import (
    DAY,
    METADATA_TARGET,
    REBOOT_TARGET,
    SECURITY_TARGET,
    OsUpdatesConfig,
    OsUpdatesFacts,
    PendingUpdate,
    RebootFacts,
    UpdateList,
    evaluate,
    evaluate_metadata,
    evaluate_reboot,
    evaluate_updates,
    kernel_flavour,
    version_key,
)
from checks.result import Status

NOW = 1_800_000_000.0
FRESH = NOW - 3600


def listing(security: int, other: int = 0, held_back: int = 0) -> UpdateList:
    """``security`` updates from the security archive and ``other`` from elsewhere."""
    updates = [PendingUpdate(f"sec{i}", "2", "1", True, "Debian-Security:12/stable-security")
               for i in range(security)]
    updates += [PendingUpdate(f"pkg{i}", "2", "1", False, "Debian:12.12/stable")
                for i in range(other)]
    return UpdateList(tuple(updates), tuple(f"held{i}" for i in range(held_back)), "apt")


def facts(updates: UpdateList | None, first_seen: Mapping[str, float] | None = None,
          **kwargs: object) -> OsUpdatesFacts:
    return OsUpdatesFacts("debian", updates, first_seen=first_seen or {},
                          metadata_time=FRESH, reboot=RebootFacts(False), **kwargs)  # type: ignore[arg-type]


def seen(count: int, age: float) -> dict[str, float]:
    return {f"sec{i}": NOW - age for i in range(count)}


# security_warn=1 (default), security_crit=5, security_age_crit=30 days, updates_warn=10
CONFIG = OsUpdatesConfig(security_crit=5, updates_warn=10)


@pytest.mark.parametrize(
    ("updates", "age", "expected", "reason"),
    [
        (listing(0), 0.0, Status.OK, None),
        (listing(0, other=9), 0.0, Status.OK, None),  # below updates_warn
        (listing(0, other=10), 0.0, Status.WARNING, "updates"),  # at updates_warn
        (listing(0, other=11), 0.0, Status.WARNING, "updates"),
        (listing(1), 0.0, Status.WARNING, "count"),  # at security_warn
        (listing(4), 0.0, Status.WARNING, "count"),  # below security_crit
        (listing(5), 0.0, Status.CRITICAL, "count"),  # at security_crit
        (listing(6), 0.0, Status.CRITICAL, "count"),
        (listing(1), 30 * DAY - 1, Status.WARNING, "count"),  # just below the age limit
        (listing(1), 30 * DAY, Status.CRITICAL, "age"),  # at it
        (listing(1), 30 * DAY + 1, Status.CRITICAL, "age"),
        (listing(0, other=3), 90 * DAY, Status.OK, None),  # no security update: age irrelevant
    ],
)
def test_security_boundaries(updates: UpdateList, age: float, expected: Status,
                             reason: str | None) -> None:
    count = len(updates.security)
    result = evaluate_updates(CONFIG, facts(updates, seen(count, age)), NOW, check="u")
    assert result.target == SECURITY_TARGET
    assert result.status == expected, result.summary
    assert result.details.get("reason") == reason
    metrics = {m.name: m for m in result.metrics}
    assert metrics["security_updates"].value == count
    assert metrics["security_updates"].warn == 1 and metrics["security_updates"].crit == 5
    assert metrics["security_pending_age"].crit == 30 * DAY


def test_security_warn_threshold_above_one() -> None:
    config = OsUpdatesConfig(security_warn=3)
    statuses = [evaluate_updates(config, facts(listing(n)), NOW, check="u").status
                for n in (2, 3, 4)]
    assert statuses == [Status.OK, Status.WARNING, Status.WARNING]


def test_count_and_age_critical_are_off_when_zero() -> None:
    config = OsUpdatesConfig(security_crit=0, security_age_crit=Seconds(0))
    result = evaluate_updates(config, facts(listing(500), seen(500, 400 * DAY)), NOW, check="u")
    assert result.status == Status.WARNING
    assert {m.name: m.crit for m in result.metrics}["security_updates"] is None


def test_the_oldest_first_seen_decides_the_age() -> None:
    first_seen = {"sec0": NOW - 31 * DAY, "sec1": NOW - DAY}
    result = evaluate_updates(OsUpdatesConfig(), facts(listing(2), first_seen), NOW, check="u")
    assert result.status == Status.CRITICAL
    assert result.summary.startswith("2 security updates pending for 31 days: sec0, sec1")
    assert result.details["oldest_pending_seconds"] == 31 * DAY


def test_a_package_not_in_first_seen_counts_as_new() -> None:
    result = evaluate_updates(OsUpdatesConfig(), facts(listing(1), {}), NOW, check="u")
    assert result.status == Status.WARNING
    assert result.details["oldest_pending_seconds"] == 0


def test_summary_names_a_few_packages_and_counts_the_rest() -> None:
    result = evaluate_updates(OsUpdatesConfig(), facts(listing(5)), NOW, check="u")
    assert result.summary == "5 security updates pending: sec0, sec1, sec2 +2 more"


def test_ok_summary_counts_other_updates() -> None:
    result = evaluate_updates(OsUpdatesConfig(), facts(listing(0, other=3, held_back=2)), NOW,
                              check="u")
    assert (result.status, result.summary) == (Status.OK,
                                               "no security updates pending (3 other updates)")
    assert {m.name: m.value for m in result.metrics}["held_back"] == 2


def test_no_listing_is_unknown_with_the_reason() -> None:
    result = evaluate_updates(OsUpdatesConfig(),
                              facts(None, update_error="apt-get not found"), NOW, check="u")
    assert result.status == Status.UNKNOWN
    assert "apt-get not found" in result.summary


def test_lost_state_is_unknown_never_ok() -> None:
    result = evaluate_updates(OsUpdatesConfig(),
                              facts(listing(0), state_error="state unreadable"), NOW, check="u")
    assert result.status == Status.UNKNOWN
    assert "state unreadable" in result.summary


# ---------------------------------------------------------------------------- reboot


@pytest.mark.parametrize(
    ("reboot", "status", "expected", "words"),
    [
        (RebootFacts(False, running_kernel="6.1.0-28-amd64", newest_kernel="6.1.0-28-amd64"),
         "warning", Status.OK, "no reboot required"),
        (RebootFacts(True, NOW - 2 * DAY, ("libc6",), "reboot-required"), "warning",
         Status.WARNING, "reboot required for 2 days by libc6"),
        (RebootFacts(True, NOW - 2 * DAY, ("libc6",), "reboot-required"), "critical",
         Status.CRITICAL, "reboot required"),
        (RebootFacts(True, None, (), "needs-restarting -r"), "warning", Status.WARNING,
         "reboot required (needs-restarting -r)"),
        (RebootFacts(False, running_kernel="6.1.0-9-amd64", newest_kernel="6.1.0-28-amd64"),
         "warning", Status.WARNING, "running kernel 6.1.0-9-amd64, installed 6.1.0-28-amd64"),
        # A newer kernel running than any installed (e.g. the old one removed): no reboot.
        (RebootFacts(False, running_kernel="6.1.0-31-amd64", newest_kernel="6.1.0-28-amd64"),
         "warning", Status.OK, "no reboot required"),
        (RebootFacts(None, notes=("needs-restarting not installed",)), "warning",
         Status.UNKNOWN, "needs-restarting not installed"),
    ],
)
def test_reboot(reboot: RebootFacts, status: str, expected: Status, words: str) -> None:
    config = OsUpdatesConfig(reboot_status=status)  # type: ignore[arg-type]
    result = evaluate_reboot(config, reboot, NOW, check="u")
    assert result.target == REBOOT_TARGET
    assert result.status == expected
    assert words in result.summary


def test_more_than_four_reboot_packages_are_counted() -> None:
    reboot = RebootFacts(True, NOW, tuple(f"p{i}" for i in range(6)), "reboot-required")
    summary = evaluate_reboot(OsUpdatesConfig(), reboot, NOW, check="u").summary
    assert summary.endswith("by p0, p1, p2, p3 +2 more")


@pytest.mark.parametrize(
    ("release", "flavour"),
    [("6.1.0-28-amd64", "amd64"), ("6.1.0-28-rt-amd64", "rt-amd64"),
     ("5.15.0-92-generic", "generic"), ("4.18.0-513.24.1.el8_9.x86_64", ""),
     ("6.18.44-fc-v657", "fc-v657")],
)
def test_kernel_flavour(release: str, flavour: str) -> None:
    assert kernel_flavour(release) == flavour


def test_kernel_versions_order_numerically() -> None:
    assert version_key("6.1.0-28-amd64") > version_key("6.1.0-9-amd64")
    assert version_key("4.18.0-513.24.1.el8_9.x86_64") > version_key(
        "4.18.0-513.18.1.el8_9.x86_64")
    assert version_key("6.10.1") > version_key("6.9.12")


# ---------------------------------------------------------------------------- metadata


@pytest.mark.parametrize(
    ("age", "expected"),
    [(0.0, Status.OK), (7 * DAY - 1, Status.OK), (7 * DAY, Status.WARNING),
     (7 * DAY + 1, Status.WARNING), (-60.0, Status.OK)],  # a file from the future: age 0
)
def test_metadata_age(age: float, expected: Status) -> None:
    result = evaluate_metadata(OsUpdatesConfig(),
                               OsUpdatesFacts("debian", None, metadata_time=NOW - age), NOW,
                               check="u")
    assert result.target == METADATA_TARGET
    assert result.status == expected
    assert result.metrics[0].warn == 7 * DAY


def test_metadata_warning_off_at_zero() -> None:
    config = OsUpdatesConfig(metadata_age_warn=Seconds(0))
    result = evaluate_metadata(config, OsUpdatesFacts("debian", None,
                                                      metadata_time=NOW - 400 * DAY), NOW,
                               check="u")
    assert result.status == Status.OK


def test_metadata_unknown_age() -> None:
    result = evaluate_metadata(OsUpdatesConfig(), OsUpdatesFacts(
        "rhel", None, metadata_error="no dnf or yum metadata cache found"), NOW, check="u")
    assert result.status == Status.UNKNOWN
    assert "no dnf or yum metadata cache found" in result.summary


# ---------------------------------------------------------------------------- whole


def test_evaluate_gives_three_results_or_two_without_reboot() -> None:
    targets = [r.target for r in evaluate(OsUpdatesConfig(), facts(listing(0)), NOW, check="u")]
    assert targets == [SECURITY_TARGET, REBOOT_TARGET, METADATA_TARGET]
    config = OsUpdatesConfig(check_reboot=False)
    targets = [r.target for r in evaluate(config, facts(listing(0)), NOW, check="u")]
    assert targets == [SECURITY_TARGET, METADATA_TARGET]


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"security_warn": 0}, "security_warn"),
        ({"security_crit": -1}, "security_crit"),
        ({"security_warn": 5, "security_crit": 4}, "security_crit"),
        ({"updates_warn": -1}, "updates_warn"),
        ({"command_timeout": Seconds(0)}, "command_timeout"),
        ({"root": "relative/tree"}, "root"),
        ({"apt_get": " "}, "apt_get"),
    ],
)
def test_bad_config_names_the_key(values: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        OsUpdatesConfig(**values)  # type: ignore[arg-type]
    assert err.value.key == key
