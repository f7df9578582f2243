"""Role input checks and conversions, in Python rather than Jinja regexes.

The roles' validation tasks call ``input_errors`` with a mapping of variable
name to type and the variables' values; it returns one message per bad input,
naming the variable and the value (never a secret's value), so every problem
shows at once before anything changes:

    __redis_input_errors: >-
      {{ __redis_inputs | input_errors(query('ansible.builtin.vars', *__redis_inputs)) }}
    __redis_inputs:
      redis_port: port
      redis_allowed_clients: client[]
      redis_maxmemory: redis_size
      redis_app_password: secret

A type is a name from ``TYPES`` (``name[]`` for a list of them), or a mapping
with ``type`` and that type's options, e.g. ``{type: int, min: 1, max: 64}``
or ``{type: cidr, version: 4, prefix: 24}``. Adding a check is one line.

The conversions (``redis_bytes``, ``ip_networks``, ``firewalld_rich_rules``,
``firewalld_stale_rules``) turn the same inputs into what templates, tasks and
runtime checks need.
"""

from __future__ import annotations

import ipaddress
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from ansible.errors import AnsibleFilterError
from cryptography import x509
from cryptography.hazmat.primitives import serialization

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# nginx sizes (ngx_parse_size): bytes, or k/K, m/M, g/G.
NGINX_SIZE = re.compile(r"^(\d+)([kKmMgG]?)$")
NGINX_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
# Redis memory (memtoll): bytes, k/m/g (1000s) or kb/mb/gb (1024s), any case.
REDIS_SIZE = re.compile(r"^(\d+)(b|k|kb|m|mb|g|gb)?$", re.IGNORECASE)
REDIS_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1024,
    "m": 1000**2,
    "mb": 1024**2,
    "g": 1000**3,
    "gb": 1024**3,
}
HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
SHOWN_CHARS = 80


class InputError(ValueError):
    """A value that does not fit its type; the message explains why."""


# --- parsers: return the parsed value or raise InputError ----------------------


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise InputError("is a boolean, not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value)
    raise InputError("is not an integer")


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise InputError("is a boolean, not a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError("is not a number") from None


def _bounded(number: float, low: float | None, high: float | None, above: float | None) -> None:
    if above is not None and not number > above:
        raise InputError(f"must be more than {above:g}")
    if low is not None and high is not None and not low <= number <= high:
        raise InputError(f"must be {low:g}-{high:g}")
    if low is not None and number < low:
        raise InputError(f"must be at least {low:g}")
    if high is not None and number > high:
        raise InputError(f"must be at most {high:g}")


def check_int(value: Any, min: int | None = None, max: int | None = None) -> int:
    """An integer, within [min, max] when they are given."""
    number = _integer(value)
    _bounded(number, min, max, None)
    return number


def check_number(
    value: Any,
    min: float | None = None,
    max: float | None = None,
    above: float | None = None,
) -> float:
    """A number (int or float), within the bounds given (``above``: exclusive)."""
    number = _number(value)
    _bounded(number, min, max, above)
    return number


def check_port(value: Any) -> int:
    """A TCP/UDP port number, 1-65535."""
    try:
        return check_int(value, 1, 65535)
    except InputError:
        raise InputError("is not a TCP port 1-65535") from None


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"is not {what}")
    return value.strip()


def _version(version: int | None, found: int) -> None:
    if version is not None and int(version) != found:
        raise InputError(f"is not IPv{version}")


def check_ip(value: Any, version: int | None = None) -> IPAddress:
    """An IPv4 or IPv6 address (no mask)."""
    text = _text(value, "an IP address")
    try:
        address = ipaddress.IPv6Address(text) if ":" in text else ipaddress.IPv4Address(text)
    except ValueError as error:
        raise InputError(f"is not an IP address ({error})") from None
    _version(version, address.version)
    return address


def check_cidr(
    value: Any,
    version: int | None = None,
    prefix: int | None = None,
    min_prefix: int | None = None,
    bare: bool = False,
) -> IPNetwork:
    """A network in CIDR notation with no host bits set (``bare``: a lone
    address is accepted as its /32 or /128 host network)."""
    text = _text(value, "a CIDR network")
    if "/" not in text and not bare:
        raise InputError("is not a CIDR network (address/prefix, e.g. 10.0.0.0/24)")
    try:
        network = (
            ipaddress.IPv6Network(text, strict=False)
            if ":" in text
            else ipaddress.IPv4Network(text, strict=False)
        )
    except ValueError as error:
        what = "an IP address or CIDR network" if bare else "a CIDR network"
        raise InputError(f"is not {what} ({error})") from None
    if network.network_address != ipaddress.ip_interface(text).ip:
        raise InputError(f"has host bits set (the network is {network})")
    _version(version, network.version)
    if prefix is not None and network.prefixlen != int(prefix):
        raise InputError(f"is not a /{prefix} network")
    if min_prefix is not None and network.prefixlen < int(min_prefix):
        raise InputError(f"is wider than /{min_prefix}")
    return network


def check_client(value: Any, version: int | None = None) -> IPNetwork:
    """A client address or network, as pg_hba.conf and nftables take it."""
    return check_cidr(value, version=version, bare=True)


def check_hostname(value: Any) -> str:
    """A DNS host name (RFC 1123; a name whose last label is all digits is
    a mistyped address, not a host name)."""
    text = _text(value, "a host name")
    labels = text.removesuffix(".").split(".")
    if (
        len(text) > 253
        or not all(HOST_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise InputError("is not a host name")
    return text


def check_host(value: Any) -> str:
    """An IP address or a DNS host name."""
    text = _text(value, "a host name or IP address")
    try:
        return str(check_ip(text))
    except InputError as ip_error:
        if ":" in text or re.fullmatch(r"[\d.]+", text):
            raise ip_error from None
    try:
        return check_hostname(text)
    except InputError:
        raise InputError("is not a host name or IP address") from None


def check_bind(value: Any) -> IPAddress:
    """An address a server binds to: an IP address of the host."""
    address = check_ip(value)
    if address.is_multicast:
        raise InputError("is a multicast address, which cannot be bound")
    return address


def check_listen(value: Any) -> str:
    """An entry of PostgreSQL's listen_addresses: an IP address, a host
    name, or * (every address)."""
    if value == "*":
        return "*"
    try:
        return str(check_bind(value))
    except InputError as ip_error:
        if ":" in str(value) or re.fullmatch(r"[\d.]+", str(value).strip()):
            raise ip_error from None
    try:
        return check_hostname(value)
    except InputError:
        raise InputError("is not an IP address, a host name or *") from None


def check_host_port(value: Any) -> tuple[str, int]:
    """host:port, with an IPv6 address in brackets ([::1]:8000)."""
    text = _text(value, "host:port")
    match = re.fullmatch(r"\[([^\]]+)\]:([^:]*)|([^:\[\]]+):([^:]*)", text)
    if not match:
        raise InputError("is not host:port (an IPv6 address in brackets)")
    host = match.group(1) or match.group(3)
    port = match.group(2) if match.group(1) else match.group(4)
    try:
        check_ip(host, version=6) if match.group(1) else check_host(host)
    except InputError as error:
        raise InputError(f"is not host:port: its host {error}") from None
    try:
        return host, check_port(port)
    except InputError as error:
        raise InputError(f"is not host:port: its port {error}") from None


def check_upstream(value: Any) -> str:
    """An nginx upstream server: unix:/absolute/path or host:port."""
    text = _text(value, "an upstream server")
    if text.startswith("unix:"):
        if not re.fullmatch(r"unix:/\S+", text):
            raise InputError("is not unix:/absolute/path")
        return text
    try:
        check_host_port(text)
    except InputError as error:
        reason = str(error).removeprefix("is not host:port")
        raise InputError(f"is neither unix:/path nor host:port{reason}") from None
    return text


def nginx_bytes(value: Any) -> int:
    """An nginx size (10, 512k, 8M, 1g) in bytes."""
    match = NGINX_SIZE.match(str(value).strip()) if isinstance(value, str | int) else None
    if not match or isinstance(value, bool):
        raise InputError("is not an nginx size (a number with an optional unit k, m or g)")
    return int(match.group(1)) * NGINX_UNITS[match.group(2).lower()]


def redis_bytes(value: Any) -> int:
    """A Redis memory size (256mb, 1gb, 100000) in bytes."""
    match = REDIS_SIZE.match(str(value).strip()) if isinstance(value, str | int) else None
    if not match or isinstance(value, bool):
        raise InputError(
            "is not a Redis memory size (a number with an optional unit b, k, kb, m, mb, g or gb)"
        )
    return int(match.group(1)) * REDIS_UNITS[(match.group(2) or "").lower()]


def check_secret(value: Any) -> str:
    """A non-empty string. Its value is never shown in a message."""
    if not isinstance(value, str) or value == "":
        raise InputError("must not be empty")
    return value


def check_pattern(value: Any, regex: str, what: str, reserved: Sequence[str] = ()) -> str:
    """A string matching ``regex`` (``what`` says in words what it must be),
    other than the ``reserved`` ones."""
    if not isinstance(value, str) or not re.search(regex, value):
        raise InputError(f"is not {what}")
    if value in reserved:
        raise InputError(f"is reserved: must not be {' or '.join(map(repr, reserved))}")
    return value


def check_url(value: Any, schemes: Sequence[str] = ("http", "https")) -> str:
    """A URL with one of ``schemes`` and a host part (the rest is left to
    whatever reads it)."""
    text = _text(value, "a URL")
    parts = urlsplit(text)
    if parts.scheme not in schemes or not parts.netloc or any(c.isspace() for c in text):
        raise InputError(f"is not a {' or '.join(f'{s}://' for s in schemes)} URL")
    return text


def check_abs_path(value: Any) -> str:
    """An absolute path."""
    text = _text(value, "an absolute path")
    if not text.startswith("/") or text != value or "\n" in text:
        raise InputError("is not an absolute path")
    return text


def check_file(value: Any) -> str:
    """A readable file on the controller."""
    text = _text(value, "a file name")
    if not os.path.isfile(text) or not os.access(text, os.R_OK):
        raise InputError("is not a readable file on the controller")
    return text


def check_certificate(value: Any) -> str:
    """A PEM file on the controller holding at least one X.509 certificate."""
    path = check_file(value)
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        with warnings.catch_warnings():  # e.g. old CAs' non-positive serial numbers
            warnings.simplefilter("ignore")
            x509.load_pem_x509_certificates(data)
    except ValueError:
        raise InputError("holds no PEM certificate") from None
    return path


def check_pem_certificate(value: Any) -> str:
    """PEM text (not a path) holding at least one X.509 certificate."""
    if not isinstance(value, str) or "-----BEGIN CERTIFICATE-----" not in value:
        raise InputError("is not PEM certificate text (-----BEGIN CERTIFICATE-----)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x509.load_pem_x509_certificates(value.encode())
    except ValueError:
        raise InputError("holds no readable PEM certificate") from None
    return value


def check_pem_private_key(value: Any, certificate: str = "") -> str:
    """PEM text of an unencrypted private key; with ``certificate`` (PEM text),
    the key must be the one that certificate was issued for. Like a secret,
    its value is never shown."""
    if not isinstance(value, str) or "PRIVATE KEY-----" not in value:
        raise InputError("is not PEM private key text")
    try:
        key = serialization.load_pem_private_key(value.encode(), password=None)
    except (ValueError, TypeError):
        raise InputError("holds no readable unencrypted private key") from None
    if certificate:
        try:
            cert = x509.load_pem_x509_certificates(certificate.encode())[0]
        except ValueError:
            return value  # the certificate's own check reports it
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        encoding = serialization.Encoding.DER
        if key.public_key().public_bytes(encoding, public) != cert.public_key().public_bytes(
            encoding, public
        ):
            raise InputError("does not match the certificate")
    return value


# --- the checker ----------------------------------------------------------------

Parser = Callable[..., Any]
TYPES: dict[str, Parser] = {
    "int": check_int,
    "number": check_number,
    "port": check_port,
    "ip": check_ip,
    "cidr": check_cidr,
    "client": check_client,
    "host": check_host,
    "hostname": check_hostname,
    "bind": check_bind,
    "listen": check_listen,
    "host_port": check_host_port,
    "upstream": check_upstream,
    "nginx_size": nginx_bytes,
    "redis_size": redis_bytes,
    "pattern": check_pattern,
    "url": check_url,
    "secret": check_secret,
    "abs_path": check_abs_path,
    "file": check_file,
    "certificate": check_certificate,
    "pem_certificate": check_pem_certificate,
    "pem_private_key": check_pem_private_key,
}
# URL credentials (scheme://user:password@host) are masked in messages.
URL_CREDENTIALS = re.compile(r"//[^@/\s]*@")


def _shown(value: Any) -> str:
    text = URL_CREDENTIALS.sub("//***@", repr(value))
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def _spec(spec: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(spec, str):
        return spec, {}
    options = dict(spec)
    return options.pop("type"), options


def value_errors(name: str, value: Any, spec: str | Mapping[str, Any]) -> list[str]:
    """Messages for ``value`` of variable ``name`` against ``spec`` ([] when fine).

    Options for every type: ``hint`` (why the rule exists, added to a message),
    ``allow_empty`` ('' is fine); for a list type ``name[]``: ``min_items``.
    The other options go to the type's parser.
    """
    type_name, options = _spec(spec)
    is_list = type_name.endswith("[]")
    parser = TYPES.get(type_name.removesuffix("[]"))
    if parser is None:
        raise ValueError(f"{name}: unknown input type {type_name!r} (known: {sorted(TYPES)})")
    hint = f" ({options.pop('hint')})" if options.get("hint") else ""
    allow_empty = bool(options.pop("allow_empty", False))
    min_items = int(options.pop("min_items", 0))
    secret = parser in (check_secret, check_pem_private_key)

    def problem(label: str, item: Any) -> str | None:
        if allow_empty and item == "":
            return None
        try:
            parser(item, **options)
        except InputError as error:
            shown = "" if secret else f" {_shown(item)}"
            return f"{label}:{shown} {error}{hint}"
        return None

    if value is None:
        return [f"{name}: must be set"]
    if not is_list:
        return [m for m in [problem(name, value)] if m]
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        return [f"{name}: must be a list (got {_shown(value)})"]
    errors = []
    if len(value) < min_items:
        errors.append(f"{name}: needs at least {min_items} entr{'y' if min_items == 1 else 'ies'}")
    for index, item in enumerate(value):
        message = problem(f"{name}[{index}]", item)
        if message:
            errors.append(message)
    return errors


def input_errors(
    specs: Mapping[str, str | Mapping[str, Any]], values: Sequence[Any] | Mapping[str, Any]
) -> list[str]:
    """Every message for the inputs in ``specs`` (name -> type), whose values
    are ``values``: a mapping by name, or a list in the order of ``specs``
    (what ``query('ansible.builtin.vars', *specs)`` returns)."""
    if not isinstance(values, Mapping):
        if len(values) != len(specs):
            raise ValueError(f"input_errors: {len(specs)} inputs but {len(values)} values")
        values = dict(zip(specs, values, strict=True))
    errors: list[str] = []
    for name, spec in specs.items():
        errors.extend(value_errors(name, values.get(name), spec))
    return errors


# --- conversions for templates and runtime checks ---------------------------------


def ip_networks(values: Sequence[str], version: int | None = None) -> list[str]:
    """Client addresses or networks as CIDR networks (a lone address becomes
    its /32 or /128), only those of IP ``version`` when given."""
    networks = [check_client(value) for value in values]
    return [str(n) for n in networks if version is None or n.version == int(version)]


def _firewalld_tail(port: Any) -> str:
    return f' port port="{check_port(port)}" protocol="tcp" accept'


def firewalld_rich_rules(clients: Sequence[str], port: Any) -> list[str]:
    """One firewalld rule accepting each client network on TCP ``port``, IPv4 ones
    first, each network once, written as ``firewall-cmd --list-rich-rules`` prints
    it (listed rules then compare as strings)."""
    networks = ip_networks(clients, 4) + ip_networks(clients, 6)
    rules = [f'rule family="ipv{6 if ":" in n else 4}" source address="{n}"' for n in networks]
    return list(dict.fromkeys(rule + _firewalld_tail(port) for rule in rules))


def firewalld_stale_rules(
    listed: Mapping[str, Any], clients: Sequence[str], port: Any
) -> list[str]:
    """The rules of firewalld_rich_rules' form for ``port`` whose source is no longer
    a client, each once, from the registered loop over ``firewall-cmd [--permanent]
    --list-rich-rules`` (``results`` of ``stdout_lines``)."""
    tail = re.escape(_firewalld_tail(port))
    own = re.compile(f'rule family="ipv[46]" source address="[^"]+"{tail}')
    wanted = firewalld_rich_rules(clients, port)
    lines = [line for r in listed.get("results", []) for line in r.get("stdout_lines", [])]
    return [line for line in dict.fromkeys(lines) if own.fullmatch(line) and line not in wanted]


def _converter(parser: Parser) -> Parser:
    """A parser as a filter: a bad value fails the task with the reason."""

    def convert(value: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return parser(value, *args, **kwargs)
        except InputError as error:
            raise AnsibleFilterError(f"{_shown(value)} {error}") from None

    convert.__doc__ = parser.__doc__
    return convert


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Parser]:
        return {
            "firewalld_rich_rules": _converter(firewalld_rich_rules),
            "firewalld_stale_rules": _converter(firewalld_stale_rules),
            "input_errors": input_errors,
            "ip_networks": _converter(ip_networks),
            "nginx_bytes": _converter(nginx_bytes),
            "redis_bytes": _converter(redis_bytes),
        }
