"""Configuration: file + env overrides, clear errors naming the setting, no secrets shown."""

from __future__ import annotations

import subprocess

import pytest
from cachedapp.config import REQUIRED, SCHEMA, ConfigError, Secret, load_settings
from support import BIN, run_cli, write_config

SECRET = "S3cret-db-pa55word"


@pytest.fixture
def config(servers, tmp_path):
    return write_config(tmp_path / "config.toml", servers, {"database": {"password": SECRET}})


def _error(path, env=None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ=env or {})
    return info.value


def test_file_values_defaults_and_types(config):
    """The suite's file (support.write_config) as loaded: its values, a few defaults."""
    s = load_settings(config, environ={})
    assert s.database.port > 0
    assert s.database.sslmode == "verify-full"
    assert s.database.sslrootcert.endswith("ca.crt")
    assert s.redis.mode == "standalone"
    assert s.redis.connect_timeout == 0.2
    assert s.cache.stale_while_revalidate == 30.0
    assert s.cache.namespace == "cachedapp"
    assert s.database.password.reveal() == SECRET
    assert SECRET not in repr(s)
    assert SECRET not in str(s.database)


def test_schema_defaults_apply(tmp_path):
    """A file with the required settings only: every other setting is SCHEMA's default,
    of its declared type."""
    path = tmp_path / "minimal.toml"
    path.write_text('[database]\nhost = "db"\ndbname = "app"\nuser = "app"\npassword = "x"\n')
    path.chmod(0o600)
    s = load_settings(path, environ={})
    checked = 0
    for (section, key), (kind, default, _check) in SCHEMA.items():
        if default is REQUIRED:
            continue
        value = getattr(getattr(s, section), key)
        assert type(value) is kind, f"{section}.{key}"
        assert value == (Secret(default) if kind is Secret else default), f"{section}.{key}"
        checked += 1
    assert checked == len(SCHEMA) - 4  # all but database host, dbname, user, password


def test_env_overrides_file(config):
    s = load_settings(
        config, environ={"CACHEDAPP_CACHE_TTL": "7.5", "CACHEDAPP_REDIS_MODE": "cluster"}
    )
    assert s.cache.ttl == 7.5
    assert s.redis.mode == "cluster"


def test_config_path_from_env(config):
    s = load_settings(environ={"CACHEDAPP_CONFIG": str(config)})
    assert s.source == str(config)


@pytest.mark.parametrize(
    ("sections", "env", "setting"),
    [
        ({"cache": {"ttl": "soon"}}, {}, "cache.ttl"),
        ({"cache": {"ttl": 0}}, {}, "cache.ttl"),
        ({"redis": {"mode": "sentinel"}}, {}, "redis.mode"),
        ({"redis": {"url": "http://cache:6379"}}, {}, "redis.url"),
        ({"database": {"port": 70000}}, {}, "database.port"),
        ({"database": {"sslmode": "sometimes"}}, {}, "database.sslmode"),
        ({"cache": {"tll": 5}}, {}, "cache.tll"),
        ({"cache": {"namespace": "a{b}"}}, {}, "cache.namespace"),
        ({"redis": {"ca_file": "/etc/hostname"}}, {}, "redis.ca_file"),
        ({"database": {"sslrootcert": "/nonexistent/ca.crt"}}, {}, "database.sslrootcert"),
        ({"database": {"sslmode": "disable"}}, {}, "database.sslrootcert"),
        ({"cache": {"lock_timeout": 1}}, {}, "cache.lock_timeout"),
        ({}, {"CACHEDAPP_REDIS_SOCKET_TIMEOUT": "fast"}, "redis.socket_timeout"),
        ({}, {"CACHEDAPP_CACHE_TLL": "5"}, "CACHEDAPP_CACHE_TLL"),
        ({}, {"CACHEDAPP_DATABASE_PASSWORD": ""}, "database.password"),
    ],
)
def test_bad_settings_are_named(servers, tmp_path, sections, env, setting):
    path = write_config(
        tmp_path / "c.toml", servers, {"database": {"password": SECRET}, **sections}
    )
    err = _error(path, env)
    assert str(err).startswith(f"{setting}:")
    assert SECRET not in str(err)


def test_missing_required_setting(servers, tmp_path):
    path = write_config(tmp_path / "c.toml", servers, {"database": {"host": None}})
    assert str(_error(path)).startswith("database.host: is required")


def test_missing_or_broken_file(tmp_path):
    assert "not found" in str(_error(tmp_path / "absent.toml"))
    broken = tmp_path / "broken.toml"
    broken.write_text("[database\n")
    assert "not valid TOML" in str(_error(broken))


def test_credentials_in_redis_url_are_moved_and_hidden(servers, tmp_path):
    path = write_config(
        tmp_path / "c.toml",
        servers,
        {"redis": {"url": "rediss://app:T0ken-in-url@cache.example:6380/0"}},
    )
    s = load_settings(path, environ={})
    assert s.redis.url == "rediss://cache.example:6380/0"
    assert s.redis.username == "app"
    assert s.redis.password.reveal() == "T0ken-in-url"
    assert "T0ken-in-url" not in repr(s)


def test_check_config_cli(config):
    ok = run_cli("cachedapp-check-config", "--config", str(config))
    assert ok.returncode == 0, ok.stderr
    bad = run_cli("cachedapp-check-config", config=config, env={"CACHEDAPP_CACHE_TTL": "-1"})
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "cache.ttl" in lines[0]
    assert "CACHEDAPP_CACHE_TTL" in lines[0]
    assert SECRET not in bad.stderr + bad.stdout


def test_gunicorn_refuses_to_start_on_bad_config(servers, tmp_path):
    path = write_config(
        tmp_path / "c.toml", servers, {"database": {"password": SECRET}, "redis": {"mode": "x"}}
    )
    out = subprocess.run(
        [str(BIN / "gunicorn"), "-c", "python:cachedapp.gunicorn_conf", "cachedapp.wsgi:app"],
        env={"CACHEDAPP_CONFIG": str(path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode != 0
    assert "redis.mode" in out.stderr
    assert "Traceback" not in out.stderr
    assert SECRET not in out.stderr + out.stdout


def test_check_config_refuses_a_missing_sslrootcert(config, tmp_path):
    missing = tmp_path / "rds-ca.pem"
    out = run_cli(
        "cachedapp-check-config",
        config=config,
        env={"CACHEDAPP_DATABASE_SSLROOTCERT": str(missing)},
    )
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"cachedapp-check-config: database.sslrootcert: cannot read file {missing} "
        "(from CACHEDAPP_DATABASE_SSLROOTCERT)"
    )
    defaults = load_settings(config, environ={"CACHEDAPP_DATABASE_SSLROOTCERT": ""})
    assert defaults.database.sslrootcert == ""  # empty: libpq's default (~/.postgresql)


# The app role's check on the controller: the rendered config on stdin, no host files.
CONTROLLER_CONFIG = f"""
[database]
host = "db.internal"
dbname = "app"
user = "app"
password = "{SECRET}"
sslmode = "verify-full"
sslrootcert = "/nonexistent/db-ca.pem"
[redis]
url = "rediss://cache.internal:6379/0"
ca_file = "/nonexistent/redis-ca.pem"
"""


def test_check_config_on_the_controller_reads_stdin_and_skips_host_files():
    """CA files named in the config exist only on the host; CACHEDAPP_* variables of the
    controller's shell are not the host's."""
    ok = run_cli(
        "cachedapp-check-config",
        "--controller",
        stdin=CONTROLLER_CONFIG,
        env={"CACHEDAPP_CACHE_TTL": "-1", "CACHEDAPP_CONFIG": "/nonexistent.toml"},
    )
    assert ok.returncode == 0, ok.stderr
    assert "--controller" in run_cli("cachedapp-check-config", "--help").stdout
    both = run_cli("cachedapp-check-config", "--controller", "--config", "/x.toml", stdin="")
    assert both.returncode == 2
    with pytest.raises(ConfigError, match=r"^redis\.ca_file: cannot read file"):
        load_settings(environ={}, text=CONTROLLER_CONFIG)


def test_check_config_names_the_role_variables():
    """--role-names: every bad setting at once, each named as the app role calls it,
    also inside a message; no secret shown."""
    bad = run_cli(
        "cachedapp-check-config",
        "--controller",
        "--role-names",
        stdin=CONTROLLER_CONFIG.replace('host = "db.internal"', 'host = "10.0.0.300"\nport = 0')
        + "[cache]\nttl = 0\n[app]\nlog_level = 'LOUD'\n",
    )
    assert bad.returncode == 1
    assert bad.stderr == (
        "cachedapp-check-config: app_db_host: must be a host name, an IP address or a socket"
        " directory, got '10.0.0.300'; app_db_port: must be between 1 and 65535, got 0;"
        " app_cache_ttl: must be > 0, got 0.0; app_log_level: must be one of DEBUG, INFO,"
        " WARNING, ERROR, CRITICAL, got 'LOUD'\n"
    )
    cross = run_cli(
        "cachedapp-check-config",
        "--controller",
        "--role-names",
        stdin=CONTROLLER_CONFIG + "[cache]\nlock_timeout = 1\n",
    )
    assert cross.stderr.strip() == (
        "cachedapp-check-config: app_cache_lock_timeout: must be >= app_db_query_timeout"
        " (a refresh must not outlive its lock)"
    )
    assert SECRET not in bad.stdout + bad.stderr + cross.stdout + cross.stderr


@pytest.mark.parametrize("host", ["db.internal", "10.0.0.5", "::1", "/run/postgresql"])
def test_database_host_forms(host):
    text = CONTROLLER_CONFIG.replace('"db.internal"', f'"{host}"')
    assert load_settings(environ={}, text=text, host_files=False).database.host == host
