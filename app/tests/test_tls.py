"""TLS as shipped: PostgreSQL with sslmode=verify-full and Redis over rediss://, both
verifying the server's certificate and name against real servers (servers.sh gives
them a certificate from a per-run CA, valid for 127.0.0.1 and localhost; they also
listen on a second loopback address their certificate does not name)."""

from __future__ import annotations

import contextlib

import pytest
from cachedapp.config import load_settings
from cachedapp.db import DatabaseError, connect
from support import write_config

SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"


def _db_settings(servers, tmp_path, **database):
    path = write_config(tmp_path / "c.toml", servers, {"database": database})
    return load_settings(path, environ={}).database


def test_app_backends_use_verified_tls(servers, stack):
    """The app's pooled connections are TLS (pg_stat_ssl), made with verify-full."""
    app = stack(workers=2)
    assert app.get().cache == "MISS"
    assert app.get("/readyz").status == 200
    with contextlib.closing(servers.admin_db()) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
            "WHERE a.application_name = %s",
            (app.app_name,),
        )
        rows = cur.fetchall()
    assert rows, "no backend of the app found"
    assert all(ssl for ssl, _ in rows), rows
    assert {version for _, version in rows} <= {"TLSv1.2", "TLSv1.3"}


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_verify_full_accepts_the_names_in_the_certificate(servers, tmp_path, host):
    settings = _db_settings(servers, tmp_path, host=host)
    assert (settings.sslmode, settings.sslrootcert) == ("verify-full", servers.tls_ca)
    with contextlib.closing(connect(settings)) as conn, conn.cursor() as cur:
        cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert cur.fetchone()[0] is True


def test_verify_full_refuses_a_wrong_name(servers, tmp_path):
    wrong = _db_settings(servers, tmp_path, host=servers.wrong_name_host)
    with pytest.raises(DatabaseError, match="does not match host name"):
        connect(wrong).close()
    # the same server and CA with verify-ca (chain only) connects: the name made the difference
    chain_only = _db_settings(servers, tmp_path, host=servers.wrong_name_host, sslmode="verify-ca")
    connect(chain_only).close()


def test_verify_full_refuses_an_unknown_ca(servers, tmp_path):
    settings = _db_settings(servers, tmp_path, sslrootcert=SYSTEM_CAS)
    with pytest.raises(DatabaseError, match="certificate verify failed"):
        connect(settings).close()


def test_app_with_a_wrong_database_name_answers_503_with_a_generic_reason(servers, stack):
    app = stack(workers=1, database={"host": servers.wrong_name_host})
    reply = app.get()
    assert reply.status == 503
    ready = app.get("/readyz")
    assert (ready.status, ready.json()["checks"]["database"]["error"]) == (
        503,
        "database unavailable",
    )
    assert "does not match host name" in app.log_text()
    assert "does not match" not in reply.text + ready.text


def _tls_redis(servers, host="localhost", ca_file=None):
    return {
        "url": f"rediss://{host}:{servers.redis_tls_port}/0",
        "ca_file": servers.redis_tls_ca if ca_file is None else ca_file,
    }


def test_redis_tls_by_ip_address(servers, stack):
    app = stack(workers=1, redis=_tls_redis(servers, host="127.0.0.1"))
    assert app.get().cache == "MISS"
    assert app.get().cache == "HIT"


def test_redis_tls_refuses_a_wrong_name(servers, stack):
    """The certificate is trusted but does not name the host: refused (fail-open)."""
    app = stack(workers=1, redis=_tls_redis(servers, host=servers.wrong_name_host))
    reply = app.get()
    assert (reply.status, reply.cache) == (200, "BYPASS")
    assert app.get("/readyz").json()["checks"]["redis"]["error"] == "cache unavailable"
    assert "mismatch" in app.log_text().lower()


def test_redis_tls_without_ca_file_uses_the_system_store(servers, stack):
    """ca_file empty: the system trust store decides. Without our CA in it: refused;
    with it (OpenSSL's SSL_CERT_FILE names the store), the same config connects."""
    refused = stack(workers=1, redis=_tls_redis(servers, ca_file=""))
    assert refused.get().cache == "BYPASS"
    assert refused.get("/readyz").json()["checks"]["redis"]["ok"] is False
    assert "certificate verify failed" in refused.log_text()
    trusted = stack(
        workers=1, redis=_tls_redis(servers, ca_file=""), env={"SSL_CERT_FILE": servers.tls_ca}
    )
    assert trusted.get().cache == "MISS"
    assert trusted.get().cache == "HIT"
