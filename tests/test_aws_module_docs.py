"""The documentation of every module in roles/aws_infra/library: DOCUMENTATION,
EXAMPLES and RETURN parse as YAML, every documented option is in the argument
spec, and ansible-doc renders the module (it refuses one whose DOCUMENTATION
does not parse)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from aws_support import LIBRARY, VENV_BIN, load_module

MODULES = sorted(LIBRARY.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_documentation_parses_and_names_the_argument_spec(path: Path) -> None:
    module = load_module(path, f"{path.stem}_docs")
    doc = yaml.safe_load(module.DOCUMENTATION)
    yaml.safe_load(module.EXAMPLES)
    yaml.safe_load(module.RETURN)
    assert doc["module"] == path.stem
    source = path.read_text()
    for option in doc["options"]:
        assert f'"{option}":' in source, f"documented option {option} not in the argument spec"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_ansible_doc_renders_the_module(path: Path) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "ansible-doc"), "-M", str(LIBRARY), path.stem],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
