"""Reading logrotate configurations and state files as logrotate itself reads them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from checks.logrotate import expand_pattern, split_rotated
from checks.logrotate_conf import (
    DAY,
    parse_config,
    parse_config_text,
    parse_logrotate_size,
    parse_state,
    parse_state_date,
    tokens,
)

DEBIAN_RSYSLOG = """\
/var/log/syslog
/var/log/mail.info
/var/log/mail.warn
{
\trotate 4
\tweekly
\tmissingok
\tnotifempty
\tcompress
\tdelaycompress
\tsharedscripts
\tpostrotate
\t\t/usr/lib/rsyslog/rsyslog-rotate
\t\tif [ -d /run/x ]; then { echo "}"; } fi
\tendscript
}
"""


def test_multi_line_path_list_and_scripts_with_braces() -> None:
    parsed = parse_config_text(DEBIAN_RSYSLOG)
    assert parsed.problems == []
    (block,) = parsed.blocks
    assert block.patterns == ("/var/log/syslog", "/var/log/mail.info", "/var/log/mail.warn")
    s = block.settings
    assert (s.rotate, s.period, s.period_name) == (4, 7 * DAY, "weekly")
    assert s.missingok and s.notifempty and s.compress and s.delaycompress


def test_global_defaults_are_inherited_where_the_block_opens() -> None:
    text = """
# comment
weekly
rotate 4
compress
/var/log/a.log /var/log/b.log {
    daily
    nocompress
}
rotate 9
"/var/log/with space.log"
{
    missingok
}
"""
    parsed = parse_config_text(text)
    first, second = parsed.blocks
    assert first.patterns == ("/var/log/a.log", "/var/log/b.log")
    assert (first.settings.period_name, first.settings.rotate, first.settings.compress) == (
        "daily", 4, False)
    assert second.patterns == ("/var/log/with space.log",)
    assert (second.settings.period_name, second.settings.rotate) == ("weekly", 9)
    assert second.settings.compress and second.settings.missingok


def test_logrotate_defaults_without_directives() -> None:
    (block,) = parse_config_text("/var/log/x.log {\n}\n").blocks
    s = block.settings
    assert (s.period, s.size, s.rotate, s.compress, s.missingok, s.notifempty) == (
        None, 1024 * 1024, 0, False, False, False)


def test_size_and_time_criteria_replace_each_other() -> None:
    text = "/a {\n daily\n size 100k\n}\n/b {\n size 1M\n hourly\n maxsize 2G\n minsize 10\n}\n"
    a, b = parse_config_text(text).blocks
    assert (a.settings.period, a.settings.size) == (None, 100 * 1024)
    assert (b.settings.period_name, b.settings.maxsize, b.settings.minsize) == (
        "hourly", 2 * 1024**3, 10)


def test_other_directives_are_parsed_and_ignored() -> None:
    text = """
tabooext + .bak
create 0640 root adm
su root adm
/var/log/app/*.log {
    daily
    sharedscripts
    maxage 30
    copytruncate
    dateext
    dateformat -%Y%m%d-%s
    olddir /var/log/archive
    compresscmd /usr/bin/xz
    uncompresscmd /usr/bin/unxz
    firstaction
        echo start
    endscript
    lastaction
        echo done
    endscript
}
"""
    parsed = parse_config_text(text)
    assert parsed.problems == []
    s = parsed.blocks[0].settings
    assert s.dateext and s.dateformat == "-%Y%m%d-%s"
    assert s.olddir == "/var/log/archive"
    assert s.compressed_extension == ".xz"


def test_problems_are_reported_and_the_rest_still_read() -> None:
    parsed = parse_config_text("/a {\n  size lots\n}\n/b {\n  daily\n")
    messages = [p.message for p in parsed.problems]
    assert any("bad size 'lots'" in m for m in messages)
    assert any("not closed" in m for m in messages)
    assert [b.patterns for b in parsed.blocks] == [("/a",)]


def test_includes_of_files_and_directories(tmp_path: Path) -> None:
    confd = tmp_path / "logrotate.d"
    confd.mkdir()
    (confd / "b-app").write_text("/var/log/b.log {\n    missingok\n}\n")
    (confd / "a-defaults").write_text("rotate 12\n")  # read first: changes later defaults
    (confd / "c-app.dpkg-old").write_text("/var/log/old.log {\n}\n")
    (confd / "d-app~").write_text("/var/log/backup.log {\n}\n")
    main = tmp_path / "logrotate.conf"
    main.write_text(f"weekly\ninclude {confd}\ninclude missing.conf\n/var/log/main.log {{\n}}\n")
    parsed = parse_config(str(main))
    assert [b.patterns[0] for b in parsed.blocks] == ["/var/log/b.log", "/var/log/main.log"]
    assert [b.settings.rotate for b in parsed.blocks] == [12, 12]
    assert [b.settings.period_name for b in parsed.blocks] == ["weekly", "weekly"]
    assert len(parsed.problems) == 1 and "missing.conf" in parsed.problems[0].message


def test_include_loop_is_read_once(tmp_path: Path) -> None:
    main = tmp_path / "main.conf"
    main.write_text(f"include {main}\n/x {{\n}}\n")
    assert len(parse_config(str(main)).blocks) == 1


def test_tokens() -> None:
    assert tokens('/a "/b c" /d{') == ["/a", "/b c", "/d", "{"]
    assert tokens("rotate = 5") == ["rotate", "=", "5"]


@pytest.mark.parametrize(
    ("text", "size"), [("100", 100), ("100k", 102400), ("10M", 10 * 1024**2), ("1G", 1024**3)]
)
def test_logrotate_sizes(text: str, size: int) -> None:
    assert parse_logrotate_size(text) == size


def test_state_file_formats() -> None:
    text = (
        "logrotate state -- version 2\n"
        '"/var/log/syslog" 2026-11-23-7:8:51\n'
        '"/var/log/we\\"ird.log" 2026-1-2-0:0:0\n'
        "/var/log/old-style.log 2020-1-1\n"
        '"/var/log/garbage.log" yesterday\n'
    )
    entries = parse_state(text)
    assert entries["/var/log/syslog"] == time.mktime((2026, 11, 23, 7, 8, 51, 0, 0, -1))
    assert '/var/log/we"ird.log' in entries
    assert entries["/var/log/old-style.log"] == parse_state_date("2020-1-1-0:0:0")
    assert "/var/log/garbage.log" not in entries


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("app.log.1", ("app.log", 1, False)),
        ("app.log.12.gz", ("app.log", 12, True)),
        ("app.log-20261126", ("app.log", 0, False)),
        ("app.log-20261126.xz", ("app.log", 0, True)),
        ("app.log-2026-11-26-1732582000.zst", ("app.log", 0, True)),
        ("app.log.1.custom", ("app.log", 1, True)),
        ("app.log", None),
        ("app.log.gz", None),
    ],
)
def test_rotated_names(name: str, parts: tuple[str, int, bool] | None) -> None:
    assert split_rotated(name, (".custom",)) == parts


def test_glob_leaves_out_rotated_siblings(tmp_path: Path) -> None:
    for name in ("a.log", "a.log.1", "a.log.2.gz", "b.log", "notes.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "dir.log").mkdir()
    assert expand_pattern(f"{tmp_path}/*.log") == [f"{tmp_path}/a.log", f"{tmp_path}/b.log"]
    assert expand_pattern(f"{tmp_path}/a.log*") == [f"{tmp_path}/a.log"]
    assert expand_pattern(f"{tmp_path}/literal.log") == [f"{tmp_path}/literal.log"]
