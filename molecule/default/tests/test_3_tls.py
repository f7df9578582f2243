"""The stack we ship: TLS on every hop with verified names, public answers that
say little, sandboxed units, and secrets that never reach a log or a command line.

Runs after test_1/test_2 on the converged stack (molecule's idempotence step
has already asserted changed=0).
"""

from __future__ import annotations

import re
import socket
import ssl
from typing import Any

import pytest
from conftest import CONFIG, CURRENT, HTTPS_PORT, PROJECT, http_get, pki_dir, tls_context

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "frame-ancestors 'none'",
}


def exposure(host: Any, unit: str) -> float:
    out = host.check_output(f"systemd-analyze security --no-pager {unit}")
    return float(re.search(r"Overall exposure level for \S+: ([\d.]+)", out).group(1))


def test_pki_files_on_the_controller(inventory_vars: dict[str, Any]) -> None:
    pki = pki_dir()
    assert (pki / "ca.crt").stat().st_mode & 0o777 == 0o644
    keys = sorted(pki.glob("*.key"))
    assert pki / "ca.key" in keys
    for key in keys:
        assert key.stat().st_mode & 0o777 == 0o600, key
    for host, variables in inventory_vars.items():
        if host != "localhost" and "private_ip_address" in variables:
            assert (pki / f"{host}.crt").is_file(), host


def test_https_certificate_verified_by_the_local_ca() -> None:
    with (
        socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=10) as raw,
        tls_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in {"TLSv1.2", "TLSv1.3"}
        names = [value for _kind, value in tls.getpeercert()["subjectAltName"]]
    assert "127.0.0.1" in names
    assert "localhost" in names
    # An unrelated trust store (the system's) refuses it: the CA is ours.
    with (
        socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")


def test_http_redirects_permanently_to_https() -> None:
    reply = http_get("/app?x=1", scheme="http")
    assert reply.status == 301, reply
    assert reply.headers["Location"] == f"https://127.0.0.1:{HTTPS_PORT}/app?x=1"
    # Health checks inside the stack's network stay on HTTP.
    assert http_get("/healthz", scheme="http").status == 200


@pytest.mark.parametrize(
    ("path", "status"), [("/", 200), ("/no-such-page", 404), ("/metrics", 403)]
)
def test_security_headers_on_every_answer(path: str, status: int) -> None:
    reply = http_get(path)
    assert reply.status == status
    for name, value in SECURITY_HEADERS.items():
        assert reply.headers.get(name) == value, (path, name, reply.headers)
    assert reply.headers.get("Strict-Transport-Security", "").startswith("max-age=")
    # The plain-HTTP answer too: a redirect, or /metrics refused on port 80.
    plain = http_get(path, scheme="http")
    assert plain.status in {301, 403}, (path, plain.status)
    for name, value in SECURITY_HEADERS.items():
        assert plain.headers.get(name) == value, (path, name)


def test_readyz_says_little() -> None:
    reply = http_get("/readyz")
    assert reply.status == 200
    for leak in ("5432", "6379", "password", "cachedapp@", "Traceback"):
        assert leak not in reply.body


def test_redis_refuses_plaintext_from_a_web_host(
    web: Any, cache: Any, inventory_vars: dict[str, Any]
) -> None:
    address = inventory_vars[cache.backend.name]["private_ip_address"]
    probe = (
        "import socket\n"
        f"s = socket.create_connection(('{address}', 6379), timeout=5)\n"
        "s.sendall(b'PING\\r\\n')\n"
        "try:\n"
        "    print(repr(s.recv(64)))\n"
        "except OSError as e:\n"
        "    print(type(e).__name__)\n"
    )
    out = web.check_output(f"python3 -c {_quote(probe)}")
    print(f"\nplaintext PING to Redis from a web host: {out}")
    for answer in ("PONG", "NOAUTH", "-ERR"):
        assert answer not in out
    # The app's own client speaks TLS to the same port, and its URL says so.
    assert re.search(r'^url = "rediss://', web.check_output(f"grep '^url' {CONFIG}"), re.M)


def test_app_database_sessions_all_use_tls(db: Any, web: Any) -> None:
    web.check_output(f"{CURRENT}/venv/bin/cachedapp-db schema-status --config {CONFIG}")
    out = db.check_output(
        'runuser -u postgres -- psql -Atc "SELECT s.ssl, count(*) FROM pg_stat_ssl s '
        "JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'cachedapp' GROUP BY s.ssl\""
    )
    rows = dict(line.split("|") for line in out.splitlines())
    print(f"\npg_stat_ssl of the app's sessions: {rows}")
    assert rows.get("t", "0") != "0"
    assert "f" not in rows
    config = web.check_output(f"grep -E '^(sslmode|sslrootcert)' {CONFIG}")
    assert 'sslmode = "verify-full"' in config


def test_plaintext_login_as_the_app_role_is_refused(web: Any) -> None:
    # The app's own credentials, read from its config on the host (never on a
    # command line), without TLS: pg_hba.conf admits the app role over TLS only.
    script = (
        "import psycopg2, tomllib\n"
        f"c = tomllib.load(open('{CONFIG}', 'rb'))['database']\n"
        "try:\n"
        "    psycopg2.connect(host=c['host'], port=c['port'], dbname=c['dbname'], user=c['user'],"
        " password=c['password'], sslmode='disable', connect_timeout=5)\n"
        "    print('CONNECTED')\n"
        "except psycopg2.OperationalError as e:\n"
        "    print(str(e).strip())\n"
    )
    out = web.check_output(f"{CURRENT}/venv/bin/python -c {_quote(script)}")
    print(f"\nnon-TLS login as the app: {out}")
    assert "CONNECTED" not in out
    assert "no encryption" in out


@pytest.mark.parametrize(
    ("group", "unit", "limit"),
    [
        ("web", "nginx.service", 5.0),
        ("web", "cachedapp.service", 2.0),
        ("db", "postgresql@15-main.service", 5.0),
        ("cache", "redis-server.service", 2.0),
    ],
)
def test_unit_exposure(group: str, unit: str, limit: float, request: pytest.FixtureRequest) -> None:
    host = request.getfixturevalue(group)
    score = exposure(host, unit)
    print(f"\nsystemd-analyze security {unit}: {score}")
    assert score <= limit


def test_redis_validator_loads_the_certificates(cache: Any) -> None:
    """A redis.conf naming a certificate Redis cannot load never passes the
    validator the role's template task runs (validate:)."""
    assert cache.run("/usr/local/sbin/redis-validate-config /etc/redis/redis.conf").rc == 0
    bad = cache.run(
        "sed 's|^tls-cert-file .*|tls-cert-file /etc/redis/tls/missing.crt|' /etc/redis/redis.conf"
        " > /tmp/bad-redis.conf && /usr/local/sbin/redis-validate-config /tmp/bad-redis.conf"
    )
    assert bad.rc == 1, bad.stdout + bad.stderr
    assert "missing.crt" in bad.stderr


def test_sandboxed_postgresql_still_jit_compiles(db: Any) -> None:
    """The sandbox must not break JIT (MemoryDenyWriteExecute would: every query
    above jit_above_cost then fails with 'failed to look up symbol'). EXPLAIN shows
    the JIT summary only with costs on (COSTS OFF hides it)."""
    out = db.check_output(
        "runuser -u postgres -- psql -AtX -c 'SET jit_above_cost = 0' -c "
        "'EXPLAIN (ANALYZE) SELECT sum(i) FROM generate_series(1, 100000) i'"
    )
    assert "JIT:" in out, out
    assert int(re.search(r"Functions: (\d+)", out)[1]) > 0, out


def test_no_secret_in_verbose_check_output(
    playbook: Any, web: Any, db: Any, cache: Any, app_config: dict[str, Any]
) -> None:
    run = playbook(PROJECT / "site.yml", "--check", "--diff", "-vvv", timeout=900)
    assert run.rc == 0, run.output[-3000:]
    secrets = {
        "database password": app_config["database"]["password"],
        "redis password": app_config["redis"]["password"],
    }
    for path in (PROJECT / ".ansible" / "secrets").glob("*"):
        secrets[f"secret file {path.name}"] = path.read_text().strip()
    leaked = [name for name, value in secrets.items() if value and value in run.output]
    assert not leaked, f"secrets in the -vvv output: {leaked}"
    assert "PRIVATE KEY" not in run.output
    print(f"\n-vvv check run: {len(run.output)} characters, {len(secrets)} secrets, none shown")
    # The converged stack is in sync: the check would change nothing, on any
    # host nor on the controller (the CA and the certificates).
    for host in (web.backend.name, db.backend.name, cache.backend.name, "localhost"):
        assert run.recap(host)["changed"] == 0, (host, run.recap(host))


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"
