"""Two API processes on one Redis share their rate-limit counters: what one process counted, the
other enforces (SPEC "Rate limits": counters live in Redis, so every API process shares them)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support.identity import assert_error, clear_rate_limits, login, make_user, session, start_stack
from support.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("ratelimit-shared")]

LIMITS = {
    "SQLAGENT_RATE_LIMITS": "true",
    "SQLAGENT_RATE_SUBMIT_PER_MIN": "3",
    "SQLAGENT_RATE_LOGIN_FAILURES_PER_15MIN": "3",
    # No SQLAGENT_TRUSTED_PROXIES: X-Forwarded-For must be ignored.
}


@pytest.fixture(scope="module")
async def pair(tmp_path_factory, redis_url) -> AsyncIterator[tuple[Stack, Stack, str]]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("ratelimit-shared")
    url = f"sqlite:///{tmp}/app.db"
    clear_rate_limits(redis_url)
    for name in ("a", "b"):
        (tmp / name).mkdir()
    # The same app database and the same Redis; two processes, each with its own memory.
    first = await start_stack(tmp / "a", url, SQLAGENT_REDIS_URL=redis_url, **LIMITS)
    second = await start_stack(tmp / "b", url, SQLAGENT_REDIS_URL=redis_url, **LIMITS)
    try:
        yield first, second, url
    finally:
        second.stop()
        first.stop()
        clear_rate_limits(redis_url)


async def test_submissions_counted_by_one_process_are_limited_by_the_other(pair) -> None:  # type: ignore[no-untyped-def]
    first, second, url = pair
    _, name, password = await make_user(url)
    with session(first.base_url, name, password) as a, session(second.base_url, name, password) as b:
        assert [a.post("/api/queries", json={"question": f"q{i}"}).status_code for i in range(2)] == [
            202,
            202,
        ]
        assert b.post("/api/queries", json={"question": "q2"}).status_code == 202
        for client in (a, b):
            refused = client.post("/api/queries", json={"question": "one too many"})
            assert_error(refused, 429, "RATE_LIMIT_EXCEEDED")
            assert 1 <= int(refused.headers["retry-after"]) <= 120


async def test_failed_logins_counted_by_one_process_are_limited_by_the_other(pair, redis_url) -> None:  # type: ignore[no-untyped-def]
    first, second, url = pair
    _, name, password = await make_user(url)
    try:
        assert login(first.base_url, name, "wrong").status_code == 401
        assert login(second.base_url, name, "wrong").status_code == 401
        assert login(first.base_url, name, "wrong").status_code == 401
        for stack in (second, first):  # even with the right password
            refused = login(stack.base_url, name, password)
            assert_error(refused, 429, "RATE_LIMIT_EXCEEDED")
            assert 1 <= int(refused.headers["retry-after"]) <= 1800
    finally:
        clear_rate_limits(redis_url)  # 127.0.0.1 is every test's address
    assert login(second.base_url, name, password).status_code == 200


async def test_x_forwarded_for_is_not_believed_without_trusted_proxies(pair, redis_url) -> None:  # type: ignore[no-untyped-def]
    first, second, url = pair
    _, name, password = await make_user(url)
    try:
        for index, stack in enumerate((first, second, first)):
            assert (
                login(stack.base_url, name, "wrong", forwarded_for=f"198.51.100.{index}").status_code == 401
            )
        # Three failures from 127.0.0.1, whatever the client claimed: a fresh claim buys nothing.
        refused = login(second.base_url, name, password, forwarded_for="198.51.100.9")
        assert refused.status_code == 429, (
            "X-Forwarded-For from an untrusted peer was believed (uvicorn's proxy_headers must be off: "
            "SQLAGENT_TRUSTED_PROXIES alone decides)"
        )
    finally:
        clear_rate_limits(redis_url)
