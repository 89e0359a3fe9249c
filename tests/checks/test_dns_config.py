"""The dns check's config: TOML forms it takes, and errors that name the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from agent.config import load_config
from checks.config import ConfigError, build
from checks.dns import (
    DnsConfig,
    NameSpec,
    parse_resolver,
    read_resolv_conf,
    resolver_label,
)


def dns_config(toml: str) -> DnsConfig:
    return build(DnsConfig, tomllib.loads(toml))


def test_defaults() -> None:
    config = dns_config("")
    assert config.resolvers == () and config.names == ()
    assert config.record_types == ("A", "AAAA")
    assert config.query_timeout == 2.0
    assert (config.forward_failure, config.reverse_failure) == ("critical", "warning")
    assert config.response_time_warn is None and config.response_time_crit is None
    assert config.expect_route_address is True


def test_names_as_an_array_of_tables() -> None:
    config = dns_config(
        """
        resolvers = ["10.0.0.53", "127.0.0.1:5354", "[2001:db8::53]:5353"]
        response_time_warn = "500ms"
        response_time_crit = 2
        [[names]]
        name = "web1.example.net"
        addresses = ["192.0.2.10", "2001:DB8:0::10"]
        reverse = false
        [[names]]
        name = "sbc1.example.net"
        """
    )
    assert config.names == (
        NameSpec("web1.example.net", ("192.0.2.10", "2001:db8::10"), reverse=False),
        NameSpec("sbc1.example.net"),
    )
    assert config.resolvers[1] == "127.0.0.1:5354"
    assert config.response_time_warn == 0.5 and config.response_time_crit == 2.0


def test_names_as_inline_tables() -> None:
    config = dns_config('names = [{ name = "sbc1.example.net", addresses = ["192.0.2.11"] }]')
    assert config.names == (NameSpec("sbc1.example.net", ("192.0.2.11",)),)


@pytest.mark.parametrize(
    ("table", "key", "message"),
    [
        ({"resolvers": ["dns.example.net"]}, "resolvers[0]", "not an IP address"),
        ({"resolvers": ["10.0.0.53", "10.0.0.54:99999"]}, "resolvers[1]", "no valid port"),
        ({"resolvers": ["[2001:db8::53"]}, "resolvers[0]", "not [IPv6]:port"),
        ({"resolvers": ["10.0.0.1"] * 7}, "resolvers", "at most 6"),
        ({"names": [{"name": "a..b"}]}, "names[0].name", "empty label"),
        ({"names": [{"name": "."}]}, "names[0].name", "root"),
        ({"names": [{"name": "x.test", "addresses": ["300.1.1.1"]}]}, "names[0].addresses[0]",
         "not an IP address"),
        ({"names": [{"name": "x.test", "adresses": []}]}, "names[0].adresses", "unknown key"),
        ({"names": [{"name": "x.test"}, {"name": "X.test."}]}, "names[1].name", "twice"),
        ({"names": [{"name": f"h{i}.test"} for i in range(17)]}, "names", "at most 16"),
        ({"record_types": ["A"], "names": [{"name": "x.test", "addresses": ["2001:db8::1"]}]},
         "names[0].addresses[0]", "needs AAAA"),
        ({"record_types": []}, "record_types", "must name"),
        ({"record_types": ["A", "A"]}, "record_types", "twice"),
        ({"record_types": ["MX"]}, "record_types[0]", "must be one of"),
        ({"query_timeout": 0}, "query_timeout", "more than 0"),
        ({"response_time_warn": 2, "response_time_crit": 1}, "response_time_warn", "not be above"),
        ({"forward_failure": "major"}, "forward_failure", "must be one of"),
        ({"reverse_failure": "ok"}, "reverse_failure", "must be one of"),
        ({"names": {"web1.example.net": ["192.0.2.10"]}}, "names", "expected an array"),
    ],
)
def test_errors_name_the_key(table: dict[str, object], key: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(DnsConfig, table)
    assert caught.value.key == key
    assert message in caught.value.message


def test_agent_config_reports_the_full_dotted_key(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        '[checks.names]\ntype = "dns"\ntimeout = "10s"\n'
        '[[checks.names.names]]\nname = "web1.example.net"\naddresses = ["192.0.2.300"]\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == "checks.names.names[0].addresses[0]"
    assert str(caught.value).startswith("agent.toml: checks.names.names[0].addresses[0]: ")


@pytest.mark.parametrize(
    ("text", "host", "port", "label"),
    [
        ("10.0.0.53", "10.0.0.53", 53, "10.0.0.53"),
        ("127.0.0.1:5354", "127.0.0.1", 5354, "127.0.0.1:5354"),
        ("2001:db8::53", "2001:db8::53", 53, "2001:db8::53"),
        ("[2001:db8::53]:5353", "2001:db8::53", 5353, "[2001:db8::53]:5353"),
        ("[2001:db8::53]", "2001:db8::53", 53, "2001:db8::53"),
        ("fe80::1%eth0", "fe80::1%eth0", 53, "fe80::1%eth0"),
    ],
)
def test_resolver_forms(text: str, host: str, port: int, label: str) -> None:
    assert parse_resolver(text) == (host, port)
    assert resolver_label(host, port) == label


def test_resolv_conf_first_three_nameservers(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# generated\nsearch example.net\nnameserver 10.0.0.53\n; comment\n"
        "nameserver resolver.example.net\nnameserver 10.0.0.54 # trailing\n"
        "options timeout:1\nnameserver 2001:db8::53\n"
        "nameserver 10.0.0.99\n"
    )
    assert read_resolv_conf(conf) == ("10.0.0.53", "10.0.0.54", "2001:db8::53")
