"""The API through a brief outage of its app database: 503 SERVICE_UNAVAILABLE (not 500) while it
cannot accept work, and back to normal by itself. And a worker's warm shutdown finishes its work."""

from __future__ import annotations

import signal
import time
from urllib.parse import urlsplit

import httpx
import pytest
from support.llm_server import LlmServer
from support.services import RedisServer, TcpProxy
from support.stack import Stack, base_env, cli, wait_terminal

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("outages")]


def _via_proxy(url: str, port: int) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}").geturl()


def test_app_database_outage_gives_503_then_recovers(tmp_path, pg_app_url, redis_url) -> None:  # type: ignore[no-untyped-def]
    proxy = TcpProxy(urlsplit(pg_app_url).port or 5432).start()
    stack = Stack(
        env=base_env(SQLAGENT_DATABASE_URL=_via_proxy(pg_app_url, proxy.port), SQLAGENT_BROKER_URL=redis_url),
        workdir=tmp_path,
    )
    try:
        assert cli("migrate", env=stack.env).returncode == 0
        stack.create_user("olive", "olive-password")
        stack.start_api()
        token = stack.token("olive", "olive-password")
        with httpx.Client(
            base_url=stack.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as c:
            assert c.post("/api/queries", json={"question": "before the outage"}).status_code == 202
            proxy.stop()
            down = [c.post("/api/queries", json={"question": "during the outage"}) for _ in range(3)]
            for resp in down:
                assert resp.status_code == 503, resp.text
                assert resp.json()["error_code"] == "SERVICE_UNAVAILABLE"
            ready = c.get("/ready")
            assert ready.status_code == 503 and "database" in ready.json()["detail"]
            proxy = TcpProxy(proxy.target_port, port=proxy.port).start()
            deadline = time.monotonic() + 30
            while True:
                resp = c.post("/api/queries", json={"question": "after the outage"})
                if resp.status_code == 202 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert resp.status_code == 202, resp.text
            assert c.get("/ready").status_code == 200
    finally:
        stack.stop()
        proxy.stop()


def test_warm_shutdown_finishes_the_running_attempt(tmp_path) -> None:  # type: ignore[no-untyped-def]
    redis = RedisServer(tmp_path).start()
    with LlmServer(
        {"default": {"delay_s": 2, "then": {"sql": "SELECT 1 AS one", "explanation": "one"}}}
    ) as llm:
        stack = Stack(
            env=base_env(
                SQLAGENT_DATABASE_URL=f"sqlite:///{tmp_path}/app.db",
                SQLAGENT_BROKER_URL=redis.url,
                SQLAGENT_LLM_BASE_URL=llm.base_url,
                SQLAGENT_LEASE_S="30",
            ),
            workdir=tmp_path,
        )
        try:
            assert cli("migrate", env=stack.env).returncode == 0
            stack.create_user("wendy", "wendy-password")
            stack.start_api()
            worker = stack.start_worker()
            with stack.token_client("wendy", "wendy-password") as client:
                attempt_id = client.post("/api/queries", json={"question": "finish me"}).json()["id"]
                deadline = time.monotonic() + 20
                while client.get(f"/api/queries/{attempt_id}").json()["status"] != "generating":
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
                worker.proc.send_signal(signal.SIGTERM)
                assert worker.proc.wait(30) == 0
                # Finished by the worker that was told to stop, not by a reaper (lease is 30 s).
                final = wait_terminal(client, attempt_id, timeout=5)
            assert final["status"] == "succeeded", final
        finally:
            stack.stop()
            redis.stop()
