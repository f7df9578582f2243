#!/usr/bin/env python3
"""Build the app's wheel once on the controller, keyed by the source's content.

Usage: build_release.py SOURCE_DIR BUILD_DIR

The release id is ``<version>-<sha256 of the source files>[:12]``: the same
source always gives the same id (so a re-run changes nothing), any edit gives
a new one. The wheel and requirements.lock land in BUILD_DIR/<id>/; when they
are already there nothing is built. Prints one JSON object:
``{"id", "version", "wheel", "lock", "dir", "changed"}``.

The source is copied to a scratch directory first, so building never writes
into the app's tree (no build/ or egg-info left behind).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

# What goes into the release (and so into its id). Tests and benchmarks do not,
# nor caches and build leftovers.
INCLUDE = ("pyproject.toml", "requirements.lock", "README.md", "LICENSE", "src")
SKIP_DIRS = {"__pycache__", "build", "dist"}


def source_files(source: Path) -> list[Path]:
    files: list[Path] = []
    for name in INCLUDE:
        path = source / name
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            dirs = file.relative_to(source).parts[:-1]
            if (
                file.is_file()
                and file.suffix != ".pyc"
                and not any(d in SKIP_DIRS or d.endswith(".egg-info") for d in dirs)
            ):
                files.append(file)
    return files


def release_id(source: Path) -> tuple[str, str]:
    meta = tomllib.loads((source / "pyproject.toml").read_text("utf-8"))
    version = str(meta["project"]["version"])
    digest = hashlib.sha256()
    for path in source_files(source):
        digest.update(path.relative_to(source).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return version, f"{version}-{digest.hexdigest()[:12]}"


def build(source: Path, out: Path) -> Path:
    """Build into a scratch directory, then move the finished set into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cachedapp-build-", dir=out.parent) as scratch:
        tree = Path(scratch) / "src"
        for file in source_files(source):
            (tree / file.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, tree / file.relative_to(source))
        result = Path(scratch) / "release"
        pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet"]
        cmd = [*pip_wheel, "--wheel-dir", str(result), str(tree)]
        subprocess.run(cmd, check=True, stdout=sys.stderr)
        (wheel,) = result.glob("*.whl")
        shutil.copy2(source / "requirements.lock", result / "requirements.lock")
        shutil.rmtree(out, ignore_errors=True)
        result.rename(out)
        return out / wheel.name


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    source, build_dir = Path(argv[1]).resolve(), Path(argv[2]).resolve()
    if not (source / "requirements.lock").is_file():
        print(f"{source}/requirements.lock is missing", file=sys.stderr)
        return 1
    version, rid = release_id(source)
    out = build_dir / rid
    wheels = sorted(out.glob("*.whl")) if out.is_dir() else []
    changed = not (wheels and (out / "requirements.lock").is_file())
    wheel = build(source, out) if changed else wheels[0]
    print(
        json.dumps(
            {
                "id": rid,
                "version": version,
                "wheel": str(wheel),
                "lock": str(out / "requirements.lock"),
                "dir": str(out),
                "changed": changed,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
