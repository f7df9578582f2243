"""Every role declares each argument once: its default in defaults/main.yml, its
type, choices and description in meta/argument_specs.yml (no `default:` there, so
the two cannot disagree), and the two files name the same variables, each with the
role's prefix; a secret's argument is never logged."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROLES = Path(__file__).resolve().parent.parent / "roles"
ALL_ROLES = sorted(p.parent.parent.name for p in ROLES.glob("*/meta/argument_specs.yml"))


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def entries(role: str) -> dict[str, dict[str, Any]]:
    return load(ROLES / role / "meta" / "argument_specs.yml")["argument_specs"]


def test_every_role_has_a_spec() -> None:
    roles = sorted(p.name for p in ROLES.iterdir() if (p / "tasks").is_dir())
    assert roles == ALL_ROLES


@pytest.mark.parametrize("role", ALL_ROLES)
def test_defaults_and_spec_name_the_same_variables(role: str) -> None:
    defaults = load(ROLES / role / "defaults" / "main.yml") or {}
    options: dict[str, dict[str, Any]] = {}
    for entry in entries(role).values():
        options.update(entry.get("options") or {})
    undocumented = sorted(set(defaults) - set(options))
    assert not undocumented, f"{role}: defaults/main.yml sets undocumented {undocumented}"
    for name, spec in options.items():
        assert name.startswith(f"{role}_"), f"{role}: {name} lacks the role's prefix"
        if any(word in name for word in ("password", "token", "secret")):
            assert spec.get("no_log"), f"{role}: secret {name} without no_log"
        assert "default" not in spec, f"{role}: {name}'s default belongs in defaults/main.yml"
        if spec.get("required"):
            assert name not in defaults, f"{role}: required {name} has a default"
            continue
        if "required when" in str(spec.get("description")):
            continue  # required by another argument's value: checked in tasks/validate.yml
        assert name in defaults, f"{role}: optional {name} has no default in defaults/main.yml"
        if "choices" in spec and "{{" not in str(defaults[name]):
            values = defaults[name] if spec.get("type") == "list" else [defaults[name]]
            wrong = [v for v in values if v not in spec["choices"]]
            assert not wrong, f"{role}: {name}'s default {wrong} not among the choices"


# common picks its file by common_platform (an argument, from the same facts by
# default); local_infra's vars files are container images, not the host's OS.
OWN_SCHEME = {"common", "local_infra"}


@pytest.mark.parametrize("role", ALL_ROLES)
def test_one_lookup_of_per_distro_data(role: str) -> None:
    files = sorted(p.name for p in (ROLES / role / "vars").glob("*.yml") if p.name != "main.yml")
    if role in OWN_SCHEME or not files:
        return
    # Every load of the data goes through the same filter (plugins/filter/per_distro.py),
    # which holds the lookup order; no role spells a list of its own.
    assert f"__{role}_vars_files" not in load(ROLES / role / "vars" / "main.yml")
    wanted = f"{{{{ ansible_facts | per_distro_vars_file(role_path ~ '/vars', '{role}') }}}}"
    loads = [
        task["ansible.builtin.include_vars"]["file"]
        for path in (ROLES / role / "tasks").glob("*.yml")
        for task in load(path) or []
        if "ansible.builtin.include_vars" in task
    ]
    assert loads, f"{role}: per-distro vars files, but no task loads them"
    assert set(loads) == {wanted}, loads
    assert all(re.fullmatch(r"[A-Z][A-Za-z]*(-\d+)?\.yml", name) for name in files), files
