"""Rate limits: the sliding-window limiter on its memory and Redis backends (a fake clock moves the
windows), the fallback while Redis is unreachable, and the limits on a live API process with
counters in the real Redis."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis
from litestar.connection import ASGIConnection
from support.identity import assert_error, bearer, clear_rate_limits, login, make_user, session, start_stack
from support.services import RedisServer
from support.stack import Stack, free_port

import api.ratelimit as ratelimit
from api.errors import RateLimitExceeded
from api.ratelimit import (
    FallbackCounters,
    MemoryCounters,
    RateLimiter,
    address_key,
    bucket_for,
    retry_after,
)
from shared.settings import ConfigError, SecuritySettings

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("ratelimit")]

JSON = {"Content-Type": "application/json"}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def security(**overrides: Any) -> SecuritySettings:
    values: dict[str, Any] = {
        "cookie_secure": False,
        "rate_limits": True,
        "rate_submit_per_min": 3,
        "rate_login_failures_per_15min": 3,
        "rate_general_per_min": 3,
        "rate_admin_per_min": 3,
        "trusted_proxies": (),
    }
    values.update(overrides)
    return SecuritySettings(**values)


@pytest.fixture(params=["memory", "redis"])
async def make_limiter(request, redis_url) -> AsyncIterator[Any]:  # type: ignore[no-untyped-def]
    made: list[RateLimiter] = []

    def make(clock: Clock, **overrides: Any) -> RateLimiter:
        limiter = RateLimiter(
            security(**overrides), redis_url if request.param == "redis" else None, clock=clock
        )
        made.append(limiter)
        return limiter

    make.backend = request.param  # type: ignore[attr-defined]
    yield make
    for limiter in made:
        await limiter.aclose()


def who() -> str:
    return f"user:{uuid.uuid4().hex}"  # Redis keys outlive a test: never reuse an identity


async def allowed(limiter: RateLimiter, identity: str, bucket: str = "general") -> bool:
    try:
        await limiter.take(limiter.rules[bucket], identity)
    except RateLimitExceeded:
        return False
    return True


# --- the limiter ------------------------------------------------------------------------------


async def test_the_limit_then_429_with_retry_after(make_limiter) -> None:  # type: ignore[no-untyped-def]
    limiter = make_limiter(Clock(6000.0 + 15))  # a quarter into a minute window
    identity = who()
    for _ in range(3):
        await limiter.take(limiter.rules["general"], identity)
    with pytest.raises(RateLimitExceeded) as refused:
        await limiter.take(limiter.rules["general"], identity)
    assert refused.value.status_code == 429 and refused.value.error_code == "RATE_LIMIT_EXCEEDED"
    # Full window: wait for the next one, where 3 still weigh until 1/3 of it has passed (45 + 20).
    assert refused.value.headers == {"Retry-After": "65"}
    assert await allowed(limiter, who())  # per identity
    expected = FallbackCounters if make_limiter.backend == "redis" else MemoryCounters
    assert isinstance(limiter.counters, expected)


async def test_the_window_slides_and_refused_requests_are_not_counted(make_limiter) -> None:  # type: ignore[no-untyped-def]
    clock = Clock(6000.0)  # the start of window 100
    limiter = make_limiter(clock)
    identity = who()
    assert [await allowed(limiter, identity) for _ in range(4)] == [True, True, True, False]
    for _ in range(50):  # hammering while limited
        assert not await allowed(limiter, identity)
    clock.now = 6060.0  # next window: the previous 3 still weigh fully
    with pytest.raises(RateLimitExceeded) as refused:
        await limiter.take(limiter.rules["general"], identity)
    assert refused.value.headers["Retry-After"] == "20"
    clock.now = 6080.0  # a third of the previous window has slid out: 3 * 2/3 = 2, room for one
    assert [await allowed(limiter, identity) for _ in range(2)] == [True, False]
    clock.now = 6180.0  # two windows on: nothing weighs any more
    assert [await allowed(limiter, identity) for _ in range(4)] == [True, True, True, False]


async def test_a_window_boundary_does_not_double_the_allowance(make_limiter) -> None:  # type: ignore[no-untyped-def]
    clock = Clock(6059.0)
    limiter = make_limiter(clock)
    identity = who()
    assert sum([await allowed(limiter, identity) for _ in range(3)]) == 3
    clock.now = 6061.0  # fixed windows would allow 3 more here
    assert sum([await allowed(limiter, identity) for _ in range(3)]) == 0


async def test_a_given_back_count_is_not_counted(make_limiter) -> None:  # type: ignore[no-untyped-def]
    limiter = make_limiter(Clock(6000.0))
    identity = who()
    for _ in range(10):
        slot = await limiter.take(limiter.rules["login"], identity)
        await slot.give_back()
    for _ in range(3):
        await limiter.take(limiter.rules["login"], identity)
    assert not await allowed(limiter, identity, "login")


async def test_concurrent_requests_cannot_overrun_the_limit(make_limiter) -> None:  # type: ignore[no-untyped-def]
    limiter = make_limiter(Clock(6000.0), rate_general_per_min=10)
    identity = who()
    results = await asyncio.gather(*(allowed(limiter, identity) for _ in range(40)))
    assert sum(results) == 10


async def test_disabled_limits_never_refuse(make_limiter) -> None:  # type: ignore[no-untyped-def]
    limiter = make_limiter(Clock(6000.0), rate_limits=False)
    identity = who()
    assert all([await allowed(limiter, identity) for _ in range(20)])


async def test_redis_counters_are_shared_and_expire(redis_url: str) -> None:
    clock = Clock(6000.0)
    one, two = (
        RateLimiter(security(), redis_url, clock=clock),
        RateLimiter(security(), redis_url, clock=clock),
    )
    try:
        identity = who()
        assert await allowed(one, identity) and await allowed(two, identity) and await allowed(one, identity)
        assert not await allowed(two, identity)
        client = redis.Redis.from_url(redis_url)
        try:
            keys = list(client.scan_iter(f"sqlagent:ratelimit:general:{identity}:*"))
            assert len(keys) == 1 and int(client.get(keys[0]) or 0) == 3
            assert 0 < client.ttl(keys[0]) <= 120
        finally:
            client.close()
    finally:
        await one.aclose()
        await two.aclose()


async def test_an_unreachable_redis_falls_back_to_process_counters(caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING, logger="sqlagent.ratelimit")
    limiter = RateLimiter(security(), f"redis://127.0.0.1:{free_port()}/0", clock=Clock(6000.0))
    try:
        identity = who()
        assert [await allowed(limiter, identity) for _ in range(4)] == [True, True, True, False]
    finally:
        await limiter.aclose()
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not per request


async def test_a_redis_outage_mid_window_is_survived(tmp_path, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="sqlagent.ratelimit")
    monkeypatch.setattr(ratelimit, "REDIS_RETRY_S", 0.0)  # try Redis again on every request
    server = RedisServer(tmp_path).start()
    limiter = RateLimiter(security(rate_general_per_min=5), server.url, clock=Clock(6000.0))
    identity = who()
    try:
        assert await allowed(limiter, identity) and await allowed(limiter, identity)  # counted in Redis
        server.stop()
        # Redis is gone: requests are still answered, limited by this process's own counters.
        assert [await allowed(limiter, identity) for _ in range(6)] == [True] * 5 + [False]
        server = RedisServer(tmp_path, port=server.port).start()  # back, and empty (no persistence)
        assert [await allowed(limiter, identity) for _ in range(6)] == [True] * 5 + [False]
    finally:
        await limiter.aclose()
        server.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Redis unreachable" in m for m in messages) == 1
    assert sum("Redis is back" in m for m in messages) == 1


def test_retry_after_is_when_one_more_request_fits() -> None:
    # Only the previous window in the way: 6 * (1 - e) + 1 <= 5 from e = 1/3 on.
    assert retry_after(current=0, previous=6, limit=5, elapsed=0.0, window_s=60) == 20
    assert retry_after(current=2, previous=6, limit=5, elapsed=0.5, window_s=60) == 10
    # This window full: the rest of it, plus until its weight lets one more in.
    assert retry_after(current=5, previous=0, limit=5, elapsed=0.5, window_s=60) == 30 + 12
    assert retry_after(current=1, previous=0, limit=1, elapsed=0.0, window_s=900) == 1800
    assert retry_after(current=3, previous=3, limit=3, elapsed=0.999, window_s=60) >= 1


@pytest.mark.parametrize(
    ("method", "path", "role", "bucket"),
    [
        ("POST", "/api/queries", "user", "submit"),
        ("POST", "/api/queries/", "admin", "submit"),
        ("GET", "/api/queries", "user", "general"),
        ("POST", "/api/queries/abc/cancel", "user", "general"),
        ("GET", "/api/admin/users", "admin", "admin"),
        ("PATCH", "/api/admin/users/3", "admin", "admin"),
        ("GET", "/api/admin/users", "user", "general"),
        ("POST", "/api/knowledge", "admin", "admin"),
        ("DELETE", "/api/knowledge/k1", "admin", "admin"),
        ("GET", "/api/knowledge", "admin", "general"),
        ("POST", "/api/data-sources/default/schema/refresh", "admin", "admin"),
        ("GET", "/api/data-sources/default/schema", "admin", "general"),
        ("GET", "/health", "user", None),
        ("GET", "/ready", "user", None),
        ("GET", "/metrics", "user", None),
        ("GET", "/schema/openapi.json", "user", None),
    ],
)
def test_each_request_counts_against_one_bucket(
    method: str, path: str, role: str, bucket: str | None
) -> None:
    assert bucket_for(method, path, role) == bucket


def _connection(peer: str, *forwarded: str) -> ASGIConnection[Any, Any, Any, Any]:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return ASGIConnection(scope={"type": "http", "client": (peer, 5000), "headers": headers})  # type: ignore[arg-type]


def test_x_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    untrusting = RateLimiter(security(), None)
    assert untrusting.client_address(_connection("203.0.113.9", "198.51.100.1")) == "203.0.113.9"

    proxied = RateLimiter(security(trusted_proxies=("10.0.0.0/8", "192.0.2.1")), None)
    assert proxied.client_address(_connection("10.1.2.3", "198.51.100.1")) == "198.51.100.1"
    # Entries left of the first untrusted hop are the client's own to forge.
    assert (
        proxied.client_address(_connection("10.1.2.3", "6.6.6.6, 198.51.100.1, 192.0.2.1")) == "198.51.100.1"
    )
    assert proxied.client_address(_connection("10.1.2.3", "6.6.6.6", "198.51.100.1")) == "198.51.100.1"
    assert proxied.client_address(_connection("10.1.2.3", "not-an-address")) == "10.1.2.3"
    assert proxied.client_address(_connection("10.1.2.3")) == "10.1.2.3"
    # A peer that is not a proxy cannot claim to forward for someone else.
    assert proxied.client_address(_connection("203.0.113.9", "198.51.100.1")) == "203.0.113.9"


def test_ipv6_clients_are_limited_per_slash_64() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:198.51.100.7") == "198.51.100.7"
    assert address_key("198.51.100.7") == "198.51.100.7"


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    with pytest.raises(ConfigError) as error:
        RateLimiter(security(trusted_proxies=("10.0.0.0/8", "proxy.internal")), None)
    assert error.value.variable == "SQLAGENT_TRUSTED_PROXIES"


def test_without_redis_the_counters_are_in_memory() -> None:
    assert isinstance(RateLimiter(security(), None).counters, MemoryCounters)


# --- the limits on a live API process ---------------------------------------------------------

LIMITS = {
    "SQLAGENT_RATE_LIMITS": "true",
    "SQLAGENT_RATE_SUBMIT_PER_MIN": "3",
    "SQLAGENT_RATE_GENERAL_PER_MIN": "6",
    "SQLAGENT_RATE_ADMIN_PER_MIN": "3",
    "SQLAGENT_RATE_LOGIN_FAILURES_PER_15MIN": "3",
}


@pytest.fixture(scope="module")
async def limited(tmp_path_factory, redis_url) -> AsyncIterator[tuple[Stack, str]]:  # type: ignore[no-untyped-def]
    """An API process with low limits, counters in the session's Redis, and 127.0.0.1 as a trusted
    proxy so each test can log in from an address of its own (X-Forwarded-For)."""
    tmp = tmp_path_factory.mktemp("ratelimit")
    url = f"sqlite:///{tmp}/app.db"
    clear_rate_limits(redis_url)
    stack = await start_stack(
        tmp, url, SQLAGENT_REDIS_URL=redis_url, SQLAGENT_TRUSTED_PROXIES="127.0.0.1", **LIMITS
    )
    try:
        yield stack, url
    finally:
        stack.stop()
        clear_rate_limits(redis_url)


def _limited(resp: httpx.Response, *, at_most: int) -> int:
    body = assert_error(resp, 429, "RATE_LIMIT_EXCEEDED")
    assert set(body) == {"detail", "error_code"}
    assert resp.headers["x-content-type-options"] == "nosniff"
    wait = int(resp.headers["retry-after"])
    assert 1 <= wait <= at_most
    return wait


async def test_submissions_are_limited_per_user(limited, redis_url) -> None:  # type: ignore[no-untyped-def]
    stack, url = limited
    user_id, name, password = await make_user(url)
    _, other, other_pw = await make_user(url)
    with session(stack.base_url, name, password) as client:
        codes = [client.post("/api/queries", json={"question": f"q{i}"}).status_code for i in range(3)]
        assert codes == [202, 202, 202]
        _limited(client.post("/api/queries", json={"question": "one too many"}), at_most=120)
        assert client.get("/api/queries").status_code == 200  # reading is another bucket
    with session(stack.base_url, other, other_pw) as client:
        assert client.post("/api/queries", json={"question": "mine"}).status_code == 202
    keys = redis.Redis.from_url(redis_url).keys(f"sqlagent:ratelimit:submit:user:{user_id}:*")
    assert keys, "the counters live in Redis"


async def test_general_use_is_limited_per_user_across_cookie_and_token(limited) -> None:  # type: ignore[no-untyped-def]
    stack, url = limited
    _, name, password = await make_user(url)
    with session(stack.base_url, name, password) as client:
        token = client.post("/api/auth/tokens", json={"name": "t"}).json()["token"]  # 1
        assert [client.get("/api/auth/me").status_code for _ in range(2)] == [200, 200]  # 3
        with bearer(stack.base_url, token) as tok:
            assert [tok.get("/api/auth/me").status_code for _ in range(3)] == [200, 200, 200]  # 6
            _limited(tok.get("/api/auth/me"), at_most=120)
        _limited(client.get("/api/data-sources"), at_most=120)


async def test_admin_endpoints_have_their_own_limit(limited) -> None:  # type: ignore[no-untyped-def]
    stack, url = limited
    _, admin, admin_pw = await make_user(url, "admin", role="admin")
    _, user, user_pw = await make_user(url)
    with session(stack.base_url, admin, admin_pw) as client:
        assert [client.get("/api/admin/users").status_code for _ in range(3)] == [200] * 3
        _limited(client.get("/api/admin/users"), at_most=120)
        # Over the admin limit, still within the general one.
        assert client.get("/api/auth/me").status_code == 200
    with session(stack.base_url, user, user_pw) as client:
        # A non-admin is refused (403) and that counts as their general use.
        assert [client.get("/api/admin/users").status_code for _ in range(6)] == [403] * 6
        _limited(client.get("/api/admin/users"), at_most=120)


async def test_failed_logins_are_limited_per_client_address(limited) -> None:  # type: ignore[no-untyped-def]
    stack, url = limited
    _, name, password = await make_user(url)
    base = stack.base_url
    assert [login(base, name, "wrong", forwarded_for="198.51.100.1").status_code for _ in range(3)] == [
        401
    ] * 3
    # Over the limit, even the right password is refused: guessing stops for this address.
    _limited(login(base, name, password, forwarded_for="198.51.100.1"), at_most=1800)
    # A forged left part of X-Forwarded-For does not buy a fresh address...
    _limited(login(base, name, password, forwarded_for="6.6.6.6, 198.51.100.1"), at_most=1800)
    # ...while another client address (per the trusted proxy) logs in at once.
    assert login(base, name, password, forwarded_for="198.51.100.2").status_code == 200

    # Successful logins never count: far more than the limit from one address all succeed.
    assert [login(base, name, password, forwarded_for="198.51.100.3").status_code for _ in range(5)] == [
        200
    ] * 5
    # ...and do not wipe earlier failures either: 2 failures, a success, 1 failure, then limited.
    codes = [
        login(base, name, p, forwarded_for="198.51.100.4").status_code
        for p in ("wrong", "wrong", password, "wrong")
    ]
    assert codes == [401, 401, 200, 401]
    _limited(login(base, name, "wrong", forwarded_for="198.51.100.4"), at_most=1800)


async def test_health_readiness_and_docs_are_never_limited(limited) -> None:  # type: ignore[no-untyped-def]
    stack, _ = limited
    for path in ("/health", "/ready", "/metrics", "/schema/openapi.json"):
        codes = {httpx.get(f"{stack.base_url}{path}", timeout=10).status_code for _ in range(10)}
        assert 429 not in codes, path


async def test_a_redis_outage_does_not_fail_requests(tmp_path) -> None:  # type: ignore[no-untyped-def]
    redis_server = RedisServer(tmp_path).start()
    stack = await start_stack(
        tmp_path, f"sqlite:///{tmp_path}/app.db", SQLAGENT_REDIS_URL=redis_server.url, **LIMITS
    )
    try:
        _, name, password = await make_user(f"sqlite:///{tmp_path}/app.db")
        with session(stack.base_url, name, password) as client:
            assert [client.get("/api/auth/me").status_code for _ in range(2)] == [200, 200]
            redis_server.stop()
            # Counted in the API process now, from zero: 6 more fit, then the limit holds again.
            codes = [client.get("/api/auth/me").status_code for _ in range(7)]
            assert codes == [200] * 6 + [429], codes
    finally:
        stack.stop()
        redis_server.stop()
    assert "Redis unreachable" in stack.processes[0].output()
