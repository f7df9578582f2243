"""Per-distro data of the web roles (common, app, nginx), checked without containers.

Only Debian 12 containers run on this machine; Amazon Linux 2023 and EL9
(CentOS Stream 9, Rocky 9) are covered here: every supported platform resolves
to a data file the way the roles resolve it, the files name the packages,
users, services and paths of that platform, and the roles agree with each
other (the socket group is nginx's group; pip trusts the store the CA
certificates go into). The templates are rendered with each platform's data
and the app's own config loader reads the result.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from aws_support import load_module
from cachedapp import config
from cachedapp.cli import ROLE_EXCEPTIONS, ROLE_VARIABLES

ROOT = Path(__file__).resolve().parents[1]
ROLES = ROOT / "roles"


SANDBOX = load_module(ROOT / "plugins" / "filter" / "systemd_sandbox.py", "cgc_web_sandbox")

# Facts as Ansible reports them on each platform.
FACTS = {
    "Debian-12": {"distribution": "Debian", "os_family": "Debian", "major": "12"},
    "Amazon-2023": {"distribution": "Amazon", "os_family": "RedHat", "major": "2023"},
    "CentOS-9": {"distribution": "CentOS", "os_family": "RedHat", "major": "9"},
    "Rocky-9": {"distribution": "Rocky", "os_family": "RedHat", "major": "9"},
}
REDHAT_LIKE = ["Amazon-2023", "CentOS-9", "Rocky-9"]


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def spec_options(role: str, entry: str = "main") -> dict[str, Any]:
    return load(ROLES / role / "meta" / "argument_specs.yml")["argument_specs"][entry]["options"]


def common_vars(platform: str) -> dict[str, Any]:
    """common: common_platform -> vars/main.yml's map -> the data file."""
    files = load(ROLES / "common" / "vars" / "main.yml")["__common_platform_files"]
    return load(ROLES / "common" / "vars" / files[platform])


def first_found_vars(role: str, platform: str) -> dict[str, Any]:
    """app, nginx: the first of <Distribution>-<major>.yml, <os_family>-<major>.yml,
    <os_family>.yml (every role's lookup, tests/test_role_specs.py)."""
    facts = FACTS[platform]
    for name in (
        f"{facts['distribution']}-{facts['major']}.yml",
        f"{facts['os_family']}-{facts['major']}.yml",
        f"{facts['os_family']}.yml",
    ):
        path = ROLES / role / "vars" / name
        if path.is_file():
            return load(path)
    raise AssertionError(f"{role}: no vars file for {platform}")


def test_every_platform_the_spec_accepts_has_data() -> None:
    choices = set(spec_options("common")["common_platform"]["choices"])
    files = load(ROLES / "common" / "vars" / "main.yml")["__common_platform_files"]
    assert set(files) == choices
    for name in set(files.values()):
        assert (ROLES / "common" / "vars" / name).is_file(), name
    assert set(FACTS) <= choices


@pytest.mark.parametrize("platform", REDHAT_LIKE)
def test_common_on_al2023_and_el9_uses_python311(platform: str) -> None:
    data = common_vars(platform)
    assert data["__common_python"] == "/usr/bin/python3.11"
    assert {"python3.11", "python3.11-devel", "python3.11-pip"} <= set(
        data["__common_python_packages"]
    )
    # psycopg2 from source: compiler and libpq headers with pg_config.
    assert {"gcc", "libpq-devel"} <= set(data["__common_build_packages"])
    assert data["__common_pg_config"] == "/usr/bin/pg_config"
    assert data["__common_ca_dir"] == "/etc/pki/ca-trust/source/anchors"
    assert data["__common_ca_update_command"] == ["update-ca-trust", "extract"]
    assert data["__common_ca_bundle"] == "/etc/pki/tls/certs/ca-bundle.crt"
    assert data["__common_nologin"] == "/sbin/nologin"
    # No Debian package name leaks into a dnf list.
    packages = data["__common_python_packages"] + data["__common_build_packages"]
    assert not [p for p in packages if p.endswith("-dev") or p.endswith("-venv")]


def test_common_on_debian12_uses_apt_names() -> None:
    data = common_vars("Debian-12")
    assert {"python3.11-venv", "python3.11-dev"} <= set(data["__common_python_packages"])
    assert {"gcc", "libpq-dev"} <= set(data["__common_build_packages"])
    assert data["__common_ca_update_command"] == ["update-ca-certificates"]
    assert data["__common_ca_bundle"] == "/etc/ssl/certs/ca-certificates.crt"


@pytest.mark.parametrize("platform", REDHAT_LIKE)
def test_nginx_on_al2023_and_el9(platform: str) -> None:
    data = first_found_vars("nginx", platform)
    assert data["__nginx_packages"] == ["nginx"]
    assert data["__nginx_service"] == "nginx"
    assert (data["__nginx_user"], data["__nginx_group"]) == ("nginx", "nginx")
    assert data["__nginx_modules_include"] == "/usr/share/nginx/modules/*.conf"
    assert data["__nginx_pid_file"] == "/run/nginx.pid"
    # seboolean / firewalld need these bindings on SELinux / firewalld hosts.
    assert {"python3-libselinux", "python3-policycoreutils"} <= set(
        data["__nginx_selinux_packages"]
    )
    assert data["__nginx_firewalld_packages"] == ["python3-firewall"]


def test_nginx_on_debian12() -> None:
    data = first_found_vars("nginx", "Debian-12")
    assert (data["__nginx_user"], data["__nginx_group"]) == ("www-data", "www-data")
    assert data["__nginx_service"] == "nginx"
    assert data["__nginx_modules_include"] == "/etc/nginx/modules-enabled/*.conf"
    assert data["__nginx_selinux_packages"] == []


@pytest.mark.parametrize("platform", list(FACTS))
def test_roles_agree_on_each_platform(platform: str) -> None:
    common = common_vars(platform)
    app = first_found_vars("app", platform)
    nginx = first_found_vars("nginx", platform)
    # gunicorn's socket group must be the group nginx runs as, or nginx gets 502.
    assert app["__app_web_group"] == nginx["__nginx_group"]
    # pip in the venvs trusts the store the extra CA certificates go into.
    assert app["__app_ca_bundle"] == common["__common_ca_bundle"]
    # The venv's interpreter is the one common installs.
    assert app["__app_python"] == common["__common_python"]


def render(role: str, template: str, variables: dict[str, Any]) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLES / role / "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,  # as Ansible's template module
    )
    # The Ansible filters the templates use, with Ansible's meaning.
    env.filters["to_json"] = json.dumps
    env.filters["bool"] = lambda v: (
        v if isinstance(v, bool) else str(v).lower() in {"1", "true", "yes", "on"}
    )
    env.filters["basename"] = lambda p: Path(p).name
    env.filters["dirname"] = lambda p: str(Path(p).parent)
    env.filters.update(SANDBOX.FilterModule().filters())
    return env.get_template(template).render(ansible_managed="managed by Ansible", **variables)


def role_defaults(role: str) -> dict[str, Any]:
    return load(ROLES / role / "defaults" / "main.yml")


# vars/main.yml's derived values, as Ansible computes them from the defaults
# (this renderer has no lazy templating of variables).
NGINX_DERIVED = {
    "__nginx_tls": False,
    "__nginx_tls_cert": "/etc/nginx/tls/site.crt",
    "__nginx_tls_key": "/etc/nginx/tls/site.key",
    "__nginx_upstream_ca": "/etc/nginx/tls/upstream-ca.crt",
    "__nginx_upstream_scheme": "http",
    "__nginx_edge_cache": True,
    "__nginx_edge_release_conf": "/etc/nginx/edge-release.conf",
    "__nginx_upstream_conf": "/etc/nginx/cachedapp-upstream.conf",
}


def nginx_variables(platform: str) -> dict[str, Any]:
    return role_defaults("nginx") | first_found_vars("nginx", platform) | NGINX_DERIVED


@pytest.mark.parametrize("platform", list(FACTS))
def test_nginx_conf_renders_for_each_platform(platform: str) -> None:
    variables = nginx_variables(platform)
    conf = render("nginx", "nginx.conf.j2", variables)
    assert f"user {variables['__nginx_user']};" in conf
    assert f"include {variables['__nginx_modules_include']};" in conf
    assert "server_tokens off;" in conf
    assert re.search(r"upstream cachedapp \{\s+include /etc/nginx/cachedapp-upstream.conf;", conf)
    upstream = render("nginx", "upstream.conf.j2", variables)
    assert "server unix:/run/cachedapp/gunicorn.sock fail_timeout=0;" in upstream
    assert re.search(r"location / \{\s+proxy_pass http://cachedapp;", conf)
    # gthread workers keep connections: nginx must reuse them (HTTP/1.1, no Connection).
    assert "keepalive 32;" in conf
    assert "proxy_http_version 1.1;" in conf
    assert 'proxy_set_header Connection "";' in conf
    assert conf.count("{") == conf.count("}")
    # HTTP only: no redirect, the security headers on every answer.
    assert "return 301" not in conf
    assert 'add_header X-Content-Type-Options "nosniff" always;' in conf


def test_nginx_conf_with_tls_serves_https_and_redirects_http() -> None:
    variables = nginx_variables("Debian-12") | {
        "__nginx_tls": True,
        "nginx_https_redirect_port": 8443,
    }
    conf = render("nginx", "nginx.conf.j2", variables)
    assert "listen 443 ssl http2 default_server;" in conf
    assert "ssl_certificate /etc/nginx/tls/site.crt;" in conf
    assert "return 301 https://$host:8443$request_uri;" in conf
    assert 'add_header Strict-Transport-Security "max-age=31536000" always;' in conf
    # Health checks and scraping stay on HTTP inside the network.
    for path in ("/healthz", "/readyz", "/metrics"):
        assert f"location = {path} {{" in conf
    assert conf.count("{") == conf.count("}")
    on_443 = render("nginx", "nginx.conf.j2", variables | {"nginx_https_redirect_port": 443})
    assert "return 301 https://$host$request_uri;" in on_443


@pytest.mark.parametrize("platform", list(FACTS))
def test_unit_renders_for_each_platform(platform: str) -> None:
    app = first_found_vars("app", platform)
    variables = role_defaults("app") | app
    variables |= {
        "__app_socket_group": app["__app_web_group"],
        "__app_runtime_dir": "/run/cachedapp",
        "__app_current_link": "/opt/cachedapp/current",
    }
    unit = render("app", "cachedapp.service.j2", variables)
    assert f"Group={app['__app_web_group']}\n" in unit
    assert "RuntimeDirectoryMode=0750\n" in unit
    assert "--umask 007" in unit
    assert "--bind unix:/run/cachedapp/gunicorn.sock" in unit
    # One ExecStart, continued line by line, ending with the WSGI app.
    exec_start = re.search(r"^ExecStart=(?:.*\\\n)+.*$", unit, re.MULTILINE).group(0)
    assert exec_start.rstrip().endswith("cachedapp.wsgi:app")
    # Workers: gunicorn's own default (one per CPU) unless app_workers is set.
    assert "--workers" not in unit
    assert "--workers 4 \\\n" in render(
        "app", "cachedapp.service.j2", variables | {"app_workers": 4}
    )
    assert "--threads" not in unit
    assert "--threads 8 \\\n" in render(
        "app", "cachedapp.service.j2", variables | {"app_threads": 8}
    )
    assert "Environment=PROMETHEUS_MULTIPROC_DIR=/run/cachedapp/metrics\n" in unit


def test_config_template_is_what_the_app_accepts(tmp_path: Path) -> None:
    """Rendered with the role's defaults, the app's own loader accepts the file."""
    variables = role_defaults("app") | {
        "__app_db_ca_file": "",
        "app_db_host": "db.internal",
        "app_db_password": 'pa"ss\\word',
        "app_redis_password": "s3cret",
    }
    path = tmp_path / "config.toml"
    path.write_text(render("app", "config.toml.j2", variables))
    settings = config.load_settings(str(path))
    assert settings.database.host == "db.internal"
    assert settings.database.password.reveal() == 'pa"ss\\word'
    assert settings.cache.ttl == 60
    assert settings.redis.mode == "standalone"


def test_role_defaults_are_the_apps_defaults(tmp_path: Path) -> None:
    """One default per setting: the config the role renders from its defaults holds the
    app's own default for every setting it renders (SCHEMA; the required ones have
    none), so a default changed on one side only fails here."""
    variables = role_defaults("app") | {
        "__app_db_ca_file": "",
        "app_db_host": "db.internal",
        "app_db_password": "s3cret",
    }
    rendered = tomllib.loads(render("app", "config.toml.j2", variables))
    disagree = {}
    for (section, key), (_kind, default, _check) in config.SCHEMA.items():
        if default is config.REQUIRED:
            continue
        if key not in rendered.get(section, {}):
            continue  # not rendered: the app's default applies
        value = rendered[section][key]
        wanted = default.reveal() if isinstance(default, config.Secret) else default
        if value != wanted:
            disagree[f"{section}.{key}"] = (value, wanted)
    assert not disagree, f"role default != app default (role, app): {disagree}"


def template_settings() -> dict[str, str]:
    """config.toml.j2: "section.key" -> the variable its line renders."""
    section, found = "", {}
    for line in (ROLES / "app" / "templates" / "config.toml.j2").read_text().splitlines():
        if match := re.fullmatch(r"\[(\w+)\]", line):
            section = match.group(1)
        elif match := re.fullmatch(r"(\w+) = \{\{ (\w+)\b.*", line):
            found[f"{section}.{match.group(1)}"] = match.group(2)
    return found


def test_each_role_variable_is_an_app_setting_and_back() -> None:
    """The checker's --role-names map (cachedapp.cli.ROLE_VARIABLES) is what the role
    renders: each setting's line renders its own variable, each is an argument of the
    role, and every app_db_/app_redis_/app_cache_ argument is a setting's."""
    rendered = template_settings()
    internal = load(ROLES / "app" / "vars" / "main.yml")
    for setting, variable in rendered.items():
        if variable.startswith("__app_"):  # derived in vars/main.yml from the argument
            assert ROLE_VARIABLES.get(setting, "?") in internal[variable], setting
            rendered[setting] = ROLE_VARIABLES[setting]
    assert rendered == ROLE_VARIABLES
    options = set(spec_options("app"))
    assert set(ROLE_VARIABLES.values()) <= options
    settings_like = {name for name in options if re.match(r"app_(db|redis|cache)_", name)}
    assert settings_like <= set(ROLE_VARIABLES.values())
    assert set(ROLE_EXCEPTIONS) <= {f"{s}.{k}" for s, k in config.SCHEMA}


def test_upstream_marks_the_servers_out_of_rotation_down() -> None:
    """The loadbalancer's rotation: nginx_upstream_down renders `down` on exactly
    those servers, with the balancer's passive health settings on every line."""
    servers = ["10.230.82.101:443", "10.230.82.102:443", "10.230.82.103:443"]
    variables = nginx_variables("Debian-12") | {
        "nginx_upstream_servers": servers,
        "nginx_upstream_max_fails": 2,
        "nginx_upstream_fail_timeout": 10,
    }
    lines = [
        ln
        for ln in render(
            "nginx", "upstream.conf.j2", variables | {"nginx_upstream_down": servers[1:2]}
        ).splitlines()
        if ln.startswith("server ")
    ]
    assert lines == [
        "server 10.230.82.101:443 max_fails=2 fail_timeout=10;",
        "server 10.230.82.102:443 max_fails=2 fail_timeout=10 down;",
        "server 10.230.82.103:443 max_fails=2 fail_timeout=10;",
    ]
    back = render("nginx", "upstream.conf.j2", variables | {"nginx_upstream_down": []})
    assert " down" not in back


# --- the edge microcache ----------------------------------------------------------------

EDGE_PATHS = ("/", "/app", "/api/version")


def edge_conf(**overrides: Any) -> str:
    """nginx.conf with the edge cache as vars/main.yml derives it (on: enabled and a
    validity above 0), over TLS as on the local target."""
    variables = nginx_variables("Debian-12") | {"__nginx_tls": True} | overrides
    variables["__nginx_edge_cache"] = (
        bool(variables["nginx_edge_cache"]) and int(variables["nginx_edge_cache_valid"]) > 0
    )
    return render("nginx", "nginx.conf.j2", variables)


def location(conf: str, path: str) -> str:
    """The body of `location = PATH { ... }` (the last one: the HTTPS server's)."""
    found = re.findall(rf"location = {re.escape(path)} \{{(.*?)\n    \}}", conf, re.DOTALL)
    assert found, path
    return found[-1]


def test_edge_cache_on_by_default() -> None:
    defaults = role_defaults("nginx")
    assert defaults["nginx_edge_cache"] is True
    assert defaults["nginx_edge_cache_valid"] == 1
    assert defaults["nginx_edge_cache_path"].startswith("/run/")  # tmpfs
    conf = edge_conf()
    assert conf.count("{") == conf.count("}")
    assert re.search(
        r"proxy_cache_path /run/nginx-edge-cache levels=1:2 keys_zone=cachedapp_edge:1m"
        r"\s+max_size=16m inactive=600s use_temp_path=off;",
        conf,
    )
    assert "include /etc/nginx/edge-release.conf;" in conf
    for path in EDGE_PATHS:
        body = location(conf, path)
        assert "proxy_cache cachedapp_edge;" in body
        # The serving release starts the key: a switch re-keys the cache.
        assert "proxy_cache_key $edge_release$scheme$host$request_uri;" in body
        assert "proxy_cache_valid 200 1s;" in body
        assert "proxy_cache_lock on;" in body
        # Both above the slow query's 5 s.
        assert "proxy_cache_lock_timeout 10s;" in body
        assert "proxy_cache_lock_age 10s;" in body
        assert (
            "proxy_cache_use_stale updating error timeout http_500 http_502 http_503 http_504;"
            in body
        )
        assert "proxy_cache_background_update on;" in body
        # The app's Cache-Control: no-store is ignored, Set-Cookie is not (an answer
        # that sets one is never stored); a Cookie/Authorization request skips the cache.
        assert "proxy_ignore_headers Cache-Control Expires;" in body
        assert "proxy_no_cache $edge_cache_skip $upstream_http_set_cookie;" in body
        assert "proxy_cache_bypass $edge_cache_skip;" in body
        # No add_header in the location: it would drop the server's security headers.
        assert "add_header" not in body
    assert re.search(
        r'map "\$http_cookie\$http_authorization" \$edge_cache_skip \{\s+default 1;\s+"" 0;', conf
    )


def test_edge_cache_header_sits_beside_the_security_headers() -> None:
    """X-Edge-Cache is added at server level with the security headers (a location's
    own add_header would discard them); outside the cached locations it is empty, so
    nginx sends no X-Edge-Cache there."""
    conf = edge_conf()
    https = conf[conf.index("listen 443 ssl") :]
    server_level = https[: https.index("\n        location")]
    assert "add_header X-Edge-Cache $upstream_cache_status always;" in server_level
    assert 'add_header X-Content-Type-Options "nosniff" always;' in server_level
    assert conf.count("add_header X-Edge-Cache") == 2  # the HTTP and the HTTPS server


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_edge_cache_never_covers_health_and_metrics(path: str) -> None:
    conf = edge_conf()
    for body in re.findall(rf"location = {re.escape(path)} \{{(.*?)\}}", conf, re.DOTALL):
        assert "proxy_cache" not in body
    # The catch-all location is not cached either.
    catch_all = re.search(r"location / \{(.*?)\}", conf, re.DOTALL).group(1)
    assert "proxy_cache" not in catch_all


@pytest.mark.parametrize(
    "overrides", [{"nginx_edge_cache": False}, {"nginx_edge_cache_valid": 0}], ids=["off", "valid0"]
)
def test_edge_cache_off(overrides: dict[str, Any]) -> None:
    conf = edge_conf(**overrides)
    assert "proxy_cache" not in conf
    assert "X-Edge-Cache" not in conf
    assert "edge-release.conf" not in conf
    assert "$edge_cache_skip" not in conf
    # The site is otherwise the same: security headers, every path proxied.
    assert 'add_header X-Content-Type-Options "nosniff" always;' in conf
    assert re.search(r"location / \{\s+proxy_pass http://cachedapp;", conf)
    assert conf.count("{") == conf.count("}")


def test_edge_cache_settings_are_rendered() -> None:
    conf = edge_conf(
        nginx_edge_cache_valid=5,
        nginx_edge_cache_lock_timeout=20,
        nginx_edge_cache_path="/dev/shm/edge",
        nginx_edge_cache_keys_zone_size="4m",
        nginx_edge_cache_max_size="64m",
        nginx_edge_cache_inactive=60,
        nginx_edge_cache_paths=["/api/version"],
    )
    assert "proxy_cache_path /dev/shm/edge levels=1:2 keys_zone=cachedapp_edge:4m" in conf
    assert "max_size=64m inactive=60s" in conf
    assert "proxy_cache_valid 200 5s;" in conf
    assert "proxy_cache_lock_timeout 20s;" in conf
    assert conf.count("proxy_cache cachedapp_edge;") == 1
    assert "location = /app {" not in conf


def test_edge_release_key_file() -> None:
    text = render("nginx", "edge-release.conf.j2", {"nginx_edge_cache_release": "1.2.0-abc123"})
    assert re.search(r'map \$host \$edge_release \{\s+default "1.2.0-abc123:";\s+\}', text)


def test_nginx_accepts_the_edge_cache_config(tmp_path: Path) -> None:
    """nginx -t (the one on this machine, when installed) on the rendered file."""
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if not nginx:
        pytest.skip("nginx is not installed here")
    release = tmp_path / "edge-release.conf"
    release.write_text(render("nginx", "edge-release.conf.j2", {"nginx_edge_cache_release": "r1"}))
    for cert in ("site.crt", "site.key"):
        (tmp_path / cert).write_text("")
    # A balancer's upstream with one server out of rotation.
    servers = ["127.0.0.1:18001", "127.0.0.1:18002"]
    upstream = tmp_path / "upstream.conf"
    upstream.write_text(
        render(
            "nginx",
            "upstream.conf.j2",
            nginx_variables("Debian-12")
            | {"nginx_upstream_servers": servers, "nginx_upstream_down": servers[:1]},
        )
    )
    conf = edge_conf(
        __nginx_tls=False,
        nginx_edge_cache_path=str(tmp_path / "cache"),
        __nginx_edge_release_conf=str(release),
        __nginx_upstream_conf=str(upstream),
        __nginx_pid_file=str(tmp_path / "nginx.pid"),
        __nginx_log_dir=str(tmp_path),
        __nginx_modules_include=str(tmp_path / "none-*.conf"),
    )
    path = tmp_path / "nginx.conf"
    path.write_text(conf)
    proc = subprocess.run(
        [nginx, "-t", "-q", "-c", str(path), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
