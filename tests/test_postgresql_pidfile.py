"""The PostgreSQL handler's reading of postmaster.pid (roles/postgresql/filter_plugins)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_support import load_module

PLUGIN = Path(__file__).resolve().parent.parent / "roles/postgresql/filter_plugins"
port = load_module(PLUGIN / "postgresql_pidfile.py", "postgresql_pidfile").postmaster_port

# As PostgreSQL 15 writes it (a server on port 5433 listening on one address).
PIDFILE = (
    "1234\n/var/lib/postgresql/15/main\n1764390000\n5433\n/var/run/postgresql\n"
    "10.0.0.5\n  5433001     32768\nready   \n"
)


def test_the_port_is_the_fourth_line() -> None:
    assert port(PIDFILE) == 5433
    assert port(PIDFILE.replace("\n5433\n", "\n6543\n", 1)) == 6543


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1234\n/var/lib/postgresql/15/main\n",
        "not-a-pid\na\nb\n5432\n",
        "1\na\nb\n0\n",
        "1\na\nb\n70000\n",
    ],
)
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"postmaster\.pid|invalid literal"):
        port(text)
