"""Each role's validation refuses malformed inputs, naming the variable and the value.

One ansible-playbook run on the controller: every case is a fake host (local
connection) whose host vars are the role's inputs; the play runs the role's
validation entry (tasks/validate.yml, or the data tier's preflight.yml that
runs it and then checks the host), the one each role's main runs first. The
JSON callback gives each host's failure message and its change count.
Another test checks that validation is indeed first.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from json_playbook import run_json_playbook

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SECRET = "never-shown-Secret-9f3c"

PLAY = """
- name: Run one role's validation per fake host
  hosts: all
  gather_facts: false
  tasks:
    - name: Gather the facts the validation reads (the others read none)
      ansible.builtin.setup:
        gather_subset: ["!all", "!min", distribution, network]
      when: cgc_tasks == 'preflight' or cgc_role in ['common', 'app']

    # One include per entry point: Ansible runs a role's include once for
    # every host that includes that role in a task, whatever its tasks_from.
    - name: Validate (tasks/validate.yml)
      ansible.builtin.include_role:
        name: "{{ cgc_role }}"
        tasks_from: validate
      when: cgc_tasks == 'validate'

    - name: Validate (tasks/preflight.yml)
      ansible.builtin.include_role:
        name: "{{ cgc_role }}"
        tasks_from: preflight
      when: cgc_tasks == 'preflight'
"""

DATASTORE_SECRETS = {
    "redis": {
        "redis_app_username": "app",
        "redis_app_password": SECRET,
        "redis_admin_password": SECRET,
    },
    "postgresql": {
        "postgresql_app_db_name": "cachedapp",
        "postgresql_app_db_user": "cachedapp",
        "postgresql_app_db_password": SECRET,
    },
    "app": {"app_db_host": "db", "app_db_password": SECRET},
}


class Case(NamedTuple):
    role: str
    tasks: str
    values: dict[str, Any]
    named: list[str]  # every one must appear in the failure message


CASES = {
    "redis": Case(
        "redis",
        "preflight",
        {
            "redis_port": 70000,
            "redis_bind_addresses": ["10.230.80.300"],
            "redis_allowed_clients": ["10.230.80.5", "10.230.80.300", "10.230.80.0/33"],
            "redis_maxmemory": "lots",
            "redis_admin_password": "",
        },
        [
            "redis_port: 70000 ",
            "redis_bind_addresses[0]: '10.230.80.300' ",
            "redis_allowed_clients[1]: '10.230.80.300' ",
            "redis_allowed_clients[2]: '10.230.80.0/33' ",
            "redis_maxmemory: 'lots' ",
            "redis_admin_password: must not be empty",
        ],
    ),
    "postgresql": Case(
        "postgresql",
        "preflight",
        {
            "postgresql_port": 0,
            "postgresql_listen_addresses": ["10.230.80.300"],
            "postgresql_allowed_clients": ["10.230.80.0/33", "10.230.80.7/24"],
            "postgresql_app_db_user": "postgres",
            "postgresql_settings_extra": {"password_encryption": "md5"},
        },
        [
            "password_encryption must stay scram-sha-256",
            "postgresql_port: 0 ",
            "postgresql_listen_addresses[0]: '10.230.80.300' ",
            "postgresql_allowed_clients[0]: '10.230.80.0/33' ",
            "postgresql_allowed_clients[1]: '10.230.80.7/24' has host bits set",
            "postgresql_app_db_user: 'postgres' ",
        ],
    ),
}
# The data tier's validate.yml alone (what preflight.yml runs first) needs no facts.
CASES |= {
    f"{role}_without_facts": CASES[role]._replace(tasks="validate")
    for role in ("redis", "postgresql")
}
CASES |= {
    "nginx": Case(
        "nginx",
        "validate",
        {
            "nginx_client_max_body_size": "lots",
            "nginx_listen_port": 0,
            "nginx_upstream_servers": ["10.0.0.300:8000"],
            "nginx_metrics_allow": ["127.0.0.1/33"],
            "nginx_edge_cache_valid": -1,
            "nginx_edge_cache_paths": ["/", "/healthz"],
            "nginx_edge_cache_max_size": "big",
            "nginx_edge_cache_release": "1.0 ; evil",
        },
        [
            "nginx_client_max_body_size: 'lots' ",
            "nginx_listen_port: 0 ",
            "nginx_upstream_servers[0]: '10.0.0.300:8000' ",
            "nginx_metrics_allow[0]: '127.0.0.1/33' ",
            "nginx_edge_cache_valid: -1 ",
            "nginx_edge_cache_paths[1]: '/healthz' is reserved",
            "nginx_edge_cache_max_size: 'big' ",
            "nginx_edge_cache_release: '1.0 ; evil' ",
        ],
    ),
    "app": Case(
        "app",
        "validate",
        {
            "app_db_ca_bundle": "http://truststore.example/global-bundle.pem",
            "app_keep_releases": 1,
            "app_db_query_timeout": 3,
        },
        [
            "app_db_ca_bundle: 'http://truststore.example/global-bundle.pem' ",
            "app_keep_releases: 1 ",
            "app_db_query_timeout: 3 ",
        ],
    ),
    # The app's settings: the config the host would get, by the app's own checker.
    "app_settings": Case(
        "app",
        "validate",
        {
            "app_db_host": "10.230.80.300",
            "app_db_port": 70000,
            "app_cache_ttl": -1,
            "app_cache_namespace": "a{b}",
        },
        [
            "app_db_host: must be a host name, an IP address or a socket directory, "
            "got '10.230.80.300'",
            "app_db_port: must be between 1 and 65535, got 70000",
            "app_cache_ttl: must be > 0, got -1.0",
            "app_cache_namespace: must be non-empty letters",
        ],
    ),
    # A source whose cachedapp.cli predates the controller check: it exits 0 and
    # says nothing (written by the run fixture).
    "app_old_source": Case(
        "app",
        "validate",
        {"app_source_dir": "{{ playbook_dir }}/old_app"},
        ["/old_app did not confirm the config"],
    ),
    "app_redis_url": Case(
        "app",
        "validate",
        {"app_redis_url": f"http://app:{SECRET}@cache:6379/0"},
        ["app_redis_url: scheme must be redis:// or rediss:// (TLS)"],
    ),
    "app_cross_check": Case(
        "app",
        "validate",
        {"app_cache_lock_timeout": 10},
        ["app_cache_lock_timeout: must be >= app_db_query_timeout"],
    ),
    "loadbalancer": Case(
        "loadbalancer",
        "validate",
        {"loadbalancer_backend_port": 0, "loadbalancer_listen_port": 65536},
        ["loadbalancer_backend_port: 0 ", "loadbalancer_listen_port: 65536 "],
    ),
    "local_infra": Case(
        "local_infra",
        "validate",
        {"local_infra_subnet": "10.230.80.0/33", "local_infra_http_port": 0},
        ["local_infra_subnet: '10.230.80.0/33' ", "local_infra_http_port: 0 "],
    ),
    "common": Case(
        "common",
        "validate",
        {"common_ca_certificates": ["/nonexistent/ca.crt"]},
        ["common_ca_certificates[0]: '/nonexistent/ca.crt' "],
    ),
}


def host_vars(case: Case, *, good: bool) -> dict[str, Any]:
    values = {} if good else case.values
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "cgc_role": case.role,
        "cgc_tasks": case.tasks,
        **DATASTORE_SECRETS.get(case.role, {}),
        **values,
    }


class Run(NamedTuple):
    output: str
    failures: dict[str, str]  # host -> message of its failed task
    stats: dict[str, dict[str, int]]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Every case as a bad host and as a good one (the defaults), one run."""
    work = tmp_path_factory.mktemp("inputs")
    old_app = work / "old_app" / "src" / "cachedapp"
    old_app.mkdir(parents=True)
    (old_app / "__init__.py").write_text("")
    (old_app / "cli.py").write_text('"""No main, no --controller."""\n')
    hosts = {f"{name}_bad": host_vars(case, good=False) for name, case in CASES.items()}
    hosts |= {f"{name}_good": host_vars(case, good=True) for name, case in CASES.items()}
    proc = run_json_playbook(work, hosts, PLAY)
    assert proc.returncode != 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.startswith("{"), proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    failures = {
        host: result.get("msg", "")
        for play in report["plays"]
        for task in play["tasks"]
        for host, result in task["hosts"].items()
        if result.get("failed")
    }
    return Run(proc.stdout + proc.stderr, failures, report["stats"])


@pytest.mark.parametrize("name", list(CASES))
def test_bad_inputs_are_refused_naming_variable_and_value(run: Run, name: str) -> None:
    message = run.failures.get(f"{name}_bad")
    assert message, f"{name}: bad inputs were accepted"
    assert message.startswith(f"{CASES[name].role} role: invalid input: "), message
    for expected in CASES[name].named:
        assert expected in message, message
    assert run.stats[f"{name}_bad"]["changed"] == 0


@pytest.mark.parametrize("name", list(CASES))
def test_the_defaults_pass(run: Run, name: str) -> None:
    assert f"{name}_good" not in run.failures, run.failures.get(f"{name}_good")
    assert run.stats[f"{name}_good"]["ok"] > 0


def test_no_secret_is_shown(run: Run) -> None:
    assert SECRET not in run.output


# The entry point that runs first in each role, and the one it imports first.
FIRST = {
    "app": ("stage.yml", "validate.yml"),
    "common": ("main.yml", "validate.yml"),
    "loadbalancer": ("main.yml", "validate.yml"),
    "local_infra": ("main.yml", "validate.yml"),
    "nginx": ("main.yml", "validate.yml"),
    "nginx_edge_release": ("edge_release.yml", "validate.yml"),
    "nginx_upstream": ("upstream.yml", "validate.yml"),
    "postgresql": ("main.yml", "preflight.yml"),
    "redis": ("main.yml", "preflight.yml"),
}
FIRST |= {
    f"{role}_preflight": ("preflight.yml", "validate.yml") for role in ("postgresql", "redis")
}


@pytest.mark.parametrize("role", list(FIRST))
def test_validation_runs_before_anything_else(role: str) -> None:
    entry, validation = FIRST[role]
    path = (
        ROOT
        / "roles"
        / role.removesuffix("_preflight").removesuffix("_edge_release").removesuffix("_upstream")
        / "tasks"
        / entry
    )
    first = yaml.safe_load(path.read_text())[0]
    # An entry point may start with a file of shared first steps (nginx's prepare.yml).
    while first.get("ansible.builtin.import_tasks") not in (validation, None):
        path = path.parent / first["ansible.builtin.import_tasks"]
        first = yaml.safe_load(path.read_text())[0]
    assert first.get("ansible.builtin.import_tasks") == validation, first
    if role == "app":
        main = yaml.safe_load((ROOT / "roles/app/tasks/main.yml").read_text())[0]
        assert main.get("ansible.builtin.import_tasks") == "stage.yml"
