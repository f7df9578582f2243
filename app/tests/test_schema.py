"""cachedapp-db: schema-status / install-schema against the real database."""

from __future__ import annotations

import contextlib
import json

from support import DB_SLEEP, install_schema, run_cli, write_config


def _status(config, sleep=DB_SLEEP):
    out = run_cli("cachedapp-db", "schema-status", "--sleep", str(sleep), config=config)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _install(config, sleep=DB_SLEEP):
    out = run_cli("cachedapp-db", "install-schema", "--sleep", str(sleep), "--config", str(config))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_install_is_idempotent_and_status_detects_drift(servers, schema, tmp_path):
    config = write_config(tmp_path / "config.toml", servers)
    try:
        assert _status(config) == {"installed": True, "current": True}
        assert _install(config) == {"changed": False}
        # Another sleep is another function body: not current, and install changes it.
        assert _status(config, sleep=2.5) == {"installed": True, "current": False}
        assert _install(config, sleep=2.5) == {"changed": True}
        assert _status(config, sleep=2.5) == {"installed": True, "current": True}
        # A dropped function is seen (Ansible check mode relies on this).
        with contextlib.closing(servers.admin_db()) as conn, conn.cursor() as cur:
            cur.execute("DROP FUNCTION public.slow_version()")
        assert _status(config) == {"installed": False, "current": False}
        assert _install(config) == {"changed": True}
        assert _status(config) == {"installed": True, "current": True}
    finally:
        install_schema(config, DB_SLEEP)


def test_function_sleeps_and_returns_version(servers, schema):
    with contextlib.closing(servers.admin_db()) as conn, conn.cursor() as cur:
        cur.execute("SELECT clock_timestamp()")
        (start,) = cur.fetchone()
        cur.execute("SELECT slow_version(), clock_timestamp()")
        version, end = cur.fetchone()
    assert version.startswith("PostgreSQL")
    assert (end - start).total_seconds() >= DB_SLEEP


def test_db_cli_errors_are_one_clear_line(servers, tmp_path):
    config = write_config(
        tmp_path / "config.toml", servers, {"database": {"password": "not-the-password"}}
    )
    out = run_cli("cachedapp-db", "schema-status", config=config)
    assert out.returncode == 1
    assert out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1
    assert "password authentication failed" in out.stderr
    assert "not-the-password" not in out.stderr
    bad_sleep = run_cli("cachedapp-db", "install-schema", "--sleep", "-1", config=config)
    assert bad_sleep.returncode == 1
    assert "--sleep" in bad_sleep.stderr
