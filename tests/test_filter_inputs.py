"""plugins/filter/inputs.py: the parsers behind every role's input validation."""

from __future__ import annotations

import datetime
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PLUGIN = Path(__file__).resolve().parent.parent / "plugins" / "filter" / "inputs.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cgc_filter_inputs", PLUGIN)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


inputs = _load()


def errors(value: Any, spec: Any, name: str = "x_var") -> list[str]:
    return inputs.value_errors(name, value, spec)


# --- each type: values it takes and values it refuses --------------------------------

GOOD = [
    ("port", 1),
    ("port", 65535),
    ("port", "6379"),
    ("ip", "10.230.80.30"),
    ("ip", "fd00::1"),
    ("cidr", "10.230.80.0/24"),
    ("cidr", "fd00::/64"),
    ("client", "10.230.80.30"),
    ("client", "10.230.80.0/24"),
    ("client", "0.0.0.0/0"),
    ("client", "fd00::7"),
    ("host", "db.example.internal"),
    ("host", "localhost"),
    ("host", "10.0.0.1"),
    ("bind", "0.0.0.0"),
    ("bind", "::1"),
    ("listen", "*"),
    ("listen", "localhost"),
    ("listen", "10.0.0.2"),
    ("host_port", "cache:6379"),
    ("host_port", "[::1]:8000"),
    ("upstream", "unix:/run/cachedapp/gunicorn.sock"),
    ("upstream", "10.0.0.5:8000"),
    ("upstream", "web-1.internal:80"),
    ("nginx_size", "1m"),
    ("nginx_size", "0"),
    ("nginx_size", "512K"),
    ("nginx_size", 1048576),
    ("redis_size", "256mb"),
    ("redis_size", "1GB"),
    ("redis_size", "100000"),
    ("secret", "s3cret"),
    ("abs_path", "/etc/ssl/certs/ca.crt"),
]


@pytest.mark.parametrize(("spec", "value"), GOOD, ids=[f"{s}={v}" for s, v in GOOD])
def test_good_values_pass(spec: str, value: Any) -> None:
    assert errors(value, spec) == []


# (type, value, words the message must hold besides the variable and the value)
BAD = [
    ("port", 0, "TCP port 1-65535"),
    ("port", 70000, "TCP port 1-65535"),
    ("port", "eighty", "TCP port"),
    ("port", True, "TCP port"),
    ("port", 80.5, "TCP port"),
    ("ip", "10.230.80.300", "Octet 300"),
    ("ip", "10.0.0.0/24", "not an IP address"),
    ("cidr", "10.230.80.0/33", "not a valid netmask"),
    ("cidr", "10.230.80.7/24", "host bits set (the network is 10.230.80.0/24)"),
    ("cidr", "10.230.80.0", "not a CIDR network"),
    ("client", "10.230.80.300", "Octet 300"),
    ("client", "10.230.80.0/33", "not a valid netmask"),
    ("client", "fd00::/129", "not a valid netmask"),
    ("client", "web-1", "not an IP address or CIDR network"),
    ("host", "10.230.80.300", "Octet 300"),
    ("host", "under_score.example", "not a host name or IP address"),
    ("host", "", "not a host name or IP address"),
    ("bind", "10.230.80.300", "Octet 300"),
    ("bind", "localhost", "not an IP address"),
    ("bind", "224.0.0.1", "multicast"),
    ("listen", "10.230.80.300", "Octet 300"),
    ("listen", "my host", "not an IP address, a host name or *"),
    ("host_port", "cache", "not host:port"),
    ("host_port", "cache:port", "TCP port"),
    ("host_port", "::1:8000", "not host:port"),
    ("upstream", "unix:relative.sock", "unix:/absolute/path"),
    ("upstream", "10.0.0.5", "neither unix:/path nor host:port"),
    ("upstream", "10.0.0.5:0", "TCP port"),
    ("nginx_size", "lots", "not an nginx size"),
    ("nginx_size", "10zz", "not an nginx size"),
    ("nginx_size", "1mb", "not an nginx size"),
    ("nginx_size", "-1", "not an nginx size"),
    ("redis_size", "lots", "not a Redis memory size"),
    ("redis_size", "1.5gb", "not a Redis memory size"),
    ("redis_size", "-1", "not a Redis memory size"),
    ("abs_path", "etc/ssl/ca.crt", "not an absolute path"),
    ("file", "/nonexistent/ca.crt", "not a readable file on the controller"),
]


@pytest.mark.parametrize(("spec", "value", "why"), BAD, ids=[f"{s}={v}" for s, v, _ in BAD])
def test_bad_values_are_named_with_the_reason(spec: str, value: Any, why: str) -> None:
    [message] = errors(value, spec)
    assert message.startswith("x_var: ")
    assert repr(value) in message
    assert why in message


def test_a_secret_is_never_shown() -> None:
    assert errors("", "secret") == ["x_var: must not be empty"]
    assert errors(None, "secret") == ["x_var: must be set"]
    assert errors(["ok", ""], "secret[]") == ["x_var[1]: must not be empty"]


@pytest.mark.parametrize(
    ("value", "spec", "why"),
    [
        (0, {"type": "int", "min": 1, "max": 64}, "must be 1-64"),
        (65, {"type": "int", "min": 1, "max": 64}, "must be 1-64"),
        (-1, {"type": "int", "min": 0}, "must be at least 0"),
        ("3", {"type": "int", "max": 2}, "must be at most 2"),
        ("two", {"type": "int", "min": 0}, "not an integer"),
        (5, {"type": "number", "above": 5}, "must be more than 5"),
        ("soon", {"type": "number", "min": 0}, "not a number"),
        ("10.1.0.0/16", {"type": "cidr", "version": 4, "prefix": 24}, "not a /24 network"),
        ("fd00::/64", {"type": "cidr", "version": 4}, "not IPv4"),
        ("10.0.0.0/8", {"type": "cidr", "min_prefix": 16}, "wider than /16"),
    ],
)
def test_options_bound_a_type(value: Any, spec: dict[str, Any], why: str) -> None:
    [message] = errors(value, spec)
    assert why in message


def test_options_accept_values_inside_the_bounds() -> None:
    assert errors(64, {"type": "int", "min": 1, "max": 64}) == []
    assert errors(5.01, {"type": "number", "above": 5}) == []
    assert errors("10.230.80.0/24", {"type": "cidr", "version": 4, "prefix": 24}) == []
    assert errors("203.0.113.0/24", {"type": "cidr", "min_prefix": 16}) == []


def test_a_list_names_each_bad_entry_by_position() -> None:
    found = errors(["10.0.0.1", "10.230.80.300", "10.230.80.0/33"], "client[]", "pg_clients")
    assert len(found) == 2
    assert found[0].startswith("pg_clients[1]: '10.230.80.300'")
    assert found[1].startswith("pg_clients[2]: '10.230.80.0/33'")


def test_a_list_type_refuses_a_scalar_and_counts_entries() -> None:
    assert errors("10.0.0.1", "client[]") == ["x_var: must be a list (got '10.0.0.1')"]
    assert errors([], {"type": "upstream[]", "min_items": 1}) == ["x_var: needs at least 1 entry"]
    assert errors([], "client[]") == []


def test_long_values_are_shortened() -> None:
    [message] = errors("x" * 500, "nginx_size")
    assert len(message) < 200
    assert "..." in message


def test_an_unknown_type_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown input type 'prot'"):
        errors(1, "prot")


def test_input_errors_lists_every_bad_input_in_order() -> None:
    specs = {"a_port": "port", "a_size": "redis_size", "a_pass": "secret", "a_ok": "ip"}
    found = inputs.input_errors(specs, [0, "lots", "", "::1"])
    assert [m.split(":")[0] for m in found] == ["a_port", "a_size", "a_pass"]
    assert (
        inputs.input_errors(specs, {"a_port": 1, "a_size": "1m", "a_pass": "p", "a_ok": "::1"})
        == []
    )


def test_input_errors_needs_one_value_per_input() -> None:
    with pytest.raises(ValueError, match="2 inputs but 1 values"):
        inputs.input_errors({"a": "port", "b": "port"}, [1])


def test_certificate_must_hold_a_pem_certificate(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.crt"
    bogus.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    [message] = errors(str(bogus), "certificate")
    assert "holds no PEM certificate" in message


def test_certificate_accepts_a_real_one(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "ca.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    assert errors(str(path), "certificate") == []


# --- conversions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("256mb", 256 * 1024**2), ("1G", 10**9), ("1gb", 1024**3), ("100", 100), ("64kb", 65536)],
)
def test_redis_bytes(value: str, expected: int) -> None:
    assert inputs.redis_bytes(value) == expected


@pytest.mark.parametrize(("value", "expected"), [("1m", 1024**2), ("8K", 8192), ("0", 0)])
def test_nginx_bytes(value: str, expected: int) -> None:
    assert inputs.nginx_bytes(value) == expected


def test_ip_networks_normalises_and_splits_by_version() -> None:
    clients = ["10.0.0.5", "10.1.0.0/16", "fd00::7", "fd00:1::/64"]
    assert inputs.ip_networks(clients) == [
        "10.0.0.5/32",
        "10.1.0.0/16",
        "fd00::7/128",
        "fd00:1::/64",
    ]
    assert inputs.ip_networks(clients, 4) == ["10.0.0.5/32", "10.1.0.0/16"]
    assert inputs.ip_networks(clients, 6) == ["fd00::7/128", "fd00:1::/64"]


def rich_rule(family: int, source: str, port: int, tail: str = "accept") -> str:
    return (
        f'rule family="ipv{family}" source address="{source}"'
        f' port port="{port}" protocol="tcp" {tail}'
    )


def test_firewalld_rich_rules_one_per_network_ipv4_first() -> None:
    """As firewall-cmd --list-rich-rules prints them; each network once."""
    clients = ["fd00::1", "10.0.1.15", "10.0.2.0/24", "10.0.1.15/32", "FD00:0::1"]
    assert inputs.firewalld_rich_rules(clients, "5433") == [
        rich_rule(4, "10.0.1.15/32", 5433),
        rich_rule(4, "10.0.2.0/24", 5433),
        rich_rule(6, "fd00::1/128", 5433),
    ]
    assert inputs.firewalld_rich_rules([], 5432) == []


def test_firewalld_stale_rules_are_former_clients_of_this_port_only() -> None:
    """From the runtime and permanent listings (a registered loop), each once; a
    client's rule, another port's and another form's (logging) are kept."""
    listed = {
        "results": [
            {"stdout_lines": [
                rich_rule(4, "10.0.1.15/32", 5433),
                rich_rule(4, "10.0.3.3/32", 5433),
                rich_rule(4, "10.0.3.3/32", 6379),
                rich_rule(4, "10.0.4.4/32", 5433, 'log prefix="pg" accept'),
            ]},
            {"stdout_lines": [
                rich_rule(4, "10.0.3.3/32", 5433),
                rich_rule(6, "fd00::2/128", 5433),
            ]},
        ]
    }  # fmt: skip
    assert inputs.firewalld_stale_rules(listed, ["10.0.1.15"], 5433) == [
        rich_rule(4, "10.0.3.3/32", 5433),
        rich_rule(6, "fd00::2/128", 5433),
    ]
    # Nothing listed (firewalld not running: the listing task was skipped).
    assert inputs.firewalld_stale_rules({}, ["10.0.1.15"], 5433) == []
    assert inputs.firewalld_stale_rules({"results": [{"skipped": True}]}, [], 5433) == []


def test_the_filters_fail_a_task_with_the_reason() -> None:
    filters = inputs.FilterModule().filters()
    assert filters["redis_bytes"]("2mb") == 2 * 1024**2
    with pytest.raises(AnsibleFilterError, match="'lots' is not a Redis memory size"):
        filters["redis_bytes"]("lots")
    with pytest.raises(AnsibleFilterError, match="Octet 300"):
        filters["ip_networks"](["10.230.80.300"])
    with pytest.raises(AnsibleFilterError, match="is not a TCP port"):
        filters["firewalld_rich_rules"](["10.0.0.1"], 70000)


# --- options every type takes, and the pattern and url types ---------------------


def test_a_hint_says_why_the_rule_exists() -> None:
    [message] = errors(1, {"type": "int", "min": 2, "hint": "so a rollback has a release"})
    assert message == "x_var: 1 must be at least 2 (so a rollback has a release)"


def test_allow_empty_takes_only_the_empty_string() -> None:
    spec = {"type": "url", "allow_empty": True}
    assert errors("", spec) == []
    assert errors("http://web-1:8080/readyz", spec) == []
    assert errors("ftp://web-1/", spec) == [
        "x_var: 'ftp://web-1/' is not a http:// or https:// URL"
    ]


def test_a_pattern_names_what_it_wants_and_refuses_reserved_names() -> None:
    spec = {"type": "pattern", "regex": "^[a-z_][a-z0-9_]{0,62}$", "what": "an identifier"}
    assert errors("cachedapp", spec) == []
    assert errors("Bad-Name", spec) == ["x_var: 'Bad-Name' is not an identifier"]
    assert errors("postgres", {**spec, "reserved": ["postgres"]}) == [
        "x_var: 'postgres' is reserved: must not be 'postgres'"
    ]


def test_url_credentials_never_show() -> None:
    spec = {"type": "url", "schemes": ["redis", "rediss"]}
    assert errors("rediss://app:pw@cache:6379/0", spec) == []
    [message] = errors("http://app:hunter2@cache:6379/0", spec)
    assert "hunter2" not in message
    assert "'http://***@cache:6379/0' is not a redis:// or rediss:// URL" in message
