"""roles/app/files/build_release.py: the release id covers the app's source and
nothing a build or a test run leaves behind, so an unchanged source is an
unchanged release (and a re-run deploys nothing)."""

from __future__ import annotations

from pathlib import Path

from aws_support import load_module

ROOT = Path(__file__).resolve().parent.parent
build_release = load_module(ROOT / "roles/app/files/build_release.py", "build_release")


def source(tmp_path: Path) -> Path:
    tree = tmp_path / "app"
    (tree / "src" / "cachedapp").mkdir(parents=True)
    (tree / "pyproject.toml").write_text('[project]\nname = "cachedapp"\nversion = "1.2.3"\n')
    (tree / "requirements.lock").write_text("flask==3.0.0\n")
    (tree / "src" / "cachedapp" / "__init__.py").write_text("")
    return tree


def test_leftovers_change_neither_the_id_nor_the_files(tmp_path: Path) -> None:
    tree = source(tmp_path)
    version, rid = build_release.release_id(tree)
    files = build_release.source_files(tree)
    assert version == "1.2.3"
    assert rid.startswith("1.2.3-")
    for leftover in (
        "src/cachedapp/__pycache__/x.cpython-311.pyc",
        "src/cachedapp/stale.pyc",
        "src/cachedapp.egg-info/PKG-INFO",
        "src/build/lib/x.py",
        "src/dist/x.whl",
        "tests/test_x.py",  # not in the release
    ):
        (tree / leftover).parent.mkdir(parents=True, exist_ok=True)
        (tree / leftover).write_text("x")
    assert build_release.release_id(tree) == (version, rid)
    assert build_release.source_files(tree) == files


def test_an_edit_is_a_new_release(tmp_path: Path) -> None:
    tree = source(tmp_path)
    _, rid = build_release.release_id(tree)
    (tree / "src" / "cachedapp" / "__init__.py").write_text("# edited\n")
    assert build_release.release_id(tree)[1] != rid
