"""Console scripts: ``cachedapp-check-config`` and ``cachedapp-db``.

``python -m cachedapp.cli`` is the checker too, from a source tree (PYTHONPATH=src):
the app role runs it on the controller, which needs no psycopg2 for it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from cachedapp import schema
from cachedapp.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    SCHEMA,
    SECTIONS,
    ConfigError,
    load_settings,
)

# The app role's variable for each setting (--role-names): app_<section>_<key>, with
# these section prefixes and exceptions (None: the role leaves the app's default).
ROLE_PREFIXES = {"database": "app_db_", "app": "app_"}
ROLE_EXCEPTIONS: dict[str, str | None] = {
    "database.dbname": "app_db_name",
    "database.sslrootcert": "app_db_ca_bundle",
    "database.application_name": None,
    "redis.max_connections": None,
    "redis.breaker_failures": None,
    "redis.breaker_cooldown": None,
    "cache.error_backoff": None,
    "cache.local_ttl": None,
    "cache.local_max_items": None,
}
_DERIVED = {f"{s}.{k}": ROLE_PREFIXES.get(s, f"app_{s}_") + k for s, k in SCHEMA}
ROLE_VARIABLES = {setting: name for setting, name in (_DERIVED | ROLE_EXCEPTIONS).items() if name}
_SETTING_RE = re.compile(rf"\b(?:{'|'.join(SECTIONS)})\.\w+")


def role_names(message: str) -> str:
    """``message`` with every setting the role sets named by its variable."""
    return _SETTING_RE.sub(lambda m: ROLE_VARIABLES.get(m.group(0), m.group(0)), message)


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        help=f"TOML config file (default: ${CONFIG_ENV} or {DEFAULT_CONFIG_PATH})",
    )


def check_config_main(argv: list[str] | None = None) -> int:
    """Exit 0 when the config (file + env overrides) is valid, else 1 with one line."""
    parser = argparse.ArgumentParser(
        prog="cachedapp-check-config", description="Validate the cachedapp configuration."
    )
    _config_arg(parser)
    parser.add_argument(
        "--controller",
        action="store_true",
        help="check a config rendered away from its host, read from stdin: CACHEDAPP_* "
        "variables are not read, and the files it names (database.sslrootcert, "
        "redis.ca_file) are not checked - only the host has them",
    )
    parser.add_argument(
        "--role-names",
        action="store_true",
        help="name settings by the app role's variables (app_cache_ttl, not cache.ttl)",
    )
    args = parser.parse_args(argv)
    if args.controller and args.config:
        parser.error("--controller reads the config from stdin, not --config")
    try:
        if args.controller:
            settings = load_settings(environ={}, text=sys.stdin.read(), host_files=False)
        else:
            settings = load_settings(args.config)
    except ConfigError as exc:
        message = role_names(str(exc)) if args.role_names else str(exc)
        print(f"cachedapp-check-config: {message}", file=sys.stderr)
        return 1
    print(f"ok: {settings.source}")
    return 0


def db_main(argv: list[str] | None = None) -> int:
    """schema-status / install-schema; JSON on stdout, one error line on stderr."""
    parser = argparse.ArgumentParser(
        prog="cachedapp-db", description="Inspect or install the slow_version() function."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("schema-status", 'print {"installed": bool, "current": bool} (read-only)'),
        ("install-schema", 'install slow_version() idempotently, print {"changed": bool}'),
    ):
        cmd = sub.add_parser(name, help=text, description=text)
        _config_arg(cmd)
        cmd.add_argument(
            "--sleep",
            type=float,
            default=schema.DEFAULT_SLEEP,
            metavar="S",
            help=f"seconds slow_version() sleeps (default {schema.DEFAULT_SLEEP:g})",
        )
    args = parser.parse_args(argv)
    from cachedapp.db import DatabaseError, connect  # noqa: PLC0415 (psycopg2: not for the checker)

    try:
        sleep = schema.check_sleep(args.sleep)
        settings = load_settings(args.config)
        conn = connect(settings.database)
        try:
            if args.command == "schema-status":
                conn.set_session(readonly=True, autocommit=True)
                result = schema.status(conn, sleep)
            else:
                result = schema.install(conn, sleep)
        finally:
            conn.close()
    except (ConfigError, DatabaseError, ValueError) as exc:
        print(f"cachedapp-db: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # psycopg2 errors raised while querying
        print(f"cachedapp-db: {type(exc).__name__}: {str(exc).strip()}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(check_config_main())
