"""Reading the mount table and choosing each real filesystem once."""

from __future__ import annotations

from pathlib import Path

import pytest

from checks.config import ConfigError, build
from checks.disk import (
    DiskConfig,
    MountEntry,
    parse_mountinfo,
    select_filesystems,
    unescape,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "disk"


def entries(name: str) -> list[MountEntry]:
    return parse_mountinfo((FIXTURES / name).read_text(encoding="utf-8"))


def chosen(name: str, **config: object) -> dict[str, tuple[str, ...]]:
    """Mount point reported -> the other mount points of the same filesystem."""
    selection = select_filesystems(entries(name), build(DiskConfig, config))
    return {fs.mount_point: fs.other_mount_points for fs in selection.filesystems}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (r"/srv/media\040archive", "/srv/media archive"),
        (r"/mnt/a\011b", "/mnt/a\tb"),
        (r"/mnt/back\134slash", "/mnt/back\\slash"),
        (r"/mnt/new\012line", "/mnt/new\nline"),
        ("/plain", "/plain"),
    ],
)
def test_octal_escapes_are_undone(raw: str, expected: str) -> None:
    assert unescape(raw) == expected


def test_a_mountinfo_line_is_split_around_the_optional_fields() -> None:
    line = (
        "65 28 253:1 /lib/mysql-binlogs /srv/binlogs rw,relatime shared:32 master:7 - xfs "
        "/dev/mapper/vg0-var rw,attr2"
    )
    assert parse_mountinfo(line) == [
        MountEntry("253:1", "/lib/mysql-binlogs", "/srv/binlogs", "xfs", "/dev/mapper/vg0-var")
    ]


def test_malformed_lines_are_skipped() -> None:
    text = "garbage\n\n28 1 253:0 / / rw - ext4 /dev/vda rw\n29 1 8:1 / /x rw shared:1\n"
    assert [e.mount_point for e in parse_mountinfo(text)] == ["/"]


def test_server_reports_each_real_filesystem_once() -> None:
    assert chosen("mountinfo-server.txt") == {
        "/": (),
        "/boot": (),
        "/boot/efi": (),
        # The bind of a /var subdirectory is the same filesystem: named, not reported.
        "/var": ("/srv/binlogs",),
        # Mounted twice (one path with an escaped space): the shorter path is reported.
        "/mnt/media": ("/srv/media archive",),
        "/mnt/nfs": (),
    }


def test_default_exclusions_leave_out_pseudo_volatile_and_image_filesystems() -> None:
    selection = select_filesystems(entries("mountinfo-server.txt"), DiskConfig())
    types = {fs.fstype for fs in selection.filesystems}
    assert types == {"ext4", "vfat", "xfs", "nfs4"}


def test_an_unknown_filesystem_type_is_checked_by_default() -> None:
    text = "40 1 0:77 / /mnt/new rw - shinyfs /dev/sdz1 rw\n"
    selection = select_filesystems(parse_mountinfo(text), DiskConfig())
    assert [fs.mount_point for fs in selection.filesystems] == ["/mnt/new"]


def test_container_sees_the_host_disk_only_through_binds_and_reports_it_once() -> None:
    selection = select_filesystems(entries("mountinfo-container.txt"), DiskConfig())
    assert len(selection.filesystems) == 1
    data = selection.filesystems[0]
    assert data.mount_point == "/data"
    assert data.root == "/lib/watchkeeper/spool"
    assert set(data.other_mount_points) == {"/etc/resolv.conf", "/etc/hostname", "/etc/hosts"}


def test_btrfs_subvolumes_are_one_filesystem_reported_under_root() -> None:
    assert chosen("mountinfo-btrfs.txt") == {
        "/": ("/home", "/var/log"),
        "/boot/efi": (),
        "/mnt/usb stick\ttab\\back": (),
    }


def test_a_hidden_mount_under_a_later_one_is_not_reported() -> None:
    text = (
        "25 24 0:23 / /dev/shm rw - ext4 /dev/old rw\n"
        "30 25 0:27 / /dev/shm rw - ext4 /dev/new rw\n"
    )
    selection = select_filesystems(parse_mountinfo(text), DiskConfig())
    assert [(fs.device, fs.mount_point) for fs in selection.filesystems] == [("0:27", "/dev/shm")]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"include_mounts": ["/var", "/boot*"]}, {"/var", "/boot", "/boot/efi"}),
        # /mnt/media is excluded, but its filesystem is still mounted at /srv/media archive
        ({"exclude_mounts": ["/boot*", "/mnt/*"]}, {"/", "/var", "/srv/media archive"}),
        # exclude wins over include
        ({"include_mounts": ["/boot*"], "exclude_mounts": ["/boot/efi"]}, {"/boot"}),
        ({"exclude_types": ["nfs*", "vfat"]}, {"/", "/boot", "/var", "/mnt/media"}),
        # include_types brings a default-excluded type back; the real ones stay
        ({"include_types": ["tmpfs"], "include_mounts": ["/run*", "/dev/shm"]},
         {"/run", "/run/lock", "/run/user/1000", "/dev/shm"}),
        ({"include_types": ["tmpfs"], "exclude_types": ["tmpfs"], "include_mounts": ["/run"]},
         set()),
        # a filesystem excluded under one path is still reported under another of its paths
        ({"exclude_mounts": ["/var"]}, {"/", "/boot", "/boot/efi", "/srv/binlogs",
                                        "/mnt/media", "/mnt/nfs"}),
    ],
)
def test_include_and_exclude_precedence(config: dict[str, object], expected: set[str]) -> None:
    assert set(chosen("mountinfo-server.txt", **config)) == expected


def test_a_configured_mount_that_is_not_mounted_is_reported() -> None:
    config = build(DiskConfig, {"include_mounts": ["/var", "/data", "/run", "/mnt/*"]})
    selection = select_filesystems(entries("mountinfo-server.txt"), config)
    missing = {m.mount_point: m.reason for m in selection.missing}
    assert missing == {
        "/data": "/data is not a mount point",
        "/run": "/run is a tmpfs filesystem, not checked (add its type to include_types)",
    }


@pytest.mark.parametrize(
    ("data", "key", "message"),
    [
        ({"space_warn_pc": 80}, "space_warn_pc", "unknown key"),
        ({"space_warn_pct": 96}, "space_warn_pct", "must not be above space_crit_pct"),
        ({"space_warn_free": "1GiB", "space_crit_free": "2GiB"}, "space_warn_free", "below"),
        ({"inode_crit_pct": 101}, "inode_crit_pct", "between 0 and 100"),
        ({"growth_min_samples": 2}, "growth_min_samples", "at least 3"),
        ({"growth_min_span": "7h"}, "growth_min_span", "growth_window"),
        ({"statvfs_timeout": 0}, "statvfs_timeout", "more than 0"),
        ({"include_mounts": "/var"}, "include_mounts", "expected an array"),
    ],
)
def test_config_errors_name_the_key(data: dict[str, object], key: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(DiskConfig, data, key="checks.disk")
    assert caught.value.key == f"checks.disk.{key}"
    assert message in caught.value.message


def test_config_accepts_human_units() -> None:
    config = build(
        DiskConfig,
        {"space_warn_free": "10GiB", "full_horizon": "12h", "statvfs_timeout": "2s"},
    )
    assert config.space_warn_free == 10 * 1024**3
    assert config.full_horizon == 12 * 3600
    assert config.statvfs_timeout == 2
