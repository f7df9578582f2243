"""TLS through the balancer: the lb's HTTPS front verified against the local CA,
HTTP redirecting to it, the security headers on its answers, and the lb reaching
the web hosts over HTTPS with their certificates verified."""

from __future__ import annotations

import requests
from support import HTTP_PORT, HTTPS_PORT, base_url, container, docker_exec

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "frame-ancestors 'none'",
}


def test_front_https_headers_and_redirect() -> None:
    reply = requests.get(base_url() + "/api/version", timeout=30)
    assert reply.status_code == 200
    for name, value in HEADERS.items():
        assert reply.headers.get(name) == value, name
    assert reply.headers.get("Strict-Transport-Security", "").startswith("max-age=")
    plain = requests.get(f"http://127.0.0.1:{HTTP_PORT}/app", timeout=30, allow_redirects=False)
    assert plain.status_code == 301
    assert plain.headers["Location"] == f"https://127.0.0.1:{HTTPS_PORT}/app"


def test_lb_verifies_the_web_hosts_over_https() -> None:
    conf = docker_exec(
        container("lb"), "cat", "/etc/nginx/nginx.conf", "/etc/nginx/cachedapp-upstream.conf"
    ).stdout
    assert "proxy_pass https://cachedapp;" in conf
    assert "proxy_ssl_verify on;" in conf
    assert ":443" in conf
    # The web hosts' HTTPS answers the lb's verified name (DNS:web on every
    # web certificate), checked from the lb itself with the CA it was given.
    probe = docker_exec(
        container("lb"),
        "python3", "-c",
        "import ssl, socket, sys\n"
        "ctx = ssl.create_default_context(cafile='/etc/nginx/tls/upstream-ca.crt')\n"
        "s = socket.create_connection((sys.argv[1], 443), timeout=5)\n"
        "t = ctx.wrap_socket(s, server_hostname='web')\n"
        "print(t.version())\n",
        "web-1",
        check=False,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() in {"TLSv1.2", "TLSv1.3"}
