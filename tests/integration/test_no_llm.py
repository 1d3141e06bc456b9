"""Without an LLM, on PostgreSQL and Redis (not only in the demo): the knowledge base answers
close matches by itself, and anything else fails with LLM_NOT_CONFIGURED."""

from __future__ import annotations

import pytest
from integration.conftest import demo_rows
from support.stack import Stack, base_env, cli, wait_terminal

from shared.demo import load_examples

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("no-llm")]


def test_knowledge_answers_without_llm_on_postgres_and_redis(tmp_path, pg_app_url, redis_url) -> None:  # type: ignore[no-untyped-def]
    stack = Stack(
        env=base_env(SQLAGENT_DATABASE_URL=pg_app_url, SQLAGENT_BROKER_URL=redis_url), workdir=tmp_path
    )
    assert cli("migrate", env=stack.env).returncode == 0
    stack.create_user("curator", "curator-password", admin=True)
    stack.start_api()
    stack.start_worker()
    example = load_examples()[3]
    try:
        with stack.client("curator", "curator-password") as client:
            resp = client.post("/api/knowledge", json={"question": example.question, "sql": example.sql})
            assert resp.status_code == 201, resp.text

            # A rephrasing close enough to the verified question.
            asked = example.question.rstrip("?") + " please?"
            known = wait_terminal(client, client.post("/api/queries", json={"question": asked}).json()["id"])
            assert known["status"] == "succeeded" and known["rounds"] == 0, known
            rows = client.get(f"/api/queries/{known['id']}/results", params={"page_size": 1000}).json()[
                "rows"
            ]
            assert rows == demo_rows(example.sql)

            novel = client.post("/api/queries", json={"question": "Which planet has the most moons?"}).json()
            novel = wait_terminal(client, novel["id"])
            assert (novel["status"], novel["error_code"]) == ("failed", "LLM_NOT_CONFIGURED")
    finally:
        stack.stop()
