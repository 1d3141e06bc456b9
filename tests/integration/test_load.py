"""The issue's load test: 50 concurrent users submitting and polling 5,000 attempts — every one
ends, none is lost or run twice, and the counts each user sees add up (about a minute here)."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
import httpx
import pytest
from support.llm_server import LlmServer
from support.stack import Stack, base_env, cli

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("load")]

USERS = 50
PER_USER = 100
TERMINAL = {"succeeded", "failed", "rejected", "timed_out", "cancelled"}


async def _user_session(base_url: str, token: str, n: int) -> list[str]:
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as c:
        ids = []
        for i in range(n):
            resp = await c.post("/api/queries", json={"question": f"load question {i}"})
            assert resp.status_code == 202, resp.text
            ids.append(resp.json()["id"])
        pending = set(ids)
        for _ in range(600):
            for attempt_id in list(pending):
                if (await c.get(f"/api/queries/{attempt_id}")).json()["status"] in TERMINAL:
                    pending.discard(attempt_id)
            if not pending:
                break
            await asyncio.sleep(0.1)
        assert not pending, f"{len(pending)} attempts never ended"
        listed = (await c.get("/api/queries", params={"page_size": 100})).json()
        assert listed["pagination"]["total_count"] == n
        return ids


def test_concurrent_users(tmp_path, pg_app_url, redis_url) -> None:  # type: ignore[no-untyped-def]
    with LlmServer({"default": {"sql": "SELECT 1 AS one", "explanation": "one"}}) as llm:
        stack = Stack(
            env=base_env(
                SQLAGENT_DATABASE_URL=pg_app_url,
                SQLAGENT_BROKER_URL=redis_url,
                SQLAGENT_LLM_BASE_URL=llm.base_url,
                SQLAGENT_REDISPATCH_AFTER_S="60",
            ),
            workdir=tmp_path,
        )
        assert cli("migrate", env=stack.env).returncode == 0
        stack.create_user("boss", "boss-password", admin=True)
        stack.start_api()
        stack.start_worker(concurrency=16)
        try:
            with stack.client("boss", "boss-password") as admin:
                tokens = []
                for u in range(USERS):
                    name = f"load{u}"
                    assert (
                        admin.post(
                            "/api/admin/users",
                            json={"username": name, "password": "pw-" + name * 2, "role": "user"},
                        ).status_code
                        == 201
                    )
                    with stack.client(name, "pw-" + name * 2) as session:
                        tokens.append(session.post("/api/auth/tokens", json={"name": "load"}).json()["token"])

            async def everyone() -> list[list[str]]:
                return await asyncio.gather(*(_user_session(stack.base_url, t, PER_USER) for t in tokens))

            per_user = asyncio.run(everyone())
        finally:
            stack.stop()

    all_ids = [i for ids in per_user for i in ids]
    assert len(all_ids) == len(set(all_ids)) == USERS * PER_USER

    async def audit() -> tuple[Counter[str], list[tuple[str, int]]]:
        conn = await asyncpg.connect(pg_app_url)
        try:
            statuses = Counter(
                r["status"]
                for r in await conn.fetch("SELECT status FROM attempts WHERE id = ANY($1)", all_ids)
            )
            # Each attempt was claimed (and run) exactly once: one `generating` event each.
            runs = await conn.fetch(
                """SELECT attempt_id, count(*) AS n FROM attempt_events
                   WHERE attempt_id = ANY($1) AND status = 'generating' GROUP BY attempt_id HAVING count(*) <> 1""",
                all_ids,
            )
            return statuses, [(r["attempt_id"], r["n"]) for r in runs]
        finally:
            await conn.close()

    statuses, reruns = asyncio.run(audit())
    assert statuses == Counter({"succeeded": USERS * PER_USER})
    assert reruns == []
