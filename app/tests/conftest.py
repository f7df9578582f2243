"""Fixtures for the app suite: real PostgreSQL, Redis and gunicorn on loopback.

The servers are started by app/scripts/test.sh (servers.sh); their description is
in the CGC_* environment variables it exports.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import DB_SLEEP, Servers, Stack, install_schema, write_config


@pytest.fixture(scope="session")
def servers() -> Servers:
    if not os.environ.get("CGC_APP_RUN"):
        pytest.fail("the servers are not running: use app/scripts/test.sh", pytrace=False)
    return Servers.from_env()


@pytest.fixture(scope="session")
def schema(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> None:
    """slow_version() with a short sleep, installed once through the real CLI."""
    config = write_config(tmp_path_factory.mktemp("schema") / "config.toml", servers)
    install_schema(config, DB_SLEEP)


@pytest.fixture
def namespace() -> str:
    """A fresh cache namespace per test (allowed by the ACL user's ~cachedapp* keys)."""
    return f"cachedapp-t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def stack(
    servers: Servers, schema: None, tmp_path: Path, namespace: str
) -> Iterator[Callable[..., Stack]]:
    """Start gunicorn apps with given config overrides; all stopped after the test."""
    started: list[Stack] = []

    def start(workers: int = 3, env: dict[str, str] | None = None, **sections: dict) -> Stack:
        sections.setdefault("cache", {})
        sections["cache"] = {"namespace": namespace, **sections["cache"]}
        name = f"app{len(started)}"
        app = Stack.start(servers, tmp_path / name, sections, workers=workers, env=env)
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()
