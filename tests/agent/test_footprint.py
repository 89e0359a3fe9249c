"""What the agent loads, with every check type configured: the modules that would cost
each host memory for nothing stay out.

The agent's budget is 28 MB of resident memory on every customer host
(``tests/benchmarks/bench_agent_footprint.py`` measures it). These tests watch the causes,
in the agent's own process, with Python's ``-X importtime`` report: a heavy module imported
by a new line of code fails here before it shows in the benchmark.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from checks.registry import CHECK_TYPES

ROOT = Path(__file__).resolve().parents[2]

# module -> what it costs and why the agent does without it
NOT_LOADED = {
    "pymysql": "4.5 MB with a connection: mysql_replication speaks the protocol itself",
    "decimal": "pulled in by pymysql",
    "hashlib": "loads OpenSSL's libcrypto (3.7 MB) when ssl is not loaded",
    "ssl": "5.3 MB with a context: only for an https collector",
    "http.client": "loads ssl and the email package",
    "email": "loaded by http.client",
    "encodings.idna": "with unicodedata and stringprep, 0.3 MB: getaddrinfo() of a str host",
    "unicodedata": "see encodings.idna",
    "shutil": "imports zlib, bz2 and lzma: argparse's terminal width",
    "bz2": "only for verifying a .bz2 backup",
    "lzma": "only for verifying a .xz backup",
    "asyncio": "7 MB with ssl: the agent uses threads",
    "psutil": "1 MB: /proc is read directly",
    "httpx": "3.2 MB: the agent has its own HTTP client",
    "pydantic": "8 MB: the agent's config models are dataclasses",
    "dns": "dnspython: the dns check has its own client",
    "gzip": "with _compression: the sender writes its gzip member with zlib",
}


def _config(tmp_path: Path) -> Path:
    (tmp_path / "auth.log").write_text("")
    (tmp_path / "backups").mkdir()
    tables = {
        "backup": f'[[checks.backup.sets]]\nname = "db"\ndirectory = "{tmp_path / "backups"}"\n'
                  'pattern = "db-*.sql.gz"\n',
        "dns": 'resolvers = ["127.0.0.1:9"]\ntimeout = "1s"\n'
               '[[checks.dns.names]]\nname = "web1.example.net"\n',
        "ntp": 'servers = ["127.0.0.1:9"]\n',
        "intrusion": f'auth_log = "{tmp_path / "auth.log"}"\n',
        "mysql_replication": "port = 9\n",  # refused: the client is loaded, then fails
    }
    checks = "".join(f'\n[checks.{name}]\ntype = "{name}"\n{tables.get(name, "")}'
                     for name in sorted(CHECK_TYPES))
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nhost = "footprint.example.net"\n'
                      f'state_dir = "{tmp_path / "state"}"\n'
                      '[collector]\nurl = "http://127.0.0.1:9"\ntoken = "t"\n' + checks)
    return config


def _imported(*args: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "agent", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    modules = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
               if line.startswith("import time:") and "|" in line}
    return modules, done


def test_every_check_type_runs_without_the_heavy_modules(tmp_path: Path) -> None:
    modules, done = _imported("check", "--config", str(_config(tmp_path)))
    ran = {line.split()[0] for line in done.stdout.splitlines()[1:] if line.strip()}
    assert ran == set(CHECK_TYPES), done.stdout + done.stderr[-2000:]
    assert "checks.mysqlwire" in modules and "ntplib" in modules  # the checks really ran
    loaded = {m: why for m, why in NOT_LOADED.items() if m in modules}
    assert loaded == {}


def test_validate_and_help_build_no_client(tmp_path: Path) -> None:
    config = _config(tmp_path)
    config.write_text(config.read_text().replace("http://127.0.0.1:9", "https://127.0.0.1:9"))
    modules, done = _imported("validate", "--config", str(config))
    assert done.returncode == 0, done.stderr[-2000:]
    assert not {"ssl", "shutil", "agent.transport"} & modules
    modules, done = _imported("--help")
    assert "record-baseline" in done.stdout
    assert not {"ssl", "shutil", "agent.transport"} & modules
