"""Settings: TOML, environment overrides, secrets in files, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from checks.config import ConfigError
from collector.settings import load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "collector.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file():
    settings = load_settings(None, environ={})
    assert settings.database_url == "sqlite:///var/watchkeeper.db"
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8080)
    assert settings.database.sqlite_synchronous == "FULL"
    assert settings.ingest.max_body_bytes == 1024 * 1024
    assert settings.ingest.max_batch_results == 500
    assert settings.ingest.result_retention == 7 * 86400
    assert settings.silence.min_silence == 180
    assert settings.silence.intervals == 3
    assert settings.silence.startup_grace == 300
    assert settings.silence.check_every == 15


def test_file_values_with_units(tmp_path):
    path = write(tmp_path, """
[server]
port = 9090
[ingest]
max_body_bytes = "2MiB"
result_retention = "30d"
[silence]
min_silence = "5m"
""")
    settings = load_settings(path, environ={})
    assert settings.server.port == 9090
    assert settings.ingest.max_body_bytes == 2 * 1024 * 1024
    assert settings.ingest.result_retention == 30 * 86400
    assert settings.silence.min_silence == 300


def test_environment_overrides_the_file(tmp_path):
    path = write(tmp_path, '[server]\nport = 9090\n[database]\nurl = "sqlite:///x.db"\n')
    settings = load_settings(path, environ={
        "WATCHKEEPER_LISTEN_PORT": "7070",
        "WATCHKEEPER_LISTEN_HOST": "0.0.0.0",
        "WATCHKEEPER_DATABASE_URL": "postgresql://wk@db.internal/wk",
        "WATCHKEEPER_SILENCE__INTERVALS": "4",
        "WATCHKEEPER_INGEST__MAX_BATCH_RESULTS": "100",
        "WATCHKEEPER_AGENT_THING": "ignored",
    })
    assert (settings.server.host, settings.server.port) == ("0.0.0.0", 7070)
    assert settings.database_url == "postgresql+psycopg://wk@db.internal/wk"
    assert settings.silence.intervals == 4
    assert settings.ingest.max_batch_results == 100


def test_database_url_from_a_secret_file(tmp_path):
    secret = tmp_path / "db-url"
    secret.write_text("postgres://wk:s3cret@db/wk\n")
    path = write(tmp_path, f'[database]\nurl_file = "{secret}"\n')
    assert load_settings(path, environ={}).database_url == "postgresql+psycopg://wk:s3cret@db/wk"
    # the environment's URL wins over the file's url_file
    env = {"WATCHKEEPER_DATABASE_URL": "sqlite:///other.db"}
    assert load_settings(path, environ=env).database_url == "sqlite:///other.db"


@pytest.mark.parametrize(("text", "key"), [
    ("[ingest]\nmax_body_bytez = 1\n", "ingest.max_body_bytez"),
    ("[silence]\nmin_silence = \"three minutes\"\n", "silence.min_silence"),
    ("[server]\nport = 70000\n", "server.port"),
    ("[databse]\nurl = \"sqlite:///x\"\n", "databse"),
    ("[database]\nsqlite_synchronous = \"SOMETIMES\"\n", "database.sqlite_synchronous"),
    ("[database]\nurl_file = \"/nonexistent/secret\"\n", "database.url_file"),
    ("[server]\ntls_cert_file = \"cert.pem\"\n", "server"),  # the key is missing
    # the policy's tables, parsed by their own modules
    ("[[priority.rules]]\npriority = \"P1\"\nstatus = \"bad\"\n", "priority.rules[0].status"),
    ("[sla.first_response]\nP3 = \"soon\"\n", "sla.first_response.P3"),
    ("[escalation]\nP5 = []\n", "escalation.P5"),
    ("[customers.acme]\ncalendar = \"mars\"\n", "customers.acme.calendar"),
    ("[notifications.smtp]\nport = 25\n", "notifications.smtp.host"),
    ("[tickets]\nrecovery_hold = \"soon\"\n", "tickets.recovery_hold"),
    ("[notifications.smtp]\nhost = \"mx\"\nusername = \"u\"\n", "notifications.smtp"),
    ("[notifications.webhook]\nurl = \"ftp://x\"\n", "notifications.webhook"),
    ("[notifications]\nlease = 5\n[notifications.smtp]\nhost = \"mx\"\n", "notifications"),
])
def test_errors_name_the_file_and_the_key(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert err.value.key == key
    assert str(path) in str(err.value)


def test_bad_environment_value_names_the_variable(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings(None, environ={"WATCHKEEPER_LISTEN_PORT": "eighty"})
    assert err.value.key == "server.port"
    assert "WATCHKEEPER_LISTEN_PORT" in str(err.value)


def test_unreadable_or_invalid_toml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.toml", environ={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[server\n"), environ={})


def test_every_setting_is_described_in_the_collector_reference():
    from collector.settings import Settings

    text = (Path(__file__).resolve().parents[2] / "docs" / "collector.md").read_text()
    missing = []
    for section, field in Settings.model_fields.items():
        if f"[{section}" not in text:
            missing.append(section)
            continue
        model = field.annotation
        for name in getattr(model, "model_fields", {}):
            if not any(form in text for form in (f"`{name}`", f".{name}`", f"`{name}.")):
                missing.append(f"{section}.{name}")
    assert missing == []


def test_the_example_collector_config_is_valid(tmp_path):
    from collector.policy import build_policy

    example = Path(__file__).resolve().parents[2] / "examples" / "collector.toml"
    settings = load_settings(example, environ={"WATCHKEEPER_DATABASE_URL": "sqlite://"})
    policy = build_policy(settings)
    assert policy.calendar_for("acme").timezone == "Europe/Kyiv"
    assert settings.notifications.smtp is not None
    assert settings.notifications.smtp.security == "starttls"
    (rule,) = policy.priority.rules
    assert rule.label == "priority.rules[0] (billing database disks)"
