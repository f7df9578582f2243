"""Per-distro data of the data-tier roles (postgresql, redis), checked without a host.

No RedHat-family image can run here, so the data itself is the test subject: every
supported platform must resolve, the way the roles' preflight does it (per_distro_vars_file over
``<Distribution>-<major>.yml``, ``<os_family>-<major>.yml``), to a vars file that
names what the role needs from it; with the defaults of vars/main.yml it overrides,
every value must be consistent with the others and with the distribution's real
package, service and path names. Any other platform must resolve to none (preflight
refuses it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import jinja2
import pytest
import yaml
from aws_support import load_module

ROOT = Path(__file__).resolve().parent.parent
ROLES = ROOT / "roles"
PER_DISTRO = load_module(ROOT / "plugins/filter/per_distro.py", "per_distro")


class Platform(NamedTuple):
    distribution: str  # ansible_facts.distribution
    major: str  # ansible_facts.distribution_major_version
    os_family: str  # ansible_facts.os_family


# What Ansible reports on each supported platform.
PLATFORMS = {
    "debian12": Platform("Debian", "12", "Debian"),
    "centos9": Platform("CentOS", "9", "RedHat"),
    "rocky9": Platform("Rocky", "9", "RedHat"),
    # Other EL 9 rebuilds take the same data (vars/RedHat-9.yml), as in roles/common.
    "rhel9": Platform("RedHat", "9", "RedHat"),
    "alma9": Platform("AlmaLinux", "9", "RedHat"),
    "al2023": Platform("Amazon", "2023", "RedHat"),
}
# ... and on platforms the per-distro data does not cover (other majors, Ubuntu,
# Fedora, Amazon Linux 2).
UNSUPPORTED = [
    Platform("Debian", "11", "Debian"),
    Platform("Debian", "13", "Debian"),
    Platform("Ubuntu", "24", "Debian"),
    Platform("CentOS", "8", "RedHat"),
    Platform("Rocky", "10", "RedHat"),
    Platform("Fedora", "40", "RedHat"),
    Platform("Amazon", "2", "RedHat"),
]


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def role_vars(role: str) -> dict[str, Any]:
    return load(ROLES / role / "vars" / "main.yml")


def vars_files(role: str, platform: Platform) -> list[str]:
    """The file names the role's include_vars tries (plugins/filter/per_distro.py),
    for the platform's facts."""
    facts = {
        "distribution": platform.distribution,
        "distribution_major_version": platform.major,
        "os_family": platform.os_family,
    }
    return PER_DISTRO.candidates(facts)


def resolve(role: str, platform: Platform) -> Path | None:
    """The vars file the role's include_vars picks, or None."""
    for name in vars_files(role, platform):
        path = ROLES / role / "vars" / name
        if path.is_file():
            return path
    return None


def distro_data(role: str, key: str) -> dict[str, Any]:
    """The role's per-distro values on a platform: its vars file over the defaults of
    vars/main.yml (include_vars wins over role vars), templates rendered."""
    path = resolve(role, PLATFORMS[key])
    assert path is not None, f"{role}: no vars file for {PLATFORMS[key]}"
    data = {**role_vars(role), **load(path)}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)

    def render(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [render(v) for v in value]
        if isinstance(value, str) and "{{" in value:
            return render(env.from_string(value).render(data))
        return value

    return {name: render(data[name]) for name in DISTRO_KEYS[role]}


# Every per-distro value a role reads (vars/main.yml defaults the ones a vars file
# may leave out).
DISTRO_KEYS = {
    "postgresql": [
        "__postgresql_version", "__postgresql_module_stream", "__postgresql_packages",
        "__postgresql_service", "__postgresql_boot_service", "__postgresql_bin_dir",
        "__postgresql_data_dir", "__postgresql_config_dir", "__postgresql_initdb_command",
        "__postgresql_layout_settings",
    ],
    "redis": [
        "__redis_name", "__redis_packages", "__redis_module_stream", "__redis_service",
        "__redis_user", "__redis_group", "__redis_config_file", "__redis_acl_file",
        "__redis_data_dir", "__redis_pidfile", "__redis_server_bin", "__redis_cli_bin",
        "__redis_nft_bin", "__redis_firewall_packages",
    ],
}  # fmt: skip


# --- shared checks for both roles ----------------------------------------------------


@pytest.mark.parametrize("role", ["postgresql", "redis"])
def test_vars_files_are_tried_by_distribution_then_family(role: str) -> None:
    assert vars_files(role, PLATFORMS["rocky9"]) == ["Rocky-9.yml", "RedHat-9.yml", "RedHat.yml"]
    assert vars_files(role, PLATFORMS["al2023"]) == [
        "Amazon-2023.yml",
        "RedHat-2023.yml",
        "RedHat.yml",
    ]


@pytest.mark.parametrize("role", ["postgresql", "redis"])
@pytest.mark.parametrize("platform", UNSUPPORTED, ids=lambda p: f"{p.distribution}{p.major}")
def test_other_platforms_resolve_to_no_data(role: str, platform: Platform) -> None:
    """The vars files are the supported platforms: preflight refuses a host for
    which per_distro_vars_file finds none."""
    assert resolve(role, platform) is None


@pytest.mark.parametrize("role", ["postgresql", "redis"])
def test_preflight_loads_the_data_it_checks_for(role: str) -> None:
    """preflight.yml: validation first, then include_vars of the first vars file of the
    host's candidates, which refuses a platform without one (per_distro_vars_file)."""
    tasks = yaml.safe_load((ROLES / role / "tasks" / "preflight.yml").read_text())
    assert tasks[0]["ansible.builtin.import_tasks"] == "validate.yml"
    assert tasks[1]["ansible.builtin.include_vars"]["file"] == (
        f"{{{{ ansible_facts | per_distro_vars_file(role_path ~ '/vars', '{role}') }}}}"
    )


@pytest.mark.parametrize("role", ["postgresql", "redis"])
@pytest.mark.parametrize("key", sorted(PLATFORMS))
def test_each_platform_resolves_to_complete_data(role: str, key: str) -> None:
    own = load(resolve(role, PLATFORMS[key]) or Path("/nonexistent"))
    required = role_vars(role)[f"__{role}_distro_keys"]
    missing = [name for name in required if name not in own]
    assert not missing, f"{role} on {key}: missing {missing}"
    unexpected = sorted(set(own) - set(DISTRO_KEYS[role]))
    assert not unexpected, f"{role} on {key}: keys no task reads {unexpected}"
    defaulted = set(DISTRO_KEYS[role]) - set(required)
    assert defaulted <= set(role_vars(role)), (
        f"{role}: no default for {defaulted - set(role_vars(role))}"
    )
    data = distro_data(role, key)
    for name in DISTRO_KEYS[role]:
        value = data[name]
        assert value is not None, f"{role} on {key}: {name} is empty"
        if isinstance(value, list) and name.endswith("_packages"):
            assert value, f"{role} on {key}: {name} is an empty list"
            assert all(isinstance(p, str) and p for p in value)


@pytest.mark.parametrize("role", ["postgresql", "redis"])
def test_every_vars_file_is_reachable(role: str) -> None:
    used = {resolve(role, p) for p in PLATFORMS.values()}
    files = {p for p in (ROLES / role / "vars").glob("*.yml") if p.name != "main.yml"}
    assert files == used, f"{role}: vars files no platform loads: {sorted(files - used)}"


# --- postgresql ------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(PLATFORMS))
def test_postgresql_paths_agree(key: str) -> None:
    d = distro_data("postgresql", key)
    version = d["__postgresql_version"]
    assert isinstance(version, str)
    assert version.isdigit()
    assert int(version) >= 13  # scram-sha-256 default tooling, pg_hba_file_rules, etc.
    for name in ("__postgresql_bin_dir", "__postgresql_data_dir", "__postgresql_config_dir"):
        assert d[name].startswith("/"), name
    layout = d["__postgresql_layout_settings"]
    assert layout["unix_socket_directories"] == "/var/run/postgresql"
    if d["__postgresql_initdb_command"]:
        # EL layout: configuration in the data directory, initdb by postgresql-setup
        assert d["__postgresql_config_dir"] == d["__postgresql_data_dir"]
        assert d["__postgresql_initdb_command"][0] == "postgresql-setup"
        assert "data_directory" not in layout
    else:
        # Debian layout: versioned paths, the package creates the cluster
        assert layout["data_directory"] == d["__postgresql_data_dir"]
        assert layout["hba_file"] == f"{d['__postgresql_config_dir']}/pg_hba.conf"
        assert layout["ident_file"] == f"{d['__postgresql_config_dir']}/pg_ident.conf"
        for name in ("__postgresql_bin_dir", "__postgresql_data_dir", "__postgresql_config_dir"):
            assert f"/{version}/" in f"{d[name]}/", name
        assert d["__postgresql_service"] == f"postgresql@{version}-main"
    assert d["__postgresql_boot_service"] == "postgresql"
    if layout.get("ssl"):
        assert layout["ssl_cert_file"]
        assert layout["ssl_key_file"]
    assert "python3-psycopg2" in d["__postgresql_packages"]


# What each distribution ships, as its documentation and packaging say:
# - Debian 12: postgresql-15 (pg_createcluster makes 15/main, unit postgresql@15-main),
#   /usr/lib/postgresql/15/bin, /var/lib/postgresql/15/main, /etc/postgresql/15/main.
# - EL9 (RHEL 9 "Configuring and using database servers", ch. 4; sclorg's c9s/rhel9
#   images): PostgreSQL 13 is the non-modular default; 15 is the module stream
#   postgresql:15 (RHEL 9.2+), same package postgresql-server, unit postgresql.service,
#   data (and configuration) in /var/lib/pgsql/data, `postgresql-setup --initdb`.
# - AL2023: versioned package postgresql15-server, same unit and layout as EL.
class PostgresqlNames(NamedTuple):
    package: str
    service: str
    version: str
    stream: str
    bin_dir: str
    data_dir: str
    config_dir: str


EL_POSTGRESQL = PostgresqlNames(
    "postgresql-server", "postgresql", "15", "postgresql:15",
    "/usr/bin", "/var/lib/pgsql/data", "/var/lib/pgsql/data",
)  # fmt: skip
POSTGRESQL_NAMES = {
    "debian12": PostgresqlNames(
        "postgresql-15", "postgresql@15-main", "15", "",
        "/usr/lib/postgresql/15/bin", "/var/lib/postgresql/15/main", "/etc/postgresql/15/main",
    ),
    "centos9": EL_POSTGRESQL,
    "rocky9": EL_POSTGRESQL,
    "rhel9": EL_POSTGRESQL,
    "alma9": EL_POSTGRESQL,
    "al2023": EL_POSTGRESQL._replace(package="postgresql15-server", stream=""),
}  # fmt: skip


@pytest.mark.parametrize("key", sorted(PLATFORMS))
def test_postgresql_known_names(key: str) -> None:
    names, d = POSTGRESQL_NAMES[key], distro_data("postgresql", key)
    assert d["__postgresql_packages"][0] == names.package
    assert d["__postgresql_service"] == names.service
    assert d["__postgresql_version"] == names.version
    assert d["__postgresql_module_stream"] == names.stream
    assert d["__postgresql_bin_dir"] == names.bin_dir
    assert d["__postgresql_data_dir"] == names.data_dir
    assert d["__postgresql_config_dir"] == names.config_dir
    if key == "debian12":
        assert d["__postgresql_initdb_command"] == []
    else:
        assert d["__postgresql_initdb_command"] == ["postgresql-setup", "--initdb"]


def test_postgresql_is_the_same_major_everywhere() -> None:
    """Every target runs the major version of the others (and of RDS's pin): on EL9 that
    takes the postgresql:15 stream, the non-modular default being 13."""
    versions = {key: distro_data("postgresql", key)["__postgresql_version"] for key in PLATFORMS}
    assert set(versions.values()) == {"15"}, versions


@pytest.mark.parametrize("role", ["postgresql", "redis"])
@pytest.mark.parametrize("key", sorted(PLATFORMS))
def test_module_stream_names_the_servers_module(role: str, key: str) -> None:
    """A stream is `<module>:<major>` of the module that builds the server package (and,
    for PostgreSQL, of the version the paths carry); only EL has module streams."""
    d = distro_data(role, key)
    stream = d[f"__{role}_module_stream"]
    if PLATFORMS[key].os_family != "RedHat" or PLATFORMS[key].distribution == "Amazon":
        assert stream == "", f"{role} on {key}: module streams exist on EL only"
        return
    module, _, major = stream.partition(":")
    assert module == role
    assert major.isdigit()
    assert d[f"__{role}_packages"][0] == {"postgresql": "postgresql-server", "redis": "redis"}[role]
    if role == "postgresql":
        assert major == d["__postgresql_version"]


def render_postgresql_conf(d: dict[str, Any], port: int = 5432) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLES / "postgresql" / "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,  # as Ansible's template module
    )
    context = {**role_vars("postgresql"), **d, "postgresql_port": port, "ansible_managed": "x"}
    return env.get_template("postgresql.conf.j2").render(context)


@pytest.mark.parametrize("key", sorted(PLATFORMS))
def test_postgresql_conf_renders_for_each_platform(key: str) -> None:
    d = distro_data("postgresql", key)
    text = render_postgresql_conf(d, port=5433)
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    settings = dict(line.split(" = ", 1) for line in lines)
    assert settings["port"] == "5433"
    assert settings["include_dir"] == "'conf.d'"
    assert settings["unix_socket_directories"] == "'/var/run/postgresql'"
    assert settings["ssl"] in {"on", "off"}
    if "data_directory" in d["__postgresql_layout_settings"]:
        assert settings["data_directory"] == f"'{d['__postgresql_data_dir']}'"


def test_postgresql_value_quoting() -> None:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLES / "postgresql" / "templates"))
    macro = env.get_template("pg_value.j2").module.pg_value
    assert str(macro(True)) == "on"
    assert str(macro(False)) == "off"
    assert str(macro(100)) == "100"
    assert str(macro("128MB")) == "'128MB'"
    assert str(macro("it's")) == "'it''s'"


# --- redis ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(PLATFORMS))
def test_redis_paths_agree(key: str) -> None:
    d = distro_data("redis", key)
    config_dir = Path(d["__redis_config_file"]).parent
    assert Path(d["__redis_acl_file"]).parent == config_dir
    assert d["__redis_user"] == d["__redis_group"]
    server, cli = Path(d["__redis_server_bin"]), Path(d["__redis_cli_bin"])
    assert server.parent == cli.parent == Path("/usr/bin")
    # redis-server/redis-cli, or redis6-server/redis6-cli: one naming scheme
    assert server.name.removesuffix("-server") == cli.name.removesuffix("-cli")
    # the package, user, config directory and data directory follow it too
    base = server.name.removesuffix("-server")
    assert d["__redis_user"] == base
    assert config_dir.name == base
    assert Path(d["__redis_data_dir"]) == Path("/var/lib") / base
    assert base in d["__redis_packages"][0]
    assert d["__redis_nft_bin"] == "/usr/sbin/nft"
    assert d["__redis_firewall_packages"] == ["nftables"]
    assert d["__redis_pidfile"] == "" or d["__redis_pidfile"].startswith("/run/")


class RedisNames(NamedTuple):
    package: str
    service: str
    config: str
    user: str
    cli: str
    stream: str
    data_dir: str


# What each distribution ships:
# - Debian 12: redis-server 7.0 (unit redis-server, /etc/redis/redis.conf, user redis).
# - EL9: 6.2 is the non-modular default; Redis 7 is the module stream redis:7 (RHEL
#   9.3+, CentOS Stream 9's module defaults), same package `redis`, unit redis.service,
#   /etc/redis/redis.conf, user redis, /var/lib/redis (sclorg's rhel9 redis-7 image:
#   `module enable redis:7`, REDIS_CONF=/etc/redis/redis.conf).
# - AL2023: Redis 6.2 as the versioned package redis6: unit redis6,
#   /etc/redis6/redis6.conf, user redis6, redis6-cli, /var/lib/redis6.
EL_REDIS = RedisNames(
    "redis", "redis", "/etc/redis/redis.conf", "redis", "redis-cli", "redis:7", "/var/lib/redis"
)
REDIS_NAMES = {
    "debian12": EL_REDIS._replace(package="redis-server", service="redis-server", stream=""),
    "centos9": EL_REDIS,
    "rocky9": EL_REDIS,
    "rhel9": EL_REDIS,
    "alma9": EL_REDIS,
    "al2023": RedisNames(
        "redis6", "redis6", "/etc/redis6/redis6.conf", "redis6", "redis6-cli", "", "/var/lib/redis6"
    ),
}


@pytest.mark.parametrize("key", sorted(PLATFORMS))
def test_redis_known_names(key: str) -> None:
    names, d = REDIS_NAMES[key], distro_data("redis", key)
    assert d["__redis_packages"][0] == names.package
    assert d["__redis_service"] == names.service
    assert d["__redis_config_file"] == names.config
    assert d["__redis_user"] == names.user
    assert Path(d["__redis_cli_bin"]).name == names.cli
    assert d["__redis_module_stream"] == names.stream
    assert d["__redis_data_dir"] == names.data_dir


def test_redis_runtime_check_covers_managed_settings() -> None:
    """Each setting compared at run time (drift) is one redis.conf sets."""
    expected = role_vars("redis")["__redis_runtime_expected"]
    template = (ROLES / "redis" / "templates" / "redis.conf.j2").read_text()
    directives = {line.split()[0] for line in template.splitlines() if line[:1].isalpha()}
    assert set(expected) <= directives
