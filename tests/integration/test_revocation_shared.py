"""Two API processes on one Redis: a credential change made through one is honoured by the
other at once, although each caches API tokens (api/auth/credentials.py)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from support.identity import assert_error, bearer, login, make_user, session, start_stack
from support.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("revocation-shared")]

# The broadcast reaches the other process within milliseconds; the loop only absorbs scheduling.
DEADLINE_S = 1.0
JSON = {"Content-Type": "application/json"}  # cookie sessions: unsafe methods must be JSON (CSRF)


@pytest.fixture(scope="module")
async def pair(tmp_path_factory, redis_url) -> AsyncIterator[tuple[Stack, Stack, str]]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("revocation-shared")
    url = f"sqlite:///{tmp}/app.db"
    for name in ("a", "b"):
        (tmp / name).mkdir()
    first = await start_stack(tmp / "a", url, SQLAGENT_REDIS_URL=redis_url)
    second = await start_stack(tmp / "b", url, SQLAGENT_REDIS_URL=redis_url)
    try:
        yield first, second, url
    finally:
        second.stop()
        first.stop()


def refused_within(client: httpx.Client, path: str, status: int) -> tuple[int, int]:
    """(requests answered before `status` came, the last status seen)."""
    accepted = 0
    deadline = time.monotonic() + DEADLINE_S
    while True:
        got = client.get(path).status_code
        if got == status or time.monotonic() > deadline:
            return accepted, got
        accepted += 1


async def test_a_token_revoked_through_one_process_stops_working_on_the_other(pair) -> None:  # type: ignore[no-untyped-def]
    first, second, url = pair
    _, name, password = await make_user(url)
    with session(first.base_url, name, password) as a:
        created = a.post("/api/auth/tokens", json={"name": "script"}).json()
    with bearer(second.base_url, created["token"]) as b, bearer(first.base_url, created["token"]) as a:
        for _ in range(3):  # now cached in the second process
            assert b.get("/api/auth/me").status_code == 200
        assert a.delete(f"/api/auth/tokens/{created['id']}").status_code == 204
        accepted, last = refused_within(b, "/api/auth/me", 401)
    assert last == 401 and accepted == 0
    assert_error(
        httpx.get(f"{second.base_url}/api/auth/me", headers={"Authorization": f"Bearer {created['token']}"}),
        401,
        "AUTH_SESSION_INVALID",
    )


async def test_deactivation_and_demotion_through_one_process_apply_on_the_other(pair) -> None:  # type: ignore[no-untyped-def]
    first, second, url = pair
    _, admin_name, admin_password = await make_user(url, role="admin")
    user_id, name, password = await make_user(url, role="admin")
    with session(first.base_url, name, password) as own:
        token = own.post("/api/auth/tokens", json={"name": "script"}).json()["token"]
    with bearer(second.base_url, token) as b, session(first.base_url, admin_name, admin_password) as admin:
        assert b.get("/api/admin/users").status_code == 200  # an admin, cached as one
        assert admin.patch(f"/api/admin/users/{user_id}", json={"role": "user"}).status_code == 200
        accepted, last = refused_within(b, "/api/admin/users", 403)
        assert last == 403 and accepted == 0
        assert admin.delete(f"/api/admin/users/{user_id}", headers=JSON).status_code == 204
        accepted, last = refused_within(b, "/api/auth/me", 401)
        assert last == 401 and accepted == 0
    assert login(second.base_url, name, password).status_code == 401
