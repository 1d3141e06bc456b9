"""Liveness and readiness of a real API process: /ready answers 503 naming the failed component
while its own Redis (broker and events) is down, and 200 again once it is back; /health never
looks at dependencies."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.services import RedisServer
from support.stack import Stack, base_env, cli

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("ready")]


def _until(url: str, status: int, timeout: float = 20) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        resp = httpx.get(url, timeout=10)
        if resp.status_code == status or time.monotonic() > deadline:
            return resp
        time.sleep(0.1)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:  # type: ignore[no-untyped-def]
    server = RedisServer(tmp_path_factory.mktemp("ready-redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(tmp_path_factory, redis_server: RedisServer) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("ready")
    stack = Stack(
        env=base_env(SQLAGENT_DATABASE_URL=f"sqlite:///{tmp}/app.db", SQLAGENT_BROKER_URL=redis_server.url),
        workdir=tmp,
    )
    assert cli("migrate", env=stack.env).returncode == 0
    stack.start_api()
    yield stack
    stack.stop()


def test_ready_when_everything_is_up(api: Stack) -> None:
    resp = httpx.get(f"{api.base_url}/ready", timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"status": "ok", "components": {"database": "ok", "broker": "ok", "redis": "ok"}}


def test_ready_names_redis_while_it_is_down_and_recovers(
    api: Stack, redis_server: RedisServer, tmp_path: Path
) -> None:
    redis_server.stop()
    try:
        resp = _until(f"{api.base_url}/ready", 503)
        assert resp.status_code == 503, resp.text
        body = resp.json()
        assert body["error_code"] == "SERVICE_UNAVAILABLE" and body["status"] == "unavailable"
        assert "redis" in body["detail"] and "broker" in body["detail"] and "database" not in body["detail"]
        assert body["components"]["database"] == "ok"
        assert body["components"]["redis"] != "ok" and body["components"]["broker"] != "ok"
        # Liveness does not depend on Redis.
        assert httpx.get(f"{api.base_url}/health", timeout=10).json() == {"status": "ok"}
    finally:
        redis_server.start()
    resp = _until(f"{api.base_url}/ready", 200)
    assert resp.status_code == 200, resp.text


def test_ready_names_pending_migrations(tmp_path: Path, redis_server: RedisServer) -> None:
    # An app database nobody migrated: the API starts, but is not ready.
    stack = Stack(
        env=base_env(
            SQLAGENT_DATABASE_URL=f"sqlite:///{tmp_path}/fresh.db", SQLAGENT_BROKER_URL=redis_server.url
        ),
        workdir=tmp_path,
    )
    try:
        stack.start_api()
        resp = httpx.get(f"{stack.base_url}/ready", timeout=10)
        assert resp.status_code == 503, resp.text
        body = resp.json()
        assert body["error_code"] == "SERVICE_UNAVAILABLE" and "database" in body["detail"]
        assert body["components"]["broker"] == "ok" and body["components"]["database"] != "ok"
        assert cli("migrate", env=stack.env).returncode == 0
        assert httpx.get(f"{stack.base_url}/ready", timeout=10).status_code == 200
    finally:
        stack.stop()


def test_embedded_mode_has_nothing_to_reach(tmp_path: Path) -> None:
    stack = Stack(env=base_env(SQLAGENT_DATABASE_URL=f"sqlite:///{tmp_path}/app.db"), workdir=tmp_path)
    assert cli("migrate", env=stack.env).returncode == 0
    try:
        stack.start_api()
        resp = httpx.get(f"{stack.base_url}/ready", timeout=10)
        assert resp.status_code == 200, resp.text
        assert resp.json()["components"] == {"database": "ok", "broker": "in-process", "redis": "in-process"}
    finally:
        stack.stop()
