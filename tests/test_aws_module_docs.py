"""The documentation of every module in roles/aws_infra/library: DOCUMENTATION,
EXAMPLES and RETURN parse as YAML, the documented options are exactly the
argument spec's, and ansible-doc renders the module (it refuses one whose
DOCUMENTATION does not parse).

Documented and accepted options are compared both ways, with their aliases and
suboptions: an option of the argument spec missing from the documentation fails
as much as a documented option the module does not accept. The argument spec is
the one main() really builds: the module runs with a stand-in for
AnsibleAWSModule/AnsibleModule that records its arguments and stops it. The
documented options are ansible-doc's, so the ones of the
extends_documentation_fragment fragments (amazon.aws's connection options,
tags/purge_tags) count; AnsibleAWSModule adds the connection options to the
module's argument spec, so the comparison does too."""

from __future__ import annotations

import functools
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.amazon.aws.plugins.module_utils.modules import aws_argument_spec
from aws_support import LIBRARY, VENV_BIN, load_module

MODULES = sorted(LIBRARY.glob("*.py"))
MODULE_CLASSES = ("AnsibleAWSModule", "AnsibleModule")


class _Constructed(Exception):
    """The module class was constructed: main() goes no further."""

    def __init__(self, cls: str, kwargs: dict[str, Any]) -> None:
        super().__init__(cls)
        self.cls = cls
        self.kwargs = kwargs


def _recorder(cls: str) -> type:
    class Recorder:
        def __init__(self, **kwargs: Any) -> None:
            raise _Constructed(cls, kwargs)

    return Recorder


def argument_spec(path: Path) -> dict[str, Any]:
    """The argument spec the module at ``path`` really takes: what its main()
    hands the module class, with AnsibleAWSModule's connection options (unless
    the module passes default_args=False)."""
    module = load_module(path, f"{path.stem}_spec")
    used = [name for name in MODULE_CLASSES if hasattr(module, name)]
    assert used, f"{path.name} imports none of {', '.join(MODULE_CLASSES)}"
    for name in used:
        setattr(module, name, _recorder(name))
    with pytest.raises(_Constructed) as constructed:
        module.main()
    cls, kwargs = constructed.value.cls, constructed.value.kwargs
    spec = dict(kwargs["argument_spec"])
    if cls == "AnsibleAWSModule" and kwargs.get("default_args", True):
        spec = {**aws_argument_spec(), **spec}
    return spec


@functools.cache
def ansible_doc(stem: str) -> dict[str, Any]:
    """The module's documentation as ansible-doc --json gives it (its
    extends_documentation_fragment fragments merged in)."""
    result = subprocess.run(
        [str(VENV_BIN / "ansible-doc"), "--json", "-M", str(LIBRARY), stem],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[stem]["doc"]


def mismatches(documented: dict[str, Any], spec: dict[str, Any], where: str = "") -> Iterator[str]:
    """How documented options (with aliases and suboptions) and argument-spec
    options differ, one line per difference."""
    for name in sorted(documented.keys() - spec.keys()):
        yield f"{where}{name}: documented, not in the argument spec"
    for name in sorted(spec.keys() - documented.keys()):
        yield f"{where}{name}: in the argument spec, not documented"
    for name in sorted(documented.keys() & spec.keys()):
        doc_option, spec_option = documented[name] or {}, spec[name] or {}
        doc_aliases = sorted(doc_option.get("aliases") or [])
        spec_aliases = sorted(spec_option.get("aliases") or [])
        if doc_aliases != spec_aliases:
            yield (
                f"{where}{name}: documented aliases {doc_aliases}, "
                f"argument spec aliases {spec_aliases}"
            )
        yield from mismatches(
            doc_option.get("suboptions") or {},
            spec_option.get("options") or {},
            f"{where}{name}.",
        )


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_documentation_parses_and_names_the_argument_spec(path: Path) -> None:
    module = load_module(path, f"{path.stem}_docs")
    doc = yaml.safe_load(module.DOCUMENTATION)
    yaml.safe_load(module.EXAMPLES)
    yaml.safe_load(module.RETURN)
    assert doc["module"] == path.stem
    differences = list(mismatches(ansible_doc(path.stem)["options"], argument_spec(path)))
    assert not differences, "\n".join(differences)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_ansible_doc_renders_the_module(path: Path) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "ansible-doc"), "-M", str(LIBRARY), path.stem],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
