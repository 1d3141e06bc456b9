"""Property-based fuzzing of the whole OpenAPI document, authenticated: no 5xx, and no status,
content type or body outside what the document declares."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support.llm_server import LlmServer
from support.stack import Stack, base_env, cli

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("schemathesis")]

BUDGET_S = 60
# Operations that would end the fuzzer's own credentials midway (they are tested elsewhere).
SELF_DESTRUCTIVE = [
    "--exclude-operation-id",
    "revoke_token",
    "--exclude-operation-id",
    "logout",
    "--exclude-operation-id",
    "change_password",
    "--exclude-path-regex",
    "^/api/admin/users/\\{",
]


def test_openapi_contract_holds_under_fuzzing(tmp_path: Path) -> None:
    with LlmServer({"default": {"sql": "SELECT 1 AS one", "explanation": "one"}}) as llm:
        stack = Stack(
            env=base_env(
                SQLAGENT_DATABASE_URL=f"sqlite:///{tmp_path}/app.db", SQLAGENT_LLM_BASE_URL=llm.base_url
            ),
            workdir=tmp_path,
        )
        assert cli("migrate", env=stack.env).returncode == 0
        stack.create_user("fuzz", "fuzz-password", admin=True)
        stack.start_api()
        try:
            token = stack.token("fuzz", "fuzz-password")
            run = subprocess.run(
                [
                    str(Path(__import__("sys").executable).parent / "schemathesis"),
                    "run",
                    f"{stack.base_url}/schema/openapi.json",
                    "-H",
                    f"Authorization: Bearer {token}",
                    "--checks",
                    "not_a_server_error,status_code_conformance,content_type_conformance,"
                    "response_schema_conformance",
                    "--max-time",
                    str(BUDGET_S),
                    "--workers",
                    "2",
                    "--seed",
                    "1",
                    *SELF_DESTRUCTIVE,
                ],
                capture_output=True,
                text=True,
                timeout=BUDGET_S * 4,
                check=False,
                cwd=tmp_path,
            )
        finally:
            stack.stop()
    assert run.returncode == 0, run.stdout[-6000:] + "\n" + stack.logs()[-4000:]
