"""Every role's README documents what the role takes and shows how to use it:
each variable of defaults/main.yml and each required option of
meta/argument_specs.yml has a row in its "Variables" table, and its
"Example play" section holds a YAML block that parses into plays with `hosts`.
A variable added to the defaults without a README row fails here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROLES = Path(__file__).resolve().parent.parent / "roles"
ALL_ROLES = sorted(p.name for p in ROLES.iterdir() if (p / "tasks").is_dir())


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def section(text: str, title: str) -> str:
    """The body of the first Markdown heading named `title`, up to the next heading
    of the same or a higher level ("" when there is none)."""
    match = re.search(rf"^(#+) {re.escape(title)}\s*$", text, re.MULTILINE)
    if not match:
        return ""
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


def documented_names(role: str) -> list[str]:
    """defaults/main.yml's variables, then the options any entry point requires."""
    names = list(load(ROLES / role / "defaults" / "main.yml") or {})
    specs = load(ROLES / role / "meta" / "argument_specs.yml")["argument_specs"]
    for entry in specs.values():
        for name, option in (entry.get("options") or {}).items():
            if option.get("required") and name not in names:
                names.append(name)
    return names


def test_every_role_is_checked() -> None:
    assert len(ALL_ROLES) >= 11
    assert {"app", "nginx", "postgresql", "redis", "aws_infra"} <= set(ALL_ROLES)


@pytest.mark.parametrize("role", ALL_ROLES)
def test_readme_has_a_row_per_variable(role: str) -> None:
    readme = (ROLES / role / "README.md").read_text()
    table = section(readme, "Variables")
    assert table, f"{role}: README.md has no Variables section"
    rows = set(re.findall(r"^\|\s*`([a-z0-9_]+)`\s*\|", table, re.MULTILINE))
    missing = [name for name in documented_names(role) if name not in rows]
    assert not missing, f"{role}: README.md's Variables table lacks {missing}"
    for name in documented_names(role):
        assert f"`{name}`" in readme


@pytest.mark.parametrize("role", ALL_ROLES)
def test_readme_example_play_parses(role: str) -> None:
    readme = (ROLES / role / "README.md").read_text()
    example = section(readme, "Example play")
    assert example, f"{role}: README.md has no Example play section"
    blocks = re.findall(r"^```ya?ml\n(.*?)^```", example, re.MULTILINE | re.DOTALL)
    assert blocks, f"{role}: the Example play section has no yaml code block"
    for block in blocks:
        plays = yaml.safe_load(block)
        assert isinstance(plays, list), f"{role}: the example is not a list of plays"
        assert plays, f"{role}: the example is empty"
        for play in plays:
            assert isinstance(play, dict), f"{role}: a play is not a mapping"
            assert play.get("hosts"), f"{role}: a play without hosts"
    uses = [
        play
        for block in blocks
        for play in yaml.safe_load(block)
        if role in str(play.get("roles", "")) or role in str(play.get("tasks", ""))
    ]
    assert uses, f"{role}: no example play uses the role"
