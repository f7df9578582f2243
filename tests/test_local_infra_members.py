"""The local stack's members (roles/local_infra/filter_plugins): who gets which
fixed address and which published ports, for the shapes the scenarios use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_support import load_module

PLUGIN = (
    Path(__file__).resolve().parent.parent
    / "roles/local_infra/filter_plugins/local_infra_members.py"
)
NUMBERS = {"db": 10, "cache": 11, "lb": 20, "monitor": 30, "web": 100}


def members(**overrides: Any) -> dict[str, dict[str, Any]]:
    args: dict[str, Any] = {
        "numbers": NUMBERS,
        "web_count": 1,
        "lb": False,
        "monitor": False,
        "bind": "127.0.0.1",
        "http_port": 8080,
        "https_port": 8443,
        "prometheus_port": 9090,
    } | overrides
    subnet = args.pop("subnet", "10.230.82.0/24")
    found = load_module(PLUGIN, "local_infra_members").local_infra_members(subnet, **args)
    by_name = {m["name"]: m for m in found}
    assert len(by_name) == len(found), "duplicate member names"
    return by_name


def test_single_web_host_fronts_the_stack() -> None:
    got = members()
    assert list(got) == ["db", "cache", "web-1"]
    assert got["db"] == {"name": "db", "group": "db", "address": "10.230.82.10", "ports": []}
    assert got["web-1"]["ports"] == ["127.0.0.1:8080:80", "127.0.0.1:8443:443"]
    assert got["cache"]["ports"] == []


def test_balancer_takes_the_ports_and_comes_last() -> None:
    got = members(web_count=3, lb=True, monitor=True, https_port=0)
    assert list(got) == ["db", "cache", "monitor", "web-1", "web-2", "web-3", "lb"]
    assert [got[f"web-{i}"]["address"] for i in (1, 2, 3)] == [
        "10.230.82.101",
        "10.230.82.102",
        "10.230.82.103",
    ]
    assert all(got[f"web-{i}"]["ports"] == [] for i in (1, 2, 3))
    # HTTPS off (port 0): HTTP only.
    assert got["lb"] == {
        "name": "lb",
        "group": "lb",
        "address": "10.230.82.20",
        "ports": ["127.0.0.1:8080:80"],
    }
    assert got["monitor"]["ports"] == ["127.0.0.1:9090:9090"]


@pytest.mark.parametrize("subnet", ["10.230.84.0/24", "10.230.84.77/24"])
def test_addresses_follow_the_subnet(subnet: str) -> None:
    got = members(subnet=subnet, bind="0.0.0.0", numbers=NUMBERS | {"web": 200})
    assert got["web-1"]["address"] == "10.230.84.201"
    assert got["web-1"]["ports"][0] == "0.0.0.0:8080:80"
