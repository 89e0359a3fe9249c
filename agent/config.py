"""The agent's TOML configuration, validated completely before anything runs.

``load_config`` reads the file, builds the ``[agent]``, ``[collector]`` and ``[spool]``
sections and every ``[checks.<name>]`` instance (the runner keys ``type``, ``interval``,
``timeout``, ``jitter``, ``enabled`` here, every other key through the check type's own
strict ``Config``), and raises ``ConfigError`` naming the file and the dotted key on the
first problem. Relative paths are taken relative to the directory of the config file.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from checks import registry
from checks.config import Bytes, ConfigError, Seconds, build, parse_duration
from checks.registry import CheckType, UnknownCheckType

CheckLookup = Callable[[str], type[CheckType]]
"""Finds the class of a check type by name; ``checks.registry.load`` unless a test swaps it."""

SELF_CHECK_TYPE = "agent"
RUNNER_KEYS = ("type", "interval", "timeout", "jitter", "enabled")
DEFAULT_INTERVAL = 60.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_JITTER = 5.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LISTEN = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?))"
    r":(?P<port>[0-9]{1,5})$"
)


@dataclass(frozen=True)
class AgentSettings:
    """``[agent]``: who this host is and where the agent keeps its state."""

    host: str = ""
    state_dir: str = "/var/lib/watchkeeper"
    log_level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(frozen=True)
class CollectorSettings:
    """``[collector]``: where results go and how hard to try."""

    url: str | None = None
    token: str | None = None
    token_file: str | None = None
    ca_file: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    verify_tls: bool = True
    timeout: Seconds = Seconds(10)
    push_interval: Seconds = Seconds(10)
    batch_max_results: int = 200
    backoff_initial: Seconds = Seconds(1)
    backoff_max: Seconds = Seconds(300)
    gzip: bool = True

    def __post_init__(self) -> None:
        if self.url is not None and not re.match(r"^https?://[^/\s]+", self.url):
            raise ConfigError("url", f"expected an http:// or https:// URL, got {self.url!r}")
        if self.token is not None and self.token_file is not None:
            raise ConfigError("token", "give either token or token_file, not both")
        if self.token is not None and not self.token.strip():
            raise ConfigError("token", "is empty")
        if self.client_key_file is not None and self.client_cert_file is None:
            raise ConfigError("client_key_file", "given without client_cert_file (the "
                              "certificate the key belongs to)")
        if self.client_cert_file is not None and (self.url or "").startswith("http://"):
            raise ConfigError("client_cert_file", "a client certificate is presented over TLS "
                              "only: url must be https://")
        if self.timeout <= 0:
            raise ConfigError("timeout", "must be more than 0 seconds")
        if self.push_interval <= 0:
            raise ConfigError("push_interval", "must be more than 0 seconds")
        if not 1 <= self.batch_max_results <= 10_000:
            raise ConfigError("batch_max_results", "must be between 1 and 10000")
        if self.backoff_initial <= 0:
            raise ConfigError("backoff_initial", "must be more than 0 seconds")
        if self.backoff_max < self.backoff_initial:
            raise ConfigError("backoff_max", "must not be shorter than backoff_initial")


@dataclass(frozen=True)
class SpoolSettings:
    """``[spool]``: the on-disk queue of results not yet stored by the collector."""

    dir: str | None = None
    max_bytes: Bytes = Bytes(50_000_000)
    max_age: Seconds = Seconds(7 * 86400)

    def __post_init__(self) -> None:
        if self.max_bytes < 64 * 1024:
            raise ConfigError("max_bytes", "must be at least 64KiB")
        if self.max_age < 60:
            raise ConfigError("max_age", "must be at least 60 seconds")


@dataclass(frozen=True)
class MetricsSettings:
    """``[metrics]``: the agent's own Prometheus endpoint, off unless ``listen`` is given."""

    listen: str | None = None

    def __post_init__(self) -> None:
        if self.listen is not None:
            parse_listen(self.listen)

    @property
    def address(self) -> tuple[str, int] | None:
        """``(host, port)`` to listen on, or None when the endpoint is off."""
        return None if self.listen is None else parse_listen(self.listen)


def parse_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:9108"``, ``"[::1]:9108"`` or ``"name:9108"`` as ``(host, port)``."""
    expected = "expected HOST:PORT such as \"127.0.0.1:9108\" or \"[::1]:9108\""
    match = _LISTEN.match(value)
    if match is None:
        raise ConfigError("listen", f"{expected}, got {value!r}")
    host = match.group("v6") or match.group("host")
    port = int(match.group("port"))
    if not 1 <= port <= 65535:
        raise ConfigError("listen", f"port must be between 1 and 65535, got {port}")
    if match.group("v6"):
        try:
            socket.inet_pton(socket.AF_INET6, host)
        except OSError:
            raise ConfigError("listen", f"not an IPv6 address: {host!r}") from None
    elif host[0].isdigit() and host.replace(".", "").isdigit():
        try:
            socket.inet_pton(socket.AF_INET, host)
        except OSError:
            raise ConfigError("listen", f"not an IPv4 address: {host!r}") from None
    return host, port


@dataclass(frozen=True)
class CheckSpec:
    """One configured check instance, ready for the runner."""

    name: str
    type_name: str
    check_class: type[CheckType]
    config: Any
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    jitter: float = 0.0
    enabled: bool = True


@dataclass(frozen=True)
class AgentConfig:
    """The whole validated configuration."""

    file: Path
    host: str
    state_dir: Path
    log_level: str
    collector: CollectorSettings
    spool_dir: Path
    spool: SpoolSettings
    checks: tuple[CheckSpec, ...] = field(default=())
    metrics: MetricsSettings = field(default=MetricsSettings())

    @property
    def shortest_interval(self) -> float:
        """The shortest interval among enabled checks (the protocol's ``agent.interval``)."""
        return min((c.interval for c in self.checks if c.enabled), default=DEFAULT_INTERVAL)

    def token(self) -> str:
        """The collector token, inline or read from ``token_file`` now."""
        return read_token(self)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The tables of the TOML file at ``path``; a ``ConfigError`` if it cannot be read or
    is not TOML."""
    # Imported here: the daemon gets the tables from its launch (agent.launch), 0.25 MB.
    import tomllib

    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("", "no such file", str(path)) from None
    except OSError as err:
        raise ConfigError("", f"cannot read: {err.strerror}", str(path)) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError("", f"not valid TOML: {err}", path.name) from None


def load_config(
    path: str | Path,
    *,
    lookup: CheckLookup = registry.load,
    fqdn: Callable[[], str] = socket.getfqdn,
    for_run: bool = False,
    tables: Mapping[str, Any] | None = None,
) -> AgentConfig:
    """Read and validate ``path`` (``tables``: its contents, already read); with
    ``for_run`` also require a usable collector."""
    path = Path(path)
    data = read_config_file(path) if tables is None else tables
    try:
        config = _build(data, path, lookup, fqdn)
        if for_run:
            check_for_run(config)
    except ConfigError as err:
        raise err.in_file(path.name) from None
    return config


def check_for_run(config: AgentConfig) -> None:
    """The extra requirements of ``run``: a collector URL and a readable token."""
    collector = config.collector
    if collector.url is None:
        raise ConfigError("collector.url", "required key is missing (where to push results)")
    if collector.token is None and collector.token_file is None:
        raise ConfigError("collector.token_file", "required: give token_file (or token inline)")
    read_token(config)
    if collector.ca_file is not None and not Path(collector.ca_file).is_file():
        raise ConfigError("collector.ca_file", f"no such file: {collector.ca_file}")
    check_client_certificate(collector)


def check_client_certificate(collector: CollectorSettings) -> None:
    """Make sure the client certificate and its key, when configured, can be presented:
    readable PEM files, an unencrypted key, and the key the certificate's. A ``ConfigError``
    names the key of the file at fault.

    The pair is loaded into a throw-away TLS context, as the sender will load it, so that
    ``validate`` and the start of ``run`` find a mismatch, not the first push.
    """
    if collector.client_cert_file is None:
        return
    cert_file = collector.client_cert_file
    key_file = collector.client_key_file or cert_file
    key_name = "collector.client_key_file" if collector.client_key_file else \
        "collector.client_cert_file"
    cert_pem = _read_pem("collector.client_cert_file", cert_file)
    key_pem = cert_pem if key_file == cert_file else _read_pem(key_name, key_file)
    if "-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise ConfigError("collector.client_cert_file", f"{cert_file} holds no PEM certificate")
    if "ENCRYPTED PRIVATE KEY-----" in key_pem or "Proc-Type: 4,ENCRYPTED" in key_pem:
        raise ConfigError(key_name, f"the private key in {key_file} is encrypted (not "
                          "supported: store it unencrypted, readable by the agent's user only)")
    if not re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", key_pem):
        where = "" if collector.client_key_file else " (give the key in client_key_file)"
        raise ConfigError(key_name, f"{key_file} holds no PEM private key{where}")
    # Imported here: only a configuration with a client certificate pays for ssl now, and
    # its daemon loads ssl for the https collector anyway.
    import ssl

    from agent.transport import load_client_certificate

    try:
        load_client_certificate(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), cert_file,
                                collector.client_key_file)
    except ssl.SSLError as err:
        if err.reason == "KEY_VALUES_MISMATCH":
            raise ConfigError(key_name, f"the private key in {key_file} is not the key of the "
                              f"certificate in {cert_file}") from None
        raise ConfigError(key_name, f"cannot load the certificate in {cert_file} with the "
                          f"key in {key_file}: {err.reason or err}") from None
    except (OSError, ValueError) as err:  # changed since read, or encrypted after all
        raise ConfigError(key_name, str(err)) from None


def _read_pem(key: str, path: str) -> str:
    """The text of the PEM file at ``path``; a ``ConfigError`` naming ``key`` if it cannot
    be read."""
    try:
        return Path(path).read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        raise ConfigError(key, f"no such file: {path}") from None
    except OSError as err:
        raise ConfigError(key, f"cannot read {path}: {err.strerror or err}") from None


def read_token(config: AgentConfig) -> str:
    """The bearer token; a missing, unreadable or empty token file is a ``ConfigError``."""
    collector = config.collector
    if collector.token is not None:
        return collector.token.strip()
    if collector.token_file is None:
        raise ConfigError("collector.token_file", "no token configured")
    try:
        token = Path(collector.token_file).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(
            "collector.token_file", f"no such file: {collector.token_file}"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            "collector.token_file", f"cannot read {collector.token_file}: {err}"
        ) from None
    if not token:
        raise ConfigError("collector.token_file", f"{collector.token_file} is empty")
    return token


def _build(
    data: Mapping[str, Any], path: Path, lookup: CheckLookup, fqdn: Callable[[], str]
) -> AgentConfig:
    unknown = sorted(set(data) - {"agent", "collector", "spool", "metrics", "checks"})
    if unknown:
        raise ConfigError(unknown[0], "unknown section (allowed: agent, collector, spool, "
                          "metrics, checks)")
    base = path.parent
    agent = build(AgentSettings, data.get("agent", {}), key="agent")
    collector = build(CollectorSettings, data.get("collector", {}), key="collector")
    spool = build(SpoolSettings, data.get("spool", {}), key="spool")
    metrics = build(MetricsSettings, data.get("metrics", {}), key="metrics")
    collector = _with_paths(collector, base)
    state_dir = _resolve(agent.state_dir, base)
    spool_dir = _resolve(spool.dir, base) if spool.dir else state_dir / "spool"
    checks_table = data.get("checks", {})
    if not isinstance(checks_table, Mapping):
        raise ConfigError("checks", "expected a table of check instances ([checks.<name>])")
    checks = [_build_check(name, table, lookup) for name, table in checks_table.items()]
    if not any(c.type_name == SELF_CHECK_TYPE for c in checks):
        if SELF_CHECK_TYPE in checks_table:
            raise ConfigError(f"checks.{SELF_CHECK_TYPE}.type", "the name 'agent' is reserved "
                              "for the agent self-check")
        checks.insert(0, _build_check(SELF_CHECK_TYPE, {}, lookup))
    return AgentConfig(
        file=path,
        host=agent.host or fqdn(),
        state_dir=state_dir,
        log_level=agent.log_level,
        collector=collector,
        spool_dir=spool_dir,
        spool=spool,
        checks=tuple(checks),
        metrics=metrics,
    )


def _build_check(name: str, table: Any, lookup: CheckLookup) -> CheckSpec:
    key = f"checks.{name}"
    if not _NAME.match(name):
        raise ConfigError(key, "a check name uses letters, digits, '_', '.', '-' only")
    if not isinstance(table, Mapping):
        raise ConfigError(key, "expected a table")
    type_name = table.get("type", name)
    if not isinstance(type_name, str):
        raise ConfigError(f"{key}.type", "expected a string")
    try:
        check_class = lookup(type_name)
    except UnknownCheckType as err:
        raise ConfigError(f"{key}.type", str(err.args[0])) from None
    except ImportError as err:
        raise ConfigError(f"{key}.type", f"check type {type_name!r} cannot be loaded: {err}") \
            from None
    interval = _duration(table, "interval", DEFAULT_INTERVAL, key)
    if interval <= 0:
        raise ConfigError(f"{key}.interval", "must be more than 0 seconds")
    timeout = _duration(table, "timeout", min(DEFAULT_TIMEOUT, interval), key)
    if timeout <= 0:
        raise ConfigError(f"{key}.timeout", "must be more than 0 seconds")
    jitter = _duration(table, "jitter", min(DEFAULT_JITTER, interval / 10), key)
    if jitter >= interval:
        raise ConfigError(f"{key}.jitter", f"must be shorter than the interval ({interval:g}s)")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{key}.enabled", "expected true or false")
    if type_name == SELF_CHECK_TYPE and not enabled:
        raise ConfigError(f"{key}.enabled", "the agent self-check cannot be disabled")
    rest = {k: v for k, v in table.items() if k not in RUNNER_KEYS}
    try:
        check_config = build(check_class.Config, rest, key=key)
    except ConfigError as err:
        allowed = ", ".join(RUNNER_KEYS)
        if err.message.startswith("unknown key (allowed here: "):
            err = ConfigError(err.key, err.message.replace("here: ", f"here: {allowed}, "))
        raise err if err.key.startswith(key) else err.under(key) from None
    return CheckSpec(name, type_name, check_class, check_config, interval, timeout, jitter,
                     enabled)


def _duration(table: Mapping[str, Any], name: str, default: float, key: str) -> float:
    if name not in table:
        return default
    return parse_duration(table[name], f"{key}.{name}")


def _resolve(value: str, base: Path) -> Path:
    return (base / Path(value).expanduser()).absolute()


def _with_paths(collector: CollectorSettings, base: Path) -> CollectorSettings:
    return replace(
        collector,
        token_file=str(_resolve(collector.token_file, base)) if collector.token_file else None,
        ca_file=str(_resolve(collector.ca_file, base)) if collector.ca_file else None,
        client_cert_file=_resolved_or_none(collector.client_cert_file, base),
        client_key_file=_resolved_or_none(collector.client_key_file, base),
    )


def _resolved_or_none(value: str | None, base: Path) -> str | None:
    return str(_resolve(value, base)) if value else None
