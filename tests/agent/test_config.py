from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config import load_config
from checks.config import ConfigError
from tests.agent import fakes
from tests.support.tls import encrypted_copy, issue_client_certificate, make_ca

ROOT = Path(__file__).resolve().parents[2]
WriteConfig = Callable[..., Path]


def test_example_config_loads_with_the_real_check_types() -> None:
    config = load_config(ROOT / "examples" / "agent.toml")
    assert config.host == "db1.example.net"
    assert config.collector.url == "https://collector.example.net:8080"
    assert config.collector.timeout == 10.0
    assert config.collector.backoff_max == 300.0
    assert config.spool.max_bytes == 50_000_000
    assert config.spool_dir == Path("/var/lib/watchkeeper/spool")
    by_name = {c.name: c for c in config.checks}
    assert set(by_name) == {"agent", "disk", "logrotate", "backup", "ntp", "dns",
                            "mysql_replication", "firewall", "intrusion", "os_updates"}
    assert by_name["disk"].config.space_warn_pct == 85
    assert by_name["disk"].jitter == 5.0
    assert by_name["backup"].config.sets[0].name == "billing-db"
    assert by_name["os_updates"].interval == 6 * 3600
    assert config.shortest_interval == 60.0


def test_self_check_is_added_when_not_configured(write_config: WriteConfig) -> None:
    path = write_config('[checks.root]\ntype = "fake"\ninterval = "30s"\n')
    config = load_config(path, lookup=fakes.lookup, fqdn=lambda: "host.example.net")
    assert [(c.name, c.type_name, c.interval) for c in config.checks] == [
        ("agent", "agent", 60.0), ("root", "fake", 30.0)]
    assert config.host == "host.example.net"
    assert config.state_dir == Path("/var/lib/watchkeeper")
    assert config.shortest_interval == 30.0


def test_relative_paths_are_taken_from_the_config_directory(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    path = write_config('[agent]\nstate_dir = "var/state"\n'
                        '[collector]\nurl = "http://127.0.0.1:8080"\ntoken_file = "token"\n')
    (tmp_path / "token").write_text("s3cret\n")
    config = load_config(path, lookup=fakes.lookup, for_run=True)
    assert config.state_dir == tmp_path / "var" / "state"
    assert config.spool_dir == tmp_path / "var" / "state" / "spool"
    assert config.token() == "s3cret"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[agent]\nhostname = 'x'\n", "agent.toml: agent.hostname: unknown key"),
        ("[colector]\n", "agent.toml: colector: unknown section"),
        ("[collector]\ntimeout = true\n", "agent.toml: collector.timeout: expected a duration"),
        ("[collector]\nurl = 'collector:8080'\n",
         "agent.toml: collector.url: expected an http:// or https:// URL"),
        ("[spool]\nmax_bytes = 'lots'\n", "agent.toml: spool.max_bytes: expected a size"),
        ("[checks.root]\ntype = 'fake'\nspace_warn_pct = '85'\n",
         "agent.toml: checks.root.space_warn_pct: expected a number, got a string"),
        ("[checks.root]\ntype = 'fake'\nspace_warn_pct = 120\n",
         "agent.toml: checks.root.space_warn_pct: must be a percentage"),
        ("[checks.root]\ntype = 'fake'\nspace_warn = 85\n",
         "agent.toml: checks.root.space_warn: unknown key (allowed here: type, interval"),
        ("[checks.root]\ntype = 'fake'\ninterval = 'often'\n",
         "agent.toml: checks.root.interval: expected a duration"),
        ("[checks.root]\ntype = 'fake'\ninterval = '10s'\njitter = '10s'\n",
         "agent.toml: checks.root.jitter: must be shorter than the interval"),
        ("[checks.dsik]\n",
         "agent.toml: checks.dsik.type: unknown check type 'dsik' (known: agent, fake)"),
        ("[checks.agent]\nenabled = false\n",
         "agent.toml: checks.agent.enabled: the agent self-check cannot be disabled"),
        ("[agent\n", "agent.toml: not valid TOML"),
    ],
)
def test_bad_config_names_file_and_key(write_config: WriteConfig, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write_config(text), lookup=fakes.lookup)
    assert str(err.value).startswith(message), str(err.value)


def test_real_registry_names_the_known_types(write_config: WriteConfig) -> None:
    known = ("agent, backup, disk, dns, firewall, intrusion, logrotate, mysql_replication, ntp, "
             "os_updates")
    with pytest.raises(ConfigError, match=r"checks\.ping\.type: unknown check type 'ping' "
                                          r"\(known: " + known + r"\)"):
        load_config(write_config("[checks.ping]\n"))


@pytest.mark.parametrize(
    ("collector", "message"),
    [
        ("", "collector.url: required key is missing"),
        ("url = 'http://127.0.0.1:1'\n", "collector.token_file: required"),
        ("url = 'http://127.0.0.1:1'\ntoken_file = 'missing-token'\n",
         "collector.token_file: no such file: "),
        ("url = 'http://127.0.0.1:1'\ntoken_file = 'empty-token'\n",
         "collector.token_file: "),
        ("url = 'http://127.0.0.1:1'\ntoken = 'a'\ntoken_file = 'empty-token'\n",
         "collector.token: give either token or token_file, not both"),
    ],
)
def test_run_needs_a_collector_and_a_token(
    write_config: WriteConfig, tmp_path: Path, collector: str, message: str
) -> None:
    (tmp_path / "empty-token").write_text("\n")
    path = write_config(f"[collector]\n{collector}")
    with pytest.raises(ConfigError) as err:
        load_config(path, lookup=fakes.lookup, for_run=True)
    assert str(err.value).startswith(f"agent.toml: {message}"), str(err.value)
    if "empty-token" in collector and "token =" not in collector:
        assert "is empty" in str(err.value)


def test_check_does_not_need_a_collector(write_config: WriteConfig) -> None:
    config = load_config(write_config("[checks.root]\ntype = 'fake'\n"), lookup=fakes.lookup)
    assert config.collector.url is None


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env=env)


def test_validate_cli_reports_the_key_and_exits_2(write_config: WriteConfig) -> None:
    path = write_config("[collector]\nurl = 'http://127.0.0.1:1'\ntoken = 't'\n"
                        "push_intervall = '10s'\n")
    done = _cli("validate", "--config", str(path))
    assert done.returncode == 2
    assert "agent.toml: collector.push_intervall: unknown key" in done.stderr
    assert done.stdout == ""


def test_validate_cli_reports_a_missing_token_file(write_config: WriteConfig) -> None:
    path = write_config("[collector]\nurl = 'http://127.0.0.1:1'\ntoken_file = 'nope'\n")
    done = _cli("validate", "--config", str(path))
    assert done.returncode == 2
    assert "agent.toml: collector.token_file: no such file" in done.stderr


def test_validate_cli_accepts_a_good_config(write_config: WriteConfig, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t0k3n\n")
    path = write_config(f"[agent]\nstate_dir = '{tmp_path / 'state'}'\n"
                        "[collector]\nurl = 'http://127.0.0.1:1'\ntoken_file = 'token'\n"
                        "[checks.disk]\n")
    done = _cli("validate", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "config OK: 2 checks (agent, disk)"


# -- the client certificate (mutual TLS) -------------------------------------------------------


@pytest.fixture(scope="module")
def client_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of client certificates and keys as operators get them wrong and right:
    ``cert.pem``/``key.pem`` (a pair), ``both.pem`` (the two in one file), ``other-key.pem``
    (another certificate's key) and ``encrypted-key.pem`` (the pair's key, encrypted)."""
    directory = tmp_path_factory.mktemp("client-certs")
    ca = make_ca(directory / "ca", "watchkeeper agents")
    cert, key = issue_client_certificate(ca, directory / "host", "db1.example.net")
    _, other_key = issue_client_certificate(ca, directory / "other", "db2.example.net")
    (directory / "cert.pem").write_bytes(cert.read_bytes())
    (directory / "key.pem").write_bytes(key.read_bytes())
    (directory / "both.pem").write_bytes(cert.read_bytes() + key.read_bytes())
    (directory / "other-key.pem").write_bytes(other_key.read_bytes())
    encrypted_copy(key, directory / "encrypted-key.pem")
    return directory


HTTPS_COLLECTOR = "[collector]\nurl = 'https://127.0.0.1:1'\ntoken = 't'\n"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("client_key_file = 'key.pem'\n",
         "collector.client_key_file: given without client_cert_file"),
        ("client_cert_file = 'missing.pem'\n",
         "collector.client_cert_file: no such file: {dir}/missing.pem"),
        ("client_cert_file = 'cert.pem'\nclient_key_file = 'missing.pem'\n",
         "collector.client_key_file: no such file: {dir}/missing.pem"),
        ("client_cert_file = '.'\nclient_key_file = 'key.pem'\n",
         "collector.client_cert_file: cannot read {dir}: Is a directory"),
        ("client_cert_file = 'key.pem'\nclient_key_file = 'key.pem'\n",
         "collector.client_cert_file: {dir}/key.pem holds no PEM certificate"),
        ("client_cert_file = 'cert.pem'\n",
         "collector.client_cert_file: {dir}/cert.pem holds no PEM private key (give the key "
         "in client_key_file)"),
        ("client_cert_file = 'cert.pem'\nclient_key_file = 'encrypted-key.pem'\n",
         "collector.client_key_file: the private key in {dir}/encrypted-key.pem is encrypted "
         "(not supported"),
        ("client_cert_file = 'cert.pem'\nclient_key_file = 'other-key.pem'\n",
         "collector.client_key_file: the private key in {dir}/other-key.pem is not the key of "
         "the certificate in {dir}/cert.pem"),
    ],
)
def test_a_client_certificate_that_cannot_be_presented_names_the_key(
    client_certs: Path, keys: str, message: str
) -> None:
    path = client_certs / "agent.toml"
    path.write_text(HTTPS_COLLECTOR + keys)
    with pytest.raises(ConfigError) as err:
        load_config(path, lookup=fakes.lookup, for_run=True)
    expected = "agent.toml: " + message.format(dir=client_certs)
    assert str(err.value).startswith(expected), str(err.value)


def test_a_client_certificate_needs_an_https_collector(write_config: WriteConfig) -> None:
    path = write_config("[collector]\nurl = 'http://127.0.0.1:1'\ntoken = 't'\n"
                        "client_cert_file = 'cert.pem'\n")
    with pytest.raises(ConfigError, match=r"^agent\.toml: collector\.client_cert_file: a client "
                                          r"certificate is presented over TLS only"):
        load_config(path, lookup=fakes.lookup)


@pytest.mark.parametrize("keys", ["client_cert_file = 'cert.pem'\nclient_key_file = 'key.pem'\n",
                                  "client_cert_file = 'both.pem'\n"])
def test_a_client_certificate_and_its_key_load_from_the_config_directory(
    client_certs: Path, keys: str
) -> None:
    path = client_certs / "agent.toml"
    path.write_text(HTTPS_COLLECTOR + keys)
    collector = load_config(path, lookup=fakes.lookup, for_run=True).collector
    cert = "both.pem" if "both" in keys else "cert.pem"
    assert collector.client_cert_file == str(client_certs / cert)
    assert collector.client_key_file == (None if "both" in keys else str(client_certs / "key.pem"))


def test_check_does_not_read_the_client_certificate(write_config: WriteConfig) -> None:
    """``check`` may run as another user (a Nagios plugin) who cannot read the key."""
    path = write_config(HTTPS_COLLECTOR + "client_cert_file = 'missing.pem'\n")
    assert load_config(path, lookup=fakes.lookup).collector.client_cert_file is not None


def test_validate_cli_reports_a_key_that_is_not_the_certificates(client_certs: Path) -> None:
    path = client_certs / "agent.toml"
    path.write_text(HTTPS_COLLECTOR + "client_cert_file = 'cert.pem'\n"
                    "client_key_file = 'other-key.pem'\n")
    done = _cli("validate", "--config", str(path))
    assert done.returncode == 2
    assert done.stderr.startswith("config error: agent.toml: collector.client_key_file: the "
                                  f"private key in {client_certs / 'other-key.pem'} is not"), \
        done.stderr
