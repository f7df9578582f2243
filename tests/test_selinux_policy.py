"""The app role's SELinux pieces, checked on this Debian machine (no EL host).

- files/selinux/cachedapp.te compiles with Debian's checkpolicy (checkmodule -M -m:
  a module with require blocks needs no base policy) and packages with
  semodule-utils (semodule_package), as tasks/selinux.yml does on the host; the
  compiled module, dumped as CIL, holds the httpd_t -> unconfined_service_t
  connectto rule and nothing wider. A syntax or declaration error fails here.

The tools come from `scripts/ensure-test-tools.sh selinux` (make test-unit); the
compile tests fail, not skip, without them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROLE = ROOT / "roles" / "app"
TE = ROLE / "files" / "selinux" / "cachedapp.te"


@pytest.fixture
def policy_tools() -> None:
    """The compile tests fail, not skip, without the tools."""
    missing = [t for t in ("checkmodule", "semodule_package") if not shutil.which(t)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: install Debian's checkpolicy and semodule-utils "
            "(scripts/ensure-test-tools.sh selinux; make test-unit does)"
        )


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
