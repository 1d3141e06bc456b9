"""Identity and access on a live API process, over SQLite and PostgreSQL app databases: logins,
sessions, API tokens, CSRF, who sees which attempt, user administration, the error mapping and the
security headers. Rate limits are off here (tests/api/test_ratelimit.py turns them on)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from litestar import get
from litestar.testing import AsyncTestClient
from support.identity import assert_error, bearer, login, make_user, opened, session, start_stack
from support.pg import create_pg_database, drop_pg_database, pg_url
from support.stack import Stack

from api.app import create_app
from shared.db.database import Database, utcnow
from shared.db.migrate import migrate
from shared.settings import load_settings
from shared.users import passwords
from shared.users import repository as users

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("identity")]

JSON = {"Content-Type": "application/json"}
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@dataclass
class Api:
    stack: Stack
    url: str  # the app database
    root: tuple[int, str, str]  # an admin: id, name, password

    @property
    def base(self) -> str:
        return self.stack.base_url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def api(request, tmp_path_factory) -> AsyncIterator[Api]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp(f"identity-{request.param}")
    pg_name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp}/app.db"
    else:
        pg_name = await create_pg_database("sqlagent_identity")
        url = pg_url(pg_name)
    stack = await start_stack(tmp, url)
    try:
        await migrate(url)
        yield Api(stack, url, await make_user(url, "root", role="admin"))
    finally:
        stack.stop()
        if request.session.testsfailed:
            print(stack.logs())
        if pg_name:
            await drop_pg_database(pg_name)


def sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# --- logins and sessions ----------------------------------------------------------------------


async def test_login_sets_a_hardened_session_cookie(api: Api) -> None:
    user_id, name, password = await make_user(api.url)
    resp = login(api.base, name, password)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"user": {"id": user_id, "username": name, "role": "user"}}
    cookie = resp.headers["set-cookie"]
    attributes = {part.strip().split("=", 1)[0].lower(): part for part in cookie.split(";")[1:]}
    assert cookie.startswith("session_token=")
    assert "httponly" in attributes and attributes["samesite"].strip().lower() == "samesite=strict"
    assert attributes["max-age"].strip() == "Max-Age=28800" and attributes["path"].strip() == "Path=/"
    # SQLAGENT_COOKIE_SECURE=false (plain-HTTP tests): no Secure attribute, and no HSTS either.
    assert "secure" not in attributes and "strict-transport-security" not in resp.headers

    with session(api.base, name, password) as client:
        assert client.get("/api/auth/me").json() == {"id": user_id, "username": name, "role": "user"}


async def test_secrets_are_stored_only_as_digests_and_passwords_as_argon2id(api: Api) -> None:
    user_id, name, password = await make_user(api.url)
    with session(api.base, name, password) as client:
        cookie = client.cookies["session_token"]
        created = client.post("/api/auth/tokens", json={"name": "ci"})
        assert created.status_code == 201, created.text
        token = created.json()["token"]
    async with opened(api.url) as db:
        stored = await db.fetchval("SELECT password_hash FROM users WHERE id = $1", user_id)
        sessions = await db.fetch("SELECT token_hash FROM sessions WHERE user_id = $1", user_id)
        tokens = await db.fetch("SELECT token_hash, name FROM api_tokens WHERE user_id = $1", user_id)
    assert stored.startswith("$argon2id$") and password not in stored
    assert [r["token_hash"] for r in sessions] == [sha256(cookie)]
    assert [(r["token_hash"], r["name"]) for r in tokens] == [(sha256(token), "ci")]


async def test_failed_logins_all_look_the_same(api: Api) -> None:
    _, name, password = await make_user(api.url)
    inactive_id, inactive, inactive_password = await make_user(api.url)
    async with opened(api.url) as db:
        await users.update_user(db, inactive_id, role=None, active=False)
    answers = [
        login(api.base, name, "wrong-password"),
        login(api.base, f"nobody-{uuid.uuid4().hex[:6]}", password),
        login(api.base, inactive, inactive_password),
    ]
    bodies = [assert_error(r, 401, "AUTH_INVALID_CREDENTIALS") for r in answers]
    assert bodies[0] == bodies[1] == bodies[2]
    assert all("set-cookie" not in r.headers for r in answers)
    # Rate limits are off in this stack: a burst of failures is never 429.
    assert {login(api.base, name, "wrong").status_code for _ in range(6)} == {401}
    assert login(api.base, name, password).status_code == 200


async def test_missing_or_unknown_credentials_are_401(api: Api) -> None:
    assert_error(httpx.get(f"{api.base}/api/auth/me"), 401, "AUTH_SESSION_INVALID")
    assert_error(
        httpx.get(f"{api.base}/api/auth/me", cookies={"session_token": "forged"}), 401, "AUTH_SESSION_INVALID"
    )
    with bearer(api.base, "sqa_forged") as client:
        assert_error(client.get("/api/auth/me"), 401, "AUTH_SESSION_INVALID")
    basic = httpx.get(f"{api.base}/api/auth/me", headers={"Authorization": "Basic cm9vdDpyb290"})
    assert_error(basic, 401, "AUTH_SESSION_INVALID")


async def test_an_expired_session_is_401_session_expired(api: Api) -> None:
    _, name, password = await make_user(api.url)
    with session(api.base, name, password) as client:
        assert client.get("/api/auth/me").status_code == 200
        async with opened(api.url) as db:
            await db.execute(
                "UPDATE sessions SET expires_at = $2 WHERE token_hash = $1",
                sha256(client.cookies["session_token"]),
                utcnow() - timedelta(seconds=1),
            )
        assert_error(client.get("/api/auth/me"), 401, "AUTH_SESSION_EXPIRED")


async def test_logout_revokes_the_session(api: Api) -> None:
    _, name, password = await make_user(api.url)
    with session(api.base, name, password) as client:
        cookie = client.cookies["session_token"]
        resp = client.post("/api/auth/logout", headers=JSON)
        assert resp.status_code == 204
        assert "max-age=0" in resp.headers["set-cookie"].lower()
    # Replaying the old cookie (a client that ignored the deletion) does not work either.
    assert_error(
        httpx.get(f"{api.base}/api/auth/me", cookies={"session_token": cookie}), 401, "AUTH_SESSION_INVALID"
    )
    async with opened(api.url) as db:
        assert await db.fetchval("SELECT revoked_at FROM sessions WHERE token_hash = $1", sha256(cookie))


async def test_a_password_change_ends_the_other_sessions_but_not_this_one(api: Api) -> None:
    _, name, password = await make_user(api.url)
    with session(api.base, name, password) as other, session(api.base, name, password) as this:
        token = this.post("/api/auth/tokens", json={"name": "kept"}).json()["token"]
        wrong = this.post(
            "/api/auth/password", json={"current_password": "nope", "new_password": "n3w-password"}
        )
        assert_error(wrong, 400, "BAD_REQUEST")
        assert other.get("/api/auth/me").status_code == 200

        short = this.post("/api/auth/password", json={"current_password": password, "new_password": "short"})
        assert_error(short, 422, "VALIDATION_ERROR")

        changed = this.post(
            "/api/auth/password", json={"current_password": password, "new_password": "n3w-password"}
        )
        assert changed.status_code == 204, changed.text
        assert this.get("/api/auth/me").status_code == 200
        assert_error(other.get("/api/auth/me"), 401, "AUTH_SESSION_INVALID")
    assert_error(login(api.base, name, password), 401, "AUTH_INVALID_CREDENTIALS")
    assert login(api.base, name, "n3w-password").status_code == 200
    with bearer(api.base, token) as client:  # API tokens are not sessions: they stay
        assert client.get("/api/auth/me").status_code == 200


async def test_login_rehashes_a_password_hashed_with_older_parameters(api: Api) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    name = f"legacy-{uuid.uuid4().hex[:6]}"
    async with opened(api.url) as db:
        user = await users.create_user(
            db, username=name, password_hash=weak.hash("legacy-password"), role="user"
        )
        before = await db.fetchval("SELECT password_hash FROM users WHERE id = $1", user.id)
    assert passwords._hasher.check_needs_rehash(before)
    assert login(api.base, name, "legacy-password").status_code == 200
    async with opened(api.url) as db:
        after = await db.fetchval("SELECT password_hash FROM users WHERE id = $1", user.id)
    assert after != before and after.startswith("$argon2id$")
    assert not passwords._hasher.check_needs_rehash(after)
    assert login(api.base, name, "legacy-password").status_code == 200


# --- API tokens -------------------------------------------------------------------------------


async def test_api_tokens_are_shown_once_work_as_bearer_and_die_at_once(api: Api) -> None:
    user_id, name, password = await make_user(api.url)
    _, other_name, other_password = await make_user(api.url)
    with session(api.base, name, password) as client:
        resp = client.post("/api/auth/tokens", json={"name": "laptop"})
        assert resp.status_code == 201
        created = resp.json()
        assert set(created) == {"id", "name", "token", "created_at"} and created["name"] == "laptop"
        token = created["token"]

        with bearer(api.base, token) as tok:
            assert tok.get("/api/auth/me").json() == {"id": user_id, "username": name, "role": "user"}
            # Bearer works wherever a session does, and needs no JSON content type for CSRF.
            submitted = tok.post("/api/queries", json={"question": "How many customers are there?"})
            assert submitted.status_code == 202, submitted.text
            assert tok.get(f"/api/queries/{submitted.json()['id']}").status_code == 200

        listed = client.get("/api/auth/tokens").json()
        assert [t["name"] for t in listed["items"]] == ["laptop"] and "token" not in listed["items"][0]
        assert listed["items"][0]["last_used_at"] is not None
        assert listed["pagination"]["total_count"] == 1

        # Another user can neither see nor revoke it.
        with session(api.base, other_name, other_password) as other:
            assert other.get("/api/auth/tokens").json()["items"] == []
            assert other.delete(f"/api/auth/tokens/{created['id']}", headers=JSON).status_code == 404

        assert client.delete(f"/api/auth/tokens/{created['id']}", headers=JSON).status_code == 204
        with bearer(api.base, token) as tok:
            assert_error(tok.get("/api/auth/me"), 401, "AUTH_SESSION_INVALID")
        assert client.delete(f"/api/auth/tokens/{created['id']}", headers=JSON).status_code == 404
        assert client.get("/api/auth/tokens").json()["items"] == []

        with bearer(api.base, token) as tok:
            assert tok.post("/api/auth/logout").status_code == 401
        with bearer(api.base, client.post("/api/auth/tokens", json={"name": "x"}).json()["token"]) as tok:
            # Logout ends cookie sessions; a valid token is told so, not treated as unauthenticated.
            assert_error(tok.post("/api/auth/logout"), 400, "BAD_REQUEST")


async def test_csrf_cookie_sessions_need_json_for_unsafe_methods(api: Api) -> None:
    _, name, password = await make_user(api.url)
    with session(api.base, name, password) as client:
        form = client.post(
            "/api/auth/tokens",
            content=b"name=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert_error(form, 415, "UNSUPPORTED_MEDIA_TYPE")
        plain = client.post(
            "/api/auth/tokens", content=b'{"name": "x"}', headers={"Content-Type": "text/plain"}
        )
        assert_error(plain, 415, "UNSUPPORTED_MEDIA_TYPE")
        bare = client.post("/api/auth/logout")  # no content type at all
        assert_error(bare, 415, "UNSUPPORTED_MEDIA_TYPE")
        assert client.get("/api/auth/me").status_code == 200  # the session survived: logout was refused
        created = client.post("/api/auth/tokens", json={"name": "x"})
        assert created.status_code == 201
        token = created.json()["token"]
        with_charset = client.post(
            "/api/auth/tokens",
            content=b'{"name": "y"}',
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        assert with_charset.status_code == 201
        assert_error(client.delete(f"/api/auth/tokens/{created.json()['id']}"), 415, "UNSUPPORTED_MEDIA_TYPE")
    with bearer(api.base, token) as tok:
        # Not subject to the CSRF rule (a browser never attaches a bearer token by itself)...
        ok = tok.post("/api/auth/tokens", content=b'{"name": "z"}', headers={"Content-Type": "text/plain"})
        assert ok.status_code == 201
        # ...but a bad body is still a 4xx with an error code, never 415 or 500.
        bad = tok.post("/api/auth/tokens", content=b"name=z", headers={"Content-Type": "text/plain"})
        assert bad.status_code in {400, 422} and bad.json()["error_code"] in {
            "BAD_REQUEST",
            "VALIDATION_ERROR",
        }


# --- who sees what ----------------------------------------------------------------------------


async def test_users_see_only_their_own_attempts_and_admins_see_all(api: Api) -> None:
    alice_id, alice, alice_pw = await make_user(api.url, "alice")
    _, bob, bob_pw = await make_user(api.url, "bob")
    _, root, root_pw = api.root
    with session(api.base, alice, alice_pw) as a, session(api.base, bob, bob_pw) as b:
        mine = a.post("/api/queries", json={"question": "alice's question"}).json()["id"]
        theirs = b.post("/api/queries", json={"question": "bob's question"}).json()["id"]
        for path in ("", "/results", "/results.csv", "/events"):
            assert_error(b.get(f"/api/queries/{mine}{path}"), 404, "QUERY_NOT_FOUND")
        assert_error(b.post(f"/api/queries/{mine}/cancel", headers=JSON), 404, "QUERY_NOT_FOUND")
        assert_error(b.delete(f"/api/queries/{mine}", headers=JSON), 404, "QUERY_NOT_FOUND")
        assert a.get(f"/api/queries/{mine}").status_code == 200
        assert [q["id"] for q in b.get("/api/queries").json()["items"]] == [theirs]
        # A user's ?user_id= is ignored: still only their own.
        assert [q["id"] for q in b.get("/api/queries", params={"user_id": alice_id}).json()["items"]] == [
            theirs
        ]

    with session(api.base, root, root_pw) as admin:
        assert admin.get(f"/api/queries/{mine}").json()["question"] == "alice's question"
        everyone = {q["id"] for q in admin.get("/api/queries", params={"page_size": 100}).json()["items"]}
        assert {mine, theirs} <= everyone
        filtered = admin.get("/api/queries", params={"user_id": alice_id}).json()
        assert [q["id"] for q in filtered["items"]] == [mine]
        assert_error(admin.get("/api/queries", params={"user_id": 0}), 422, "VALIDATION_ERROR")


# --- administration ---------------------------------------------------------------------------


async def test_admins_manage_users(api: Api) -> None:
    _, root, root_pw = api.root
    name = f"carol-{uuid.uuid4().hex[:6]}"
    with session(api.base, root, root_pw) as admin:
        resp = admin.post(
            "/api/admin/users", json={"username": name, "password": "carol-password", "role": "user"}
        )
        assert resp.status_code == 201, resp.text
        carol = resp.json()
        assert set(carol) == {"id", "username", "role", "active", "created_at"}
        assert (carol["username"], carol["role"], carol["active"]) == (name, "user", True)
        assert resp.headers["location"] == f"/api/admin/users/{carol['id']}"
        again = admin.post(
            "/api/admin/users", json={"username": name, "password": "other-password", "role": "user"}
        )
        assert_error(again, 409, "USER_EXISTS")
        bad = admin.post("/api/admin/users", json={"username": "x y", "password": "short", "role": "owner"})
        body = assert_error(bad, 422, "VALIDATION_ERROR")
        assert body["errors"] and all({"loc", "msg"} <= set(e) for e in body["errors"])  # type: ignore[union-attr]
        assert_error(admin.post("/api/admin/users", json={"username": name}), 422, "VALIDATION_ERROR")

        page = admin.get("/api/admin/users", params={"page_size": 1}).json()
        assert len(page["items"]) == 1 and page["pagination"]["page_size"] == 1
        assert page["pagination"]["total_count"] >= 2
        everyone = []
        for number in range(1, page["pagination"]["total_pages"] + 1):
            everyone += admin.get("/api/admin/users", params={"page": number, "page_size": 1}).json()["items"]
        assert carol in everyone and "password_hash" not in everyone[0]

        with session(api.base, name, "carol-password") as c, session(api.base, name, "carol-password") as c2:
            token = c.post("/api/auth/tokens", json={"name": "t"}).json()["token"]
            assert_error(c.get("/api/admin/users"), 403, "PERMISSION_DENIED")
            promoted = admin.patch(f"/api/admin/users/{carol['id']}", json={"role": "admin"})
            assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
            assert c.get("/api/admin/users").status_code == 200  # the role is read per request
            assert (
                admin.patch(f"/api/admin/users/{carol['id']}", json={"role": "user"}).json()["role"] == "user"
            )
            assert_error(
                admin.patch(f"/api/admin/users/{carol['id']}", json={"role": None}), 422, "VALIDATION_ERROR"
            )
            assert_error(
                admin.patch(f"/api/admin/users/{carol['id']}", json={"nick": "c"}), 422, "VALIDATION_ERROR"
            )

            # A password reset ends the user's sessions (API tokens stay).
            reset = admin.patch(f"/api/admin/users/{carol['id']}", json={"password": "reset-password"})
            assert reset.status_code == 200
            assert_error(c.get("/api/auth/me"), 401, "AUTH_SESSION_INVALID")
            assert_error(c2.get("/api/auth/me"), 401, "AUTH_SESSION_INVALID")
            assert login(api.base, name, "reset-password").status_code == 200
            assert_error(login(api.base, name, "carol-password"), 401, "AUTH_INVALID_CREDENTIALS")

        with session(api.base, name, "reset-password") as c, bearer(api.base, token) as tok:
            assert tok.get("/api/auth/me").status_code == 200
            # Deactivation (DELETE) ends sessions and API tokens at once, and login stops working.
            assert admin.delete(f"/api/admin/users/{carol['id']}", headers=JSON).status_code == 204
            assert_error(c.get("/api/auth/me"), 401, "AUTH_SESSION_INVALID")
            assert_error(tok.get("/api/auth/me"), 401, "AUTH_SESSION_INVALID")
        assert_error(login(api.base, name, "reset-password"), 401, "AUTH_INVALID_CREDENTIALS")
        async with opened(api.url) as db:
            assert not await db.fetchval(
                "SELECT count(*) FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL", carol["id"]
            )
        listed = [u for u in admin.get("/api/admin/users", params={"page_size": 100}).json()["items"]]
        assert {u["id"]: u["active"] for u in listed}[carol["id"]] is False

        # Reactivation does not bring the old sessions or tokens back.
        assert admin.patch(f"/api/admin/users/{carol['id']}", json={"active": True}).json()["active"] is True
        with bearer(api.base, token) as tok:
            assert tok.get("/api/auth/me").status_code == 401
        assert login(api.base, name, "reset-password").status_code == 200

        assert_error(admin.patch("/api/admin/users/999999", json={"active": False}), 404, "USER_NOT_FOUND")
        assert_error(admin.delete("/api/admin/users/999999", headers=JSON), 404, "USER_NOT_FOUND")


async def test_non_admins_are_refused_before_the_body_is_read(api: Api) -> None:
    user_id, name, password = await make_user(api.url)
    with session(api.base, name, password) as client:
        garbage = client.post("/api/admin/users", content=b"{not json", headers=JSON)
        assert_error(garbage, 403, "PERMISSION_DENIED")
        wrong_shape = client.post("/api/admin/users", json={"bogus": 1})
        assert_error(wrong_shape, 403, "PERMISSION_DENIED")
        assert_error(client.get("/api/admin/users"), 403, "PERMISSION_DENIED")
        assert_error(
            client.patch(f"/api/admin/users/{user_id}", json={"role": "admin"}), 403, "PERMISSION_DENIED"
        )
        assert_error(client.delete(f"/api/admin/users/{user_id}", headers=JSON), 403, "PERMISSION_DENIED")
        assert client.get("/api/auth/me").json()["role"] == "user"
    anonymous = httpx.post(f"{api.base}/api/admin/users", content=b"{not json", headers=JSON)
    assert_error(anonymous, 401, "AUTH_SESSION_INVALID")


async def test_no_change_may_leave_no_active_admin(api: Api) -> None:
    root_id, root, root_pw = api.root
    async with opened(api.url) as db:  # make root the only active admin, whatever ran before
        await db.execute("UPDATE users SET role = 'user' WHERE role = 'admin' AND id <> $1", root_id)
    with session(api.base, root, root_pw) as admin:
        assert_error(admin.patch(f"/api/admin/users/{root_id}", json={"role": "user"}), 409, "INVALID_STATE")
        assert_error(admin.patch(f"/api/admin/users/{root_id}", json={"active": False}), 409, "INVALID_STATE")
        assert_error(admin.delete(f"/api/admin/users/{root_id}", headers=JSON), 409, "INVALID_STATE")
        # All or nothing: the password in the refused change was not applied either.
        refused = admin.patch(
            f"/api/admin/users/{root_id}", json={"active": False, "password": "p4ssword-new"}
        )
        assert_error(refused, 409, "INVALID_STATE")
        assert admin.get("/api/auth/me").json()["role"] == "admin"

        other_id, other, other_pw = await make_user(api.url, "second-admin", role="admin")
        demoted = admin.patch(f"/api/admin/users/{root_id}", json={"role": "user"})
        assert demoted.status_code == 200 and demoted.json()["role"] == "user"
        assert_error(admin.get("/api/admin/users"), 403, "PERMISSION_DENIED")
        with session(api.base, other, other_pw) as second:
            assert second.patch(f"/api/admin/users/{root_id}", json={"role": "admin"}).status_code == 200
        assert admin.delete(f"/api/admin/users/{other_id}", headers=JSON).status_code == 204
    assert login(api.base, root, root_pw).status_code == 200


async def test_concurrent_demotions_still_leave_an_admin(app_db: Database) -> None:
    first = await users.create_user(app_db, username="a1", password_hash="$argon2id$x", role="admin")
    second = await users.create_user(app_db, username="a2", password_hash="$argon2id$x", role="admin")
    if app_db.dialect == "postgresql":
        # Open pool connections first, so both transactions really overlap (measured: without the
        # row lock in update_user, both then commit and no admin is left).
        await _gather(*(app_db.fetchval("SELECT pg_sleep(0.05)") for _ in range(3)))
    results = await _gather(
        users.update_user(app_db, first.id, role="user", active=None),
        users.update_user(app_db, second.id, role=None, active=False),
    )
    assert sum(isinstance(r, users.LastActiveAdmin) for r in results) == 1
    assert await app_db.fetchval("SELECT count(*) FROM users WHERE role = 'admin' AND active") == 1


async def _gather(*coros: Any) -> list[Any]:
    return list(await asyncio.gather(*coros, return_exceptions=True))


# --- the error mapping and headers ------------------------------------------------------------


async def test_every_response_carries_the_security_headers(api: Api) -> None:
    _, name, password = await make_user(api.url)
    with session(api.base, name, password) as client:
        answers = {
            200: client.get("/api/auth/me"),
            401: httpx.get(f"{api.base}/api/auth/me"),
            404: client.get("/api/no-such-route"),
            405: client.put("/api/auth/me", json={}),
            413: client.post("/api/auth/tokens", content=b"{" + b" " * 1_100_000 + b"}", headers=JSON),
            415: client.post("/api/auth/tokens", content=b"x", headers={"Content-Type": "text/plain"}),
            422: client.post("/api/auth/tokens", json={"name": ""}),
        }
    codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE", 422: "VALIDATION_ERROR"}
    for status, resp in answers.items():
        assert resp.status_code == status, (status, resp.text)
        for header, value in SECURITY_HEADERS.items():
            assert resp.headers[header] == value, (status, header)
        assert "default-src 'none'" in resp.headers["content-security-policy"]
        if status >= 400:
            body = resp.json()
            assert set(body) <= {"detail", "error_code", "errors"} and body["detail"]
            if status in codes:
                assert body["error_code"] == codes[status]
    assert {e["loc"][-1] for e in answers[422].json()["errors"]} == {"name"}
    docs = httpx.get(f"{api.base}/schema/swagger")
    assert docs.headers["x-frame-options"] == "DENY" and "content-security-policy" in docs.headers


async def test_oversized_bodies_are_413_payload_too_large(api: Api) -> None:
    big = b'{"username": "' + b"a" * 1_100_000 + b'", "password": "x"}'
    assert_error(
        httpx.post(f"{api.base}/api/auth/login", content=big, headers=JSON, timeout=30),
        413,
        "PAYLOAD_TOO_LARGE",
    )
    _, name, password = await make_user(api.url)
    with session(api.base, name, password) as client:
        question = {"question": "x" * 1_100_000}
        assert_error(client.post("/api/queries", json=question), 413, "PAYLOAD_TOO_LARGE")


async def test_the_api_log_holds_no_password_token_or_cookie(api: Api) -> None:
    _, name, password = await make_user(api.url)
    secrets = [password, "typo-" + password]
    assert login(api.base, name, secrets[1]).status_code == 401
    assert login(api.base, password, password).status_code == 401  # a password typed as the username
    with session(api.base, name, password) as client:
        secrets.append(client.cookies["session_token"])
        token = client.post("/api/auth/tokens", json={"name": "scan"}).json()["token"]
        secrets.append(token)
        client.post(
            "/api/auth/password", json={"current_password": "wrong-" + password, "new_password": "x" * 9}
        )
        secrets.append("wrong-" + password)
    with bearer(api.base, token) as tok:
        assert tok.get("/api/auth/me").status_code == 200
        tok.post("/api/queries", content=b"{broken", headers=JSON)
    with bearer(api.base, token + "x") as forged:
        assert forged.get("/api/auth/me").status_code == 401
    log = api.stack.processes[0].output()
    assert "login" in log  # the log is the live one, and logins are audited
    for secret in secrets:
        assert secret not in log
    assert hashlib.sha256(token.encode()).hexdigest() not in log


# --- in-process checks of what HTTP cannot observe --------------------------------------------


async def _app_client(tmp_path: Any, **env: str) -> tuple[str, Any]:
    url = f"sqlite:///{tmp_path}/app.db"
    await migrate(url)
    settings = load_settings({"SQLAGENT_DATABASE_URL": url, "SQLAGENT_RATE_LIMITS": "false", **env})
    return url, create_app(settings)


async def test_an_unknown_user_costs_one_argon2_verification_off_the_event_loop(
    tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    url, app = await _app_client(tmp_path, SQLAGENT_COOKIE_SECURE="false")
    _, name, password = await make_user(url)
    real = passwords._hasher
    calls: list[tuple[str, int]] = []

    class Recording:
        def verify(self, stored: str, candidate: str) -> bool:
            calls.append((stored, threading.get_ident()))
            return real.verify(stored, candidate)

        def __getattr__(self, attribute: str) -> Any:
            return getattr(real, attribute)

    monkeypatch.setattr(passwords, "_hasher", Recording())
    loop_thread = threading.get_ident()
    async with AsyncTestClient(app) as client:
        unknown = await client.post("/api/auth/login", json={"username": "nobody-here", "password": password})
        unknown_calls, calls[:] = list(calls), []
        known = await client.post("/api/auth/login", json={"username": name, "password": "wrong"})
        known_calls = list(calls)
    assert unknown.status_code == known.status_code == 401 and unknown.json() == known.json()
    assert [stored for stored, _ in unknown_calls] == [passwords._DUMMY_HASH]
    assert len(known_calls) == 1 and known_calls[0][0] != passwords._DUMMY_HASH
    # Same parameters, so the same cost: the dummy is a real argon2id hash of today's settings.
    assert passwords._DUMMY_HASH.split("$")[:4] == known_calls[0][0].split("$")[:4]
    assert all(thread != loop_thread for _, thread in unknown_calls + known_calls)


async def test_internal_errors_reveal_nothing_and_secure_cookies_bring_hsts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url, app = await _app_client(tmp_path, SQLAGENT_COOKIE_SECURE="true")
    _, name, password = await make_user(url)

    @get("/api/test-boom", exclude_from_auth=True, sync_to_thread=False)
    def boom() -> None:
        raise RuntimeError("connection string postgresql://secret@db/internal")

    app.register(boom)
    async with AsyncTestClient(app, base_url="https://testserver.local") as client:
        failed = await client.get("/api/test-boom")
        assert failed.status_code == 500
        assert failed.json() == {"detail": "Internal server error", "error_code": "INTERNAL_ERROR"}
        assert "secret" not in failed.text
        for resp in (failed, await client.get("/health")):
            for header, value in SECURITY_HEADERS.items():
                assert resp.headers[header] == value
            assert resp.headers["strict-transport-security"].startswith("max-age=")
        logged_in = await client.post("/api/auth/login", json={"username": name, "password": password})
        assert "secure" in [p.strip().lower() for p in logged_in.headers["set-cookie"].split(";")]
