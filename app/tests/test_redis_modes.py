"""Redis modes end to end: cluster, ACL user + password, TLS (and their failures)."""

from __future__ import annotations

from collections import Counter

import redis
from redis.cluster import RedisCluster
from support import concurrent, db_executions


def test_cluster_mode(servers, stack, namespace):
    port = servers.cluster_ports[0]
    app = stack(workers=3, redis={"mode": "cluster", "url": f"redis://127.0.0.1:{port}"})
    before = db_executions(servers, app)
    replies = concurrent([app.get] * 12)
    assert {r.status for r in replies} == {200}
    assert Counter(r.cache for r in replies) == {"MISS": 1, "HIT": 11}
    assert db_executions(servers, app) - before == 1
    assert app.get("/readyz").json()["checks"]["redis"]["ok"] is True

    cluster = RedisCluster(host="127.0.0.1", port=port)
    try:
        value_key = f"{namespace}:v1:{{slow_version}}"
        assert cluster.exists(value_key) == 1
        assert cluster.pttl(value_key) > 0
        # item, lock and error marker share a hash tag, hence a slot (one node)
        slots = {cluster.keyslot(value_key + suffix) for suffix in ("", ":lock", ":error")}
        assert len(slots) == 1
        assert cluster.exists(f"{value_key}:lock") == 0  # released after the refresh
    finally:
        cluster.close()


def test_acl_user_and_password(servers, stack, namespace):
    app = stack(
        redis={
            "url": f"redis://127.0.0.1:{servers.redis_acl_port}/0",
            "username": servers.redis_acl_user,
            "password": servers.redis_acl_password,
        },
        app={"log_level": "DEBUG"},
    )
    assert app.get().cache == "MISS"
    assert app.get().cache == "HIT"
    admin = redis.Redis(
        port=servers.redis_acl_port, username="admin", password=servers.redis_admin_password
    )
    try:
        assert admin.exists(f"{namespace}:v1:{{slow_version}}") == 1
    finally:
        admin.close()
    log = app.log_text()
    assert servers.redis_acl_password not in log
    assert servers.db_password not in log


def test_auth_token_without_user(servers, stack):
    """AUTH <password> alone (an ElastiCache AUTH token), via the URL's password part."""
    app = stack(
        redis={"url": f"redis://:{servers.redis_token}@127.0.0.1:{servers.redis_acl_port}/0"},
        app={"log_level": "DEBUG"},
    )
    assert app.get().cache == "MISS"
    assert app.get().cache == "HIT"
    assert servers.redis_token not in app.log_text()


def test_acl_wrong_password_fails_open_without_leaking(servers, stack):
    wrong = "Wr0ng-pa55word-that-must-not-leak"
    app = stack(
        redis={
            "url": f"redis://127.0.0.1:{servers.redis_acl_port}/0",
            "username": servers.redis_acl_user,
            "password": wrong,
        },
        app={"log_level": "DEBUG"},
    )
    reply = app.get()
    assert (reply.status, reply.cache) == (200, "BYPASS")
    ready = app.get("/readyz")
    assert ready.status == 200
    assert ready.json()["checks"]["redis"]["error"] == "cache unavailable"  # details: log only
    log = app.log_text()
    assert "Authentication" in log or "WRONGPASS" in log
    assert wrong not in ready.text
    assert wrong not in log


def test_tls(servers, stack):
    app = stack(
        redis={
            "url": f"rediss://localhost:{servers.redis_tls_port}/0",
            "ca_file": servers.redis_tls_ca,
        }
    )
    assert app.get().cache == "MISS"
    assert app.get().cache == "HIT"
    assert app.get("/readyz").json()["checks"]["redis"]["ok"] is True


def test_tls_untrusted_certificate_fails_open(servers, stack):
    """The server's certificate is verified: with the system CAs it is rejected."""
    app = stack(
        redis={
            "url": f"rediss://localhost:{servers.redis_tls_port}/0",
            "ca_file": "/etc/ssl/certs/ca-certificates.crt",
        }
    )
    reply = app.get()
    assert (reply.status, reply.cache) == (200, "BYPASS")
    assert app.get("/readyz").json()["checks"]["redis"]["error"] == "cache unavailable"
    assert "certificate verify failed" in app.log_text()
