"""The redis role's runtime drift check (roles/redis/filter_plugins/redis_config.py)."""

from __future__ import annotations

from pathlib import Path

from aws_support import load_module

PLUGIN = Path(__file__).resolve().parent.parent / "roles/redis/filter_plugins/redis_config.py"
drift = load_module(PLUGIN, "redis_config").redis_config_drift

EXPECTED = {"maxmemory-policy": "allkeys-lru", "port": "6379", "save": ""}


def test_matching_settings_report_nothing() -> None:
    lines = ["port", "6379", "maxmemory-policy", "allkeys-lru", "save", "", "hz", "10"]
    assert drift(lines, EXPECTED) == []


def test_each_changed_or_missing_setting_by_name() -> None:
    """CONFIG SET drift, a value compared as text, and a setting the server does not
    report at all; an empty last value is still a value."""
    lines = ["port", "6379", "maxmemory-policy", "noeviction", "save", "3600 1"]
    assert drift(lines, EXPECTED) == [
        "maxmemory-policy is 'noeviction', managed 'allkeys-lru'",
        "save is '3600 1', managed ''",
    ]
    assert drift(["save", ""], {"port": 6379, "save": ""}) == ["port is '?', managed '6379'"]
