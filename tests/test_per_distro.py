"""plugins/filter/per_distro.py: the per-distro vars file every host role loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from aws_support import load_module

ROOT = Path(__file__).resolve().parent.parent
pick = load_module(ROOT / "plugins/filter/per_distro.py", "per_distro").per_distro_vars_file


def facts_of(distribution: str, major: str, family: str) -> dict[str, str]:
    """A host's facts (the filter takes ansible_facts)."""
    return {"distribution": distribution, "distribution_major_version": major, "os_family": family}


@pytest.fixture
def vars_dir(tmp_path: Path) -> Path:
    for name in ("main.yml", "Debian-12.yml", "RedHat-9.yml", "Amazon-2023.yml"):
        (tmp_path / name).write_text("---\n")
    return tmp_path


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (("Debian", "12", "Debian"), "Debian-12.yml"),
        (("Rocky", "9", "RedHat"), "RedHat-9.yml"),
        (("CentOS", "9", "RedHat"), "RedHat-9.yml"),
        (("Amazon", "2023", "RedHat"), "Amazon-2023.yml"),
    ],
)
def test_the_most_specific_file_wins(
    vars_dir: Path, host: tuple[str, str, str], expected: str
) -> None:
    assert pick(facts_of(*host), str(vars_dir), "demo") == str(vars_dir / expected)


def test_a_family_file_serves_its_whole_family(vars_dir: Path) -> None:
    (vars_dir / "RedHat.yml").write_text("---\n")
    assert pick(facts_of("Fedora", "41", "RedHat"), str(vars_dir), "demo").endswith("/RedHat.yml")


@pytest.mark.parametrize(
    ("facts", "named"),
    [(facts_of("Ubuntu", "24", "Debian"), "Ubuntu-24"), ({}, "gather the distribution facts")],
)
def test_an_unsupported_platform_is_named_with_the_supported_ones(
    vars_dir: Path, facts: dict[str, str], named: str
) -> None:
    with pytest.raises(AnsibleFilterError) as error:
        pick(facts, str(vars_dir), "demo")
    message = str(error.value)
    assert message.startswith("demo role: unsupported platform")
    assert named in message
    assert message.endswith("supported: Amazon-2023, Debian-12, RedHat-9")
