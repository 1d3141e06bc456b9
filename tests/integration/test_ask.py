"""`sqlagent ask` as a user runs it: a subprocess against a real API and worker. It follows the
SSE stream, prints the SQL and the rows as a table, and exits non-zero with the error code."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from integration.conftest import demo_rows
from support.stack import REPO, Stack, base_env, cli

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("ask")]

TOP = "SELECT name, unit_price FROM products ORDER BY unit_price DESC, name LIMIT 3"


@pytest.fixture(scope="module")
def ask_stack(request, tmp_path_factory, redis_url, llm) -> Iterator[tuple[Stack, str]]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("ask")
    stack = Stack(
        env=base_env(
            SQLAGENT_DATABASE_URL=f"sqlite:///{tmp}/app.db",
            SQLAGENT_BROKER_URL=redis_url,
            SQLAGENT_LLM_BASE_URL=llm.base_url,
            SQLAGENT_ROW_CAP="2",
        ),
        workdir=tmp,
    )
    assert cli("migrate", env=stack.env).returncode == 0
    stack.create_user("alice", "alice-password")
    try:
        stack.start_api()
        stack.start_worker()
        yield stack, stack.token("alice", "alice-password")
    finally:
        stack.stop()
        if request.session.testsfailed:
            print(stack.logs())


def ask(stack: Stack, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**stack.env, "COLUMNS": "200"}
    if token is not None:
        env["SQLAGENT_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "ask", *args, "--server", stack.base_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )


def test_ask_prints_the_sql_and_the_rows(ask_stack, llm) -> None:  # type: ignore[no-untyped-def]
    stack, token = ask_stack
    question = "Which are the two most expensive products? (ask)"
    sql = "SELECT name, unit_price FROM products ORDER BY unit_price DESC, name LIMIT 2"
    llm.add(question, {"sql": sql, "explanation": "by unit price"})
    result = ask(stack, question, token=token)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert sql in out and "by unit price" in out
    assert "name" in out and "unit_price" in out
    for name, price in demo_rows(sql):
        assert str(name) in out and str(price) in out
    assert "2 rows" in out and "truncated" not in out
    # Piped: the progress comes as one line per status, from the SSE stream.
    assert result.stderr.split() == ["queued", "generating", "validating", "executing", "succeeded"]


def test_ask_says_when_rows_were_truncated(ask_stack, llm) -> None:  # type: ignore[no-untyped-def]
    stack, token = ask_stack
    question = "Top three products by price (ask truncated)"
    llm.add(question, {"sql": TOP, "explanation": "by unit price"})
    result = ask(stack, question, "--token", token)
    assert result.returncode == 0, result.stderr
    assert "2 rows (truncated)" in result.stdout  # SQLAGENT_ROW_CAP=2 of 3
    assert str(demo_rows(TOP)[2][0]) not in result.stdout


def test_a_failed_attempt_exits_1_with_its_error_code(ask_stack, llm) -> None:  # type: ignore[no-untyped-def]
    stack, token = ask_stack
    question = "What will the weather be tomorrow? (ask)"
    llm.add(question, {"sql": None, "explanation": "There is no weather data."})
    result = ask(stack, question, token=token)
    assert result.returncode == 1
    assert "QUESTION_UNANSWERABLE" in result.stderr and "weather" in result.stderr


def test_a_rejected_query_shows_the_sql_and_the_code(ask_stack, llm) -> None:  # type: ignore[no-untyped-def]
    stack, token = ask_stack
    question = "Remove all customers (ask)"
    llm.add(question, {"sql": "DELETE FROM customers", "explanation": "as asked"})
    result = ask(stack, question, token=token)
    assert result.returncode == 1
    assert "DELETE FROM customers" in result.stdout and "SQL_REJECTED" in result.stderr


def test_bad_token_unknown_source_and_no_server(ask_stack) -> None:  # type: ignore[no-untyped-def]
    stack, token = ask_stack
    result = ask(stack, "How many customers?", "--token", "not-a-real-token")
    assert result.returncode == 1 and "AUTH_SESSION_INVALID" in result.stderr
    result = ask(stack, "How many customers?", "--data-source", "nope", token=token)
    assert result.returncode == 1 and "DATA_SOURCE_NOT_FOUND" in result.stderr
    result = ask(stack, "How many customers?")
    assert result.returncode == 2 and "SQLAGENT_TOKEN" in result.stderr
    closed = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "ask",
            "How many?",
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "t",
        ],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert closed.returncode == 2 and "CONNECTION_FAILED" in closed.stderr
