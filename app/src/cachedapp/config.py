"""Settings: one TOML file, overridable by ``CACHEDAPP_<SECTION>_<KEY>`` env vars.

Every key is declared once, as a field of its section's dataclass (type, default,
check); ``SCHEMA`` is read off them. A bad, missing or unknown setting raises
:class:`ConfigError`, whose message names the setting (every bad value at once) and
never contains a secret's value.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

DEFAULT_CONFIG_PATH = "/etc/cachedapp/config.toml"
CONFIG_ENV = "CACHEDAPP_CONFIG"
ENV_PREFIX = "CACHEDAPP_"
REQUIRED = object()


class ConfigError(ValueError):
    """A setting is bad or missing. ``str()`` is one line naming the setting, then
    those in ``also`` (more bad settings found in the same pass), joined by "; "."""

    def __init__(
        self, setting: str, problem: str, source: str = "", also: Sequence[ConfigError] = ()
    ) -> None:
        self.setting = setting
        self.problem = problem
        self.source = source
        where = f" ({source})" if source else ""
        super().__init__("; ".join([f"{setting}: {problem}{where}", *map(str, also)]))


class Secret:
    """A string that never shows itself in repr(), str() or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str = "") -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


# --- value checks ---------------------------------------------------------------------


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be > 0"


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else "must be >= 0"


def _between(low: float, high: float) -> Callable[[float], str | None]:
    def check(value: float) -> str | None:
        return None if low <= value <= high else f"must be between {low} and {high}"

    return check


def _one_of(*choices: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def _non_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


_HOST_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _host(value: str) -> str | None:
    """An IP address, a DNS name (RFC 1123; all digits last is a mistyped address) or
    libpq's unix-socket directory."""
    if value.startswith("/"):
        return None
    try:
        ipaddress.ip_address(value)
    except ValueError:
        labels = value.removesuffix(".").split(".")
        if len(value) > 253 or not all(map(_HOST_LABEL_RE.match, labels)) or labels[-1].isdigit():
            return "must be a host name, an IP address or a socket directory"
    return None


_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")


def _namespace(value: str) -> str | None:
    if not _NAMESPACE_RE.match(value):
        return "must be non-empty letters, digits, '_', '.', ':' or '-' (no braces)"
    return None


def _setting(default: Any = REQUIRED, check: Callable[[Any], str | None] | None = None) -> Any:
    """A declared setting: its default (or REQUIRED) and its value check.

    The dataclass field's type is the setting's type (str, int, float or Secret).
    """
    return field(metadata={"default": default, "check": check})


# --- typed settings: every key declared once, with its type, default and check ---------

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True)
class DatabaseSettings:
    host: str = _setting(check=_host)
    port: int = _setting(5432, _between(1, 65535))
    dbname: str = _setting(check=_non_empty)
    user: str = _setting(check=_non_empty)
    password: Secret = _setting()
    sslmode: str = _setting("prefer", _one_of(*_SSLMODES))
    # CA bundle file for the server's certificate ("" = libpq's default)
    sslrootcert: str = _setting("")
    connect_timeout: int = _setting(3, _between(1, 60))
    pool_size: int = _setting(4, _between(1, 100))
    query_timeout: float = _setting(15.0, _positive)
    application_name: str = _setting("cachedapp", _non_empty)


@dataclass(frozen=True)
class RedisSettings:
    mode: str = _setting("standalone", _one_of("standalone", "cluster"))
    # never holds credentials: they are moved to username/password on load
    url: str = _setting("redis://127.0.0.1:6379/0", _non_empty)
    username: str = _setting("")
    password: Secret = _setting("")
    ca_file: str = _setting("")
    connect_timeout: float = _setting(0.2, _between(0.001, 30))
    socket_timeout: float = _setting(0.2, _between(0.001, 30))
    max_connections: int = _setting(64, _between(1, 10000))
    breaker_failures: int = _setting(3, _between(1, 1000))
    breaker_cooldown: float = _setting(2.0, _between(0.01, 3600))

    @property
    def tls(self) -> bool:
        return self.url.startswith("rediss://")


@dataclass(frozen=True)
class CacheSettings:
    namespace: str = _setting("cachedapp", _namespace)
    key_version: int = _setting(1, _non_negative)
    ttl: float = _setting(60.0, _positive)
    stale_while_revalidate: float = _setting(30.0, _non_negative)
    stale_if_error: float = _setting(600.0, _non_negative)
    lock_timeout: float = _setting(15.0, _positive)
    wait_timeout: float = _setting(6.0, _non_negative)
    error_backoff: float = _setting(2.0, _non_negative)
    # seconds a worker keeps a fresh value in process (0: off)
    local_ttl: float = _setting(1.0, _between(0, 60))
    local_max_items: int = _setting(64, _between(1, 100000))


@dataclass(frozen=True)
class AppSettings:
    log_level: str = _setting("INFO", _one_of(*_LOG_LEVELS))


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings
    redis: RedisSettings
    cache: CacheSettings
    app: AppSettings
    source: str = ""


SECTIONS = {
    "database": DatabaseSettings,
    "redis": RedisSettings,
    "cache": CacheSettings,
    "app": AppSettings,
}

_TYPES = {"str": str, "int": int, "float": float, "Secret": Secret}

# (section, key) -> (type, default, check), read off the dataclasses above.
SCHEMA: dict[tuple[str, str], tuple[type, Any, Callable[[Any], str | None] | None]] = {
    (section, f.name): (_TYPES[str(f.type)], f.metadata["default"], f.metadata["check"])
    for section, cls in SECTIONS.items()
    for f in fields(cls)
}


# --- loading ------------------------------------------------------------------------


def _env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


def _coerce(setting: str, kind: type, raw: Any, source: str) -> Any:
    secret = kind is Secret
    try:
        if kind is Secret or kind is str:
            if not isinstance(raw, str):
                raise TypeError
            return Secret(raw) if secret else raw
        if isinstance(raw, bool):
            raise TypeError
        if kind is int:
            if isinstance(raw, str):
                return int(raw.strip())
            if isinstance(raw, float) and raw.is_integer():
                return int(raw)
            if not isinstance(raw, int):
                raise TypeError
            return raw
        if kind is float:
            value = float(raw.strip()) if isinstance(raw, str) else raw
            if not isinstance(value, int | float) or value != value:  # noqa: PLR0124 (NaN)
                raise TypeError
            return float(value)
    except (TypeError, ValueError):
        shown = "" if secret else f", got {raw!r}"
        raise ConfigError(setting, f"must be {kind.__name__}{shown}", source) from None
    raise AssertionError(kind)  # pragma: no cover


def _split_redis_url(values: dict[tuple[str, str], Any], sources: dict[str, str]) -> None:
    """Validate redis.url and move any credentials in it to redis.username/password."""
    setting = "redis.url"
    src = sources.get(setting, "")
    url = values[("redis", "url")]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(setting, "is not a valid URL", src) from None
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError(setting, "scheme must be redis:// or rediss:// (TLS)", src)
    if not parts.hostname:
        raise ConfigError(setting, "has no host", src)
    path = parts.path.lstrip("/")
    if path and not path.isdigit():
        raise ConfigError(setting, "database number after the host must be an integer", src)
    if values[("redis", "mode")] == "cluster" and path not in ("", "0"):
        raise ConfigError(setting, "cluster mode supports database 0 only", src)
    if parts.username or parts.password:
        if parts.password and values[("redis", "password")]:
            raise ConfigError("redis.password", "is set both in redis.url and redis.password", src)
        if parts.username and values[("redis", "username")]:
            raise ConfigError("redis.username", "is set both in redis.url and redis.username", src)
        if parts.username:
            values[("redis", "username")] = unquote(parts.username)
        if parts.password:
            values[("redis", "password")] = Secret(unquote(parts.password))
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        netloc = f"{host}:{port}" if port else host
        values[("redis", "url")] = urlunsplit(
            (parts.scheme, netloc, parts.path, parts.query, parts.fragment)
        )


def _readable_file(setting: str, path: str, src: str) -> None:
    if not os.access(path, os.R_OK) or not Path(path).is_file():
        raise ConfigError(setting, f"cannot read file {path}", src)


def _cross_checks(
    values: dict[tuple[str, str], Any], sources: dict[str, str], host_files: bool
) -> None:
    ca_file = values[("redis", "ca_file")]
    if ca_file:
        src = sources.get("redis.ca_file", "")
        if not values[("redis", "url")].startswith("rediss://"):
            raise ConfigError("redis.ca_file", "is set but redis.url is not rediss://", src)
        if host_files:
            _readable_file("redis.ca_file", ca_file, src)
    sslrootcert = values[("database", "sslrootcert")]
    if sslrootcert:
        src = sources.get("database.sslrootcert", "")
        if values[("database", "sslmode")] == "disable":
            raise ConfigError("database.sslrootcert", "is set but database.sslmode is disable", src)
        if host_files:
            _readable_file("database.sslrootcert", sslrootcert, src)
    # A password alone is plain AUTH (ElastiCache AUTH token); a user needs one too.
    if values[("redis", "username")] and not values[("redis", "password")]:
        raise ConfigError("redis.password", "is required when redis.username is set")
    if values[("cache", "lock_timeout")] < values[("database", "query_timeout")]:
        raise ConfigError(
            "cache.lock_timeout",
            "must be >= database.query_timeout (a refresh must not outlive its lock)",
            sources.get("cache.lock_timeout", ""),
        )


def _read_file(config_path: Path) -> dict[str, Any]:
    try:
        return _parse(config_path.read_bytes().decode(), f"file {config_path}")
    except FileNotFoundError:
        raise ConfigError("config", f"file {config_path} not found", CONFIG_ENV) from None
    except PermissionError:
        raise ConfigError("config", f"file {config_path} not readable", CONFIG_ENV) from None
    except UnicodeDecodeError as exc:
        raise ConfigError("config", f"file {config_path} is not valid TOML: {exc}") from None


def _parse(text: str, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{what} is not valid TOML: {exc}") from None


def _gather(
    data: dict[str, Any], env: Mapping[str, str], file_src: str
) -> tuple[dict[tuple[str, str], Any], dict[str, str]]:
    """Raw values from the file, then env overrides; where each came from."""
    raw: dict[tuple[str, str], Any] = {}
    sources: dict[str, str] = {}
    for section, table in data.items():
        if section not in SECTIONS:
            raise ConfigError(section, "unknown section", file_src)
        if not isinstance(table, dict):
            raise ConfigError(section, "must be a table ([section])", file_src)
        for key, value in table.items():
            if (section, key) not in SCHEMA:
                raise ConfigError(f"{section}.{key}", "unknown setting", file_src)
            raw[(section, key)] = value
            sources[f"{section}.{key}"] = file_src
    by_env = {_env_name(s, k): (s, k) for (s, k) in SCHEMA}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        if name not in by_env:
            raise ConfigError(name, "unknown setting (env var)", "environment")
        raw[by_env[name]] = value
        sources[".".join(by_env[name])] = f"from {name}"
    return raw, sources


def _typed(
    raw: dict[tuple[str, str], Any], sources: dict[str, str], file_src: str
) -> dict[tuple[str, str], Any]:
    """Coerce, default and check every declared setting; one error names every bad one."""
    values: dict[tuple[str, str], Any] = {}
    errors: list[ConfigError] = []
    for (section, key), (kind, default, check) in SCHEMA.items():
        setting = f"{section}.{key}"
        src = sources.get(setting, file_src)
        try:
            if (section, key) in raw:
                value = _coerce(setting, kind, raw[(section, key)], src)
            elif default is REQUIRED:
                raise ConfigError(setting, "is required", file_src)
            else:
                value = Secret(default) if kind is Secret else default
            if setting == "app.log_level":
                value = value.upper()
            if kind is Secret and default is REQUIRED and not value:
                raise ConfigError(setting, "is required", src)
            if check is not None and (problem := check(value)) is not None:
                shown = "" if kind is Secret else f", got {value!r}"
                raise ConfigError(setting, f"{problem}{shown}", src)
        except ConfigError as exc:
            errors.append(exc)
            continue
        values[(section, key)] = value
    if errors:
        first, *also = errors
        raise ConfigError(first.setting, first.problem, first.source, also)
    return values


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    text: str | None = None,
    host_files: bool = True,
) -> Settings:
    """Read the TOML file (or ``text``), apply env overrides, validate. Raises ConfigError.

    ``host_files=False`` skips reading the files the config names (CA bundles), for a
    config checked away from its host (the app role's check on the controller).
    """
    env = os.environ if environ is None else environ
    if text is None:
        config_path = Path(path or env.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)
        source, file_src, data = str(config_path), f"in {config_path}", _read_file(config_path)
    else:
        source, file_src, data = "<text>", "", _parse(text, "the config")
    raw, sources = _gather(data, env, file_src)
    values = _typed(raw, sources, file_src)
    _split_redis_url(values, sources)
    _cross_checks(values, sources, host_files)
    sections = {
        name: cls(**{k: v for (s, k), v in values.items() if s == name})
        for name, cls in SECTIONS.items()
    }
    return Settings(**sections, source=source)
