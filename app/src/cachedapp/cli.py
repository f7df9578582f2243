"""Console scripts: ``cachedapp-check-config`` and ``cachedapp-db``."""

from __future__ import annotations

import argparse
import json
import sys

from cachedapp import schema
from cachedapp.config import CONFIG_ENV, DEFAULT_CONFIG_PATH, ConfigError, load_settings
from cachedapp.db import DatabaseError, connect


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
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"cachedapp-check-config: {exc}", file=sys.stderr)
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
