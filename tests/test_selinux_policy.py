"""The app role's SELinux pieces, checked on this Debian machine (no EL host).

- files/selinux/cachedapp.te compiles with Debian's checkpolicy (checkmodule -M -m:
  a module with require blocks needs no base policy) and packages with
  semodule-utils (semodule_package), as tasks/selinux.yml does on the host; the
  compiled module, dumped as CIL, holds the httpd_t -> unconfined_service_t
  connectto rule and nothing wider. A syntax or declaration error fails here.
- The file-context rule tasks/selinux.yml writes covers the socket the role
  actually binds (defaults, the playbooks' web_app_socket, the unit's --bind),
  on the canonical side of EL9's and Fedora's /run equivalences; moving the
  socket outside the labelled directory fails here.
- The tasks only run where the facts say SELinux is enabled, and the per-distro
  data names the packages that ship the tools on EL9 / AL2023.

The tools come from `scripts/ensure-test-tools.sh selinux` (make test-unit); the
compile tests fail, not skip, without them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from aws_support import load_module

ROOT = Path(__file__).resolve().parents[1]
ROLE = ROOT / "roles" / "app"
TE = ROLE / "files" / "selinux" / "cachedapp.te"

# file_contexts.subs_dist lines about /run, as the policies ship them:
# EL9 (selinux-policy 38.1, CentOS Stream 9) and Fedora since 2023.
EL9_SUBS = "/run /var/run\n/run/lock /var/lock\n/var/run/lock /var/lock\n"
FEDORA_SUBS = "/var/run /run\n/var/lock /run/lock\n"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture
def policy_tools() -> None:
    """The compile tests fail, not skip, without the tools."""
    missing = [t for t in ("checkmodule", "semodule_package") if not shutil.which(t)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: install Debian's checkpolicy and semodule-utils "
            "(scripts/ensure-test-tools.sh selinux; make test-unit does)"
        )


def filters() -> Any:
    return load_module(ROLE / "filter_plugins" / "app_selinux.py", "app_selinux")


def compile_module(te: Path, out: Path) -> dict[str, Any]:
    """checkmodule + semodule_package as on the host, plus a CIL dump; outputs
    named after the module (checkmodule refuses another base name)."""
    name = re.search(r"^module\s+(\w+)\s+[\d.]+;", te.read_text(), re.M)
    assert name, "no module statement"
    mod, pp, cil = (out / f"{name[1]}{ext}" for ext in (".mod", ".pp", ".cil"))
    results = {
        "checkmodule": subprocess.run(
            ["checkmodule", "-M", "-m", "-o", str(mod), str(te)],
            capture_output=True,
            text=True,
            check=False,
        ),
    }
    if results["checkmodule"].returncode == 0:
        results["semodule_package"] = subprocess.run(
            ["semodule_package", "-o", str(pp), "-m", str(mod)],
            capture_output=True,
            text=True,
            check=False,
        )
        results["cil"] = subprocess.run(
            ["checkmodule", "-M", "-m", "-C", "-o", str(cil), str(te)],
            capture_output=True,
            text=True,
            check=False,
        )
    return {"name": name[1], "results": results, "pp": pp, "cil": cil}


@pytest.mark.usefixtures("policy_tools")
def test_policy_module_compiles_and_packages(tmp_path: Path) -> None:
    built = compile_module(TE, tmp_path)
    for tool, result in built["results"].items():
        assert result.returncode == 0, f"{tool}: {result.stderr}"
    assert built["name"] == "cachedapp"
    assert built["pp"].stat().st_size > 0
    # The compiled module: exactly the connect rule, on the types it requires.
    rules = [line for line in built["cil"].read_text().splitlines() if line.startswith("(allow ")]
    assert rules == ["(allow httpd_t unconfined_service_t (unix_stream_socket (connectto)))"]


@pytest.mark.usefixtures("policy_tools")
@pytest.mark.parametrize(
    ("breakage", "old", "new"),
    [
        ("syntax error", ":unix_stream_socket connectto;", ":unix_stream_socket connectto"),
        ("undeclared type", "\ttype unconfined_service_t;\n", ""),
        ("unknown permission", "connectto;\n}", "conectto;\n}"),
    ],
)
def test_a_broken_policy_module_fails_to_compile(
    tmp_path: Path, breakage: str, old: str, new: str
) -> None:
    """The check above is not vacuous: each breakage fails the compile."""
    source = TE.read_text()
    assert old in source, breakage
    broken = tmp_path / "cachedapp.te"
    broken.write_text(source.replace(old, new, 1))
    results = compile_module(broken, tmp_path)["results"]
    assert results["checkmodule"].returncode != 0, breakage


def test_fcontext_spec_is_written_on_the_canonical_path() -> None:
    spec = filters().fcontext_spec
    assert spec("/run/cachedapp", EL9_SUBS) == "/var/run/cachedapp(/.*)?"
    assert spec("/run/cachedapp", FEDORA_SUBS) == "/run/cachedapp(/.*)?"
    assert spec("/var/run/cachedapp", FEDORA_SUBS) == "/run/cachedapp(/.*)?"
    # Longest alias first, until no alias applies (what semanage accepts).
    assert spec("/var/run/lock/app", EL9_SUBS) == "/var/lock/app(/.*)?"
    assert spec("/run/app.d", "# comment\n\n") == r"/run/app\.d(/.*)?"
    with pytest.raises(ValueError, match="loop"):
        spec("/a/x", "/a /b\n/b /a\n")


def socket_paths() -> dict[str, str]:
    """Every place that says where gunicorn's socket is."""
    defaults = load(ROLE / "defaults" / "main.yml")
    web = load(ROOT / "playbooks" / "vars" / "web.yml")
    unit = (ROLE / "templates" / "cachedapp.service.j2").read_text()
    bind = re.search(r"--bind unix:(\{\{ (\w+) \}\})", unit)
    assert bind, "the unit binds no unix socket"
    return {
        "defaults app_socket_path": defaults["app_socket_path"],
        "playbooks web_app_socket": web["web_app_socket"],
        # The unit binds whatever app_socket_path is.
        f"unit --bind ({bind[2]})": defaults[bind[2]],
    }


def render_task_value(expression: str, variables: dict[str, Any]) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters.update(filters().FilterModule().filters())
    env.filters["dirname"] = lambda p: str(Path(p).parent)
    env.filters["basename"] = lambda p: Path(p).name
    return env.from_string(expression).render(**variables)


def selinux_tasks() -> list[dict[str, Any]]:
    return load(ROLE / "tasks" / "selinux.yml")


@pytest.mark.parametrize(("policy", "subs"), [("EL9", EL9_SUBS), ("Fedora", FEDORA_SUBS)])
def test_fcontext_rule_covers_the_socket_the_app_binds(policy: str, subs: str) -> None:
    role_vars = load(ROLE / "vars" / "main.yml")
    (task,) = [t for t in selinux_tasks() if "community.general.sefcontext" in t]
    args = task["community.general.sefcontext"]
    assert args["setype"] == "httpd_var_run_t"
    assert args["ftype"] == "a"  # sockets too, not only regular files
    canonical = filters().canonical_path
    for where, socket in socket_paths().items():
        variables = {
            "app_socket_path": socket,
            "__app_selinux_subs": {"stdout": subs},
        }
        variables["__app_runtime_dir"] = render_task_value(
            role_vars["__app_runtime_dir"], variables
        )
        # The unit's RuntimeDirectory (relative to /run) is that directory:
        # systemd creates it, labelled from the rule.
        assert Path(variables["__app_runtime_dir"]).parent == Path("/run"), where
        target = render_task_value(args["target"], variables)
        for path in (socket, str(Path(socket).parent)):
            assert re.fullmatch(target, canonical(path, subs)), f"{policy}: {where} {path}"
        # A socket outside that directory is not labelled.
        assert not re.fullmatch(target, canonical("/run/elsewhere/gunicorn.sock", subs))


def test_runtime_directory_is_the_sockets_directory() -> None:
    unit = (ROLE / "templates" / "cachedapp.service.j2").read_text()
    assert "RuntimeDirectory={{ __app_runtime_dir | basename }}\n" in unit
    role_vars = load(ROLE / "vars" / "main.yml")
    assert role_vars["__app_runtime_dir"] == "{{ app_socket_path | dirname }}"
    relabel = [t for t in selinux_tasks() if t.get("name") == "Relabel the socket's directory"]
    assert relabel[0]["ansible.builtin.command"]["argv"][-1] == "{{ __app_runtime_dir }}"


def test_tasks_run_only_where_selinux_is_enabled() -> None:
    activate = load(ROLE / "tasks" / "activate.yml")
    includes = [t for t in activate if t.get("ansible.builtin.include_tasks") == "selinux.yml"]
    assert len(includes) == 1
    assert includes[0]["when"] == [
        "app_selinux_manage | bool",
        "ansible_facts['selinux']['status'] | default('disabled') == 'enabled'",
    ]
    # Before the deploy (unit start), so systemd creates the directory labelled.
    names = [next(iter(k for k in t if k.startswith("ansible.builtin."))) for t in activate]
    assert names.index("ansible.builtin.include_tasks") < names.index(
        "ansible.builtin.import_tasks"
    )
    main = load(ROLE / "tasks" / "main.yml")
    assert {"ansible.builtin.import_tasks": "activate.yml"}.items() <= main[1].items()
    assert "SELinux" not in (ROLE / "tasks" / "stage.yml").read_text()


def test_module_is_loaded_by_name_and_only_when_its_source_changed() -> None:
    role_vars = load(ROLE / "vars" / "main.yml")
    assert role_vars["__app_selinux_module"] == "cachedapp"
    assert re.search(r"^module cachedapp [\d.]+;$", TE.read_text(), re.M)
    (block,) = [t for t in selinux_tasks() if "block" in t]
    assert "__app_selinux_te_sha1" in block["when"]
    assert "__app_selinux_modules.stdout_lines" in block["when"]
    argv = [
        t["ansible.builtin.command"]["argv"]
        for t in block["block"]
        if "ansible.builtin.command" in t
    ]
    assert [a[0] for a in argv] == ["checkmodule", "semodule_package", "semodule"]


@pytest.mark.parametrize(
    ("vars_file", "packages"),
    [
        (
            "RedHat.yml",
            {"checkpolicy", "policycoreutils", "python3-libselinux", "python3-policycoreutils"},
        ),
        ("Debian.yml", set()),
    ],
)
def test_selinux_packages_per_distro(vars_file: str, packages: set[str]) -> None:
    # EL9/AL2023: checkmodule is in checkpolicy; semodule, semodule_package and
    # restorecon in policycoreutils; sefcontext imports selinux and seobject.
    data = load(ROLE / "vars" / vars_file)
    assert set(data["__app_selinux_packages"]) == packages


def test_selinux_option_is_documented() -> None:
    defaults = load(ROLE / "defaults" / "main.yml")
    spec = load(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert defaults["app_selinux_manage"] is True
    assert spec["app_selinux_manage"]["type"] == "bool"
    assert "app_selinux_manage" in (ROLE / "README.md").read_text()
