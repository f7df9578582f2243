"""Bad input fails before any change; a bad nginx config or a failed release
never replaces what serves; check mode reports a dropped slow_version().

Each test runs ansible-playbook against the scenario's containers, after the
stack has converged (tests/test_1_stack.py ran first).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import CONFIG, EDGE_BYPASS, PROJECT, flush_cache, http_get, live_release

WEB_YML = PROJECT / "playbooks" / "web.yml"
DATASTORES_YML = PROJECT / "playbooks" / "datastores.yml"
LOCAL_INFRA_YML = PROJECT / "playbooks" / "local_infra.yml"
APPLY_ROLE = Path(__file__).parents[1] / "playbooks" / "apply_role.yml"


def extra(values: dict[str, Any]) -> list[str]:
    return ["-e", json.dumps(values)]


def checksum(host: Any, path: str) -> str:
    return host.check_output(f"sha256sum {path}").split()[0]


def main_pid(host: Any, unit: str) -> str:
    return host.check_output(f"systemctl show -p MainPID --value {unit}")


def data_tier_files(host: Any) -> str:
    """Checksums of the data tier's config files (Debian's and EL's paths)."""
    find = "find /etc/postgresql /var/lib/pgsql/data /etc/redis /etc/redis6 -maxdepth 3"
    return host.run(f"{find} -name '*.conf' 2>/dev/null | sort | xargs -r sha256sum").stdout


@pytest.mark.parametrize(
    ("values", "named"),
    [
        pytest.param({"app_db_port": "five-four-three-two"}, "app_db_port", id="non-numeric port"),
        pytest.param({"app_cache_ttl": -5}, "app_cache_ttl", id="negative ttl"),
        pytest.param({"common_platform": "Gentoo-2"}, "common_platform", id="unknown distro"),
        pytest.param({"app_db_password": ""}, "app_db_password", id="empty db password"),
        pytest.param(
            {"nginx_listen_port": "eighty"}, "nginx_listen_port", id="non-numeric nginx port"
        ),
        pytest.param(
            {"nginx_client_max_body_size": "lots"},
            "nginx_client_max_body_size: 'lots'",
            id="nginx size",
        ),
        pytest.param(
            {"app_db_host": "10.230.81.300"},
            "app_db_host: must be a host name, an IP address or a socket directory,"
            " got '10.230.81.300'",
            id="malformed db address",
        ),
    ],
)
def test_web_play_rejects_bad_arguments_before_any_change(
    playbook: Any, web: Any, app_config: dict[str, Any], values: dict[str, Any], named: str
) -> None:
    before = checksum(web, CONFIG)
    run = playbook(WEB_YML, *extra(values))
    assert run.rc != 0, run.output[-2000:]
    assert named in run.output
    recap = run.recap(web.backend.name)
    assert recap["changed"] == 0, recap
    assert checksum(web, CONFIG) == before
    # The secrets never show, even in a failure.
    assert app_config["database"]["password"] not in run.output
    assert app_config["redis"]["password"] not in run.output


@pytest.mark.parametrize(
    ("values", "named"),
    [
        pytest.param(
            {"postgresql_allowed_clients": ["10.230.81.300"]},
            "postgresql_allowed_clients[0]: '10.230.81.300'",
            id="malformed client address",
        ),
        pytest.param(
            {"postgresql_allowed_clients": ["10.230.81.0/33"]},
            "postgresql_allowed_clients[0]: '10.230.81.0/33'",
            id="/33 mask",
        ),
        pytest.param(
            {"postgresql_listen_addresses": ["10.230.81.300"]},
            "postgresql_listen_addresses[0]: '10.230.81.300'",
            id="bad listen address",
        ),
        pytest.param(
            {"redis_bind_addresses": ["10.230.81.300"]},
            "redis_bind_addresses[0]: '10.230.81.300'",
            id="bad bind address",
        ),
        pytest.param({"redis_maxmemory": "lots"}, "redis_maxmemory: 'lots'", id="redis maxmemory"),
        pytest.param({"redis_port": 70000}, "redis_port: 70000", id="redis port"),
    ],
)
def test_data_tier_rejects_bad_arguments_before_any_change(
    playbook: Any, db: Any, cache: Any, values: dict[str, Any], named: str
) -> None:
    host = db if named.startswith("postgresql") else cache
    before = data_tier_files(host)
    run = playbook(DATASTORES_YML, "--limit", "db" if host is db else "cache", *extra(values))
    assert run.rc != 0, run.output[-2000:]
    assert named in run.output
    assert run.recap(host.backend.name)["changed"] == 0
    assert data_tier_files(host) == before


def test_local_infra_rejects_an_unknown_distro(playbook: Any) -> None:
    run = playbook(LOCAL_INFRA_YML, *extra({"local_infra_distro": "gentoo"}))
    assert run.rc != 0
    assert "local_infra_distro" in run.output
    assert run.recap("localhost")["changed"] == 0


def test_bad_nginx_config_never_replaces_the_live_one(playbook: Any, web: Any) -> None:
    before = checksum(web, "/etc/nginx/nginx.conf")
    pid = main_pid(web, "nginx")
    # Passes the argument spec and the role's validation, but not `nginx -t`.
    run = playbook(APPLY_ROLE, *extra({"cgc_role": "nginx", "nginx_worker_processes": "lots"}))
    assert run.rc != 0, run.output[-2000:]
    assert "worker_processes" in run.output
    assert checksum(web, "/etc/nginx/nginx.conf") == before
    assert main_pid(web, "nginx") == pid
    assert http_get("/").status == 200


@pytest.mark.parametrize(
    ("values", "named"),
    [
        # A string the app's own checker refuses (no port number): on the controller.
        ({"app_redis_url": "redis://cache:port/0"}, "app_redis_url: is not a valid URL"),
        # A file only the host can check: the host's own check of the new config.
        (
            {"app_redis_ca_file": "/nonexistent/ca.pem"},
            "redis.ca_file: cannot read file /nonexistent/ca.pem",
        ),
    ],
    ids=["controller", "host"],
)
def test_config_the_app_rejects_never_goes_live(
    playbook: Any, web: Any, values: dict[str, Any], named: str
) -> None:
    before, pid, release = checksum(web, CONFIG), main_pid(web, "cachedapp"), live_release(web)
    run = playbook(APPLY_ROLE, *extra({"cgc_role": "app", **values}))
    assert run.rc != 0, run.output[-2000:]
    assert named in run.output
    assert checksum(web, CONFIG) == before
    assert main_pid(web, "cachedapp") == pid, "the app must not have been restarted"
    assert live_release(web) == release
    assert http_get("/").status == 200


@pytest.fixture
def app_copy(tmp_path: Path) -> Path:
    """A copy of what a release is built from (a new release id), to break."""
    source = tmp_path / "app"
    source.mkdir()
    for name in ("pyproject.toml", "requirements.lock", "README.md", "LICENSE"):
        if (PROJECT / "app" / name).is_file():
            shutil.copy2(PROJECT / "app" / name, source / name)
    shutil.copytree(
        PROJECT / "app" / "src",
        source / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    return source


def test_release_that_fails_to_build_leaves_the_previous_serving(
    playbook: Any, web: Any, app_copy: Path, tmp_path: Path
) -> None:
    lock = app_copy / "requirements.lock"
    lock.write_text(lock.read_text() + "\n# broken on purpose\nflask==0.0.1\n")
    release = live_release(web)
    run = playbook(
        APPLY_ROLE,
        *extra(
            {
                "cgc_role": "app",
                "app_source_dir": str(app_copy),
                "app_build_dir": str(tmp_path / "build"),
            }
        ),
    )
    assert run.rc != 0, run.output[-2000:]
    assert "failed to build" in run.output
    assert live_release(web) == release
    assert web.check_output("ls /opt/cachedapp/releases").split().count(Path(release).name) == 1
    assert http_get("/").status == 200


def test_release_that_fails_its_health_check_is_rolled_back(
    playbook: Any, web: Any, app_copy: Path, tmp_path: Path
) -> None:
    wsgi = app_copy / "src" / "cachedapp" / "wsgi.py"
    wsgi.write_text(wsgi.read_text() + '\nraise RuntimeError("broken release, on purpose")\n')
    release = live_release(web)
    run = playbook(
        APPLY_ROLE,
        *extra(
            {
                "cgc_role": "app",
                "app_source_dir": str(app_copy),
                "app_build_dir": str(tmp_path / "build"),
            }
        ),
    )
    assert run.rc != 0, run.output[-2000:]
    assert "Rolled back" in run.output, run.output[-2000:]
    assert live_release(web) == release
    assert web.service("cachedapp").is_running
    flush_cache(web)
    reply = http_get("/", headers=EDGE_BYPASS)
    assert reply.status == 200
    assert reply.headers["X-Cache"] == "MISS"


def test_check_mode_reports_a_dropped_function_and_changes_nothing(
    playbook: Any, web: Any, db: Any, app_config: dict[str, Any]
) -> None:
    dbname = app_config["database"]["dbname"]
    query = "SELECT count(*) FROM pg_proc WHERE proname = 'slow_version'"
    exists = f'runuser -u postgres -- psql -At -d {dbname} -c "{query}"'
    assert db.check_output(exists) == "1"
    db.check_output(f"runuser -u postgres -- psql -d {dbname} -c 'DROP FUNCTION slow_version()'")
    # --check: the status is read (read-only) and the missing function is a change ...
    check = playbook(APPLY_ROLE, "--check", *extra({"cgc_role": "app"}))
    assert check.rc == 0, check.output[-2000:]
    assert "slow_version() is missing" in check.output
    assert check.recap(web.backend.name)["changed"] >= 1
    # ... that check mode does not make.
    assert db.check_output(exists) == "0"
    # A real run installs it again; check mode then finds nothing to do for it.
    fix = playbook(APPLY_ROLE, *extra({"cgc_role": "app"}))
    assert fix.rc == 0, fix.output[-2000:]
    assert db.check_output(exists) == "1"
    again = playbook(APPLY_ROLE, "--check", *extra({"cgc_role": "app"}))
    assert again.rc == 0, again.output[-2000:]
    assert "slow_version() is" not in again.output
