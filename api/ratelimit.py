"""Rate limits (SPEC "Rate limits"): query submissions, general use and admin endpoints per user per
minute, and failed logins per client address per 15 minutes.

A sliding-window counter (the previous fixed window's count, weighted by how much of it still
overlaps the last `window` seconds, plus the current window's count), so a client cannot double its
allowance by straddling a window boundary. Only requests that fit are counted: a client that keeps
hammering while limited is not locked out any longer than one that waits.

Counters live in Redis when one is configured, so every API process shares them: one Lua script
reads both windows and increments atomically. While Redis is unreachable the counters fall back to
this process's memory (a warning is logged once per outage) rather than failing requests.

Why not Litestar's `RateLimitConfig`: it counts every request before the handler runs (failed
logins only cannot be expressed), has one limit per middleware with `second…day` units (no 15-minute
window), keys by remote address by default, and does a read-then-write on the store under a
per-process lock, which is not atomic across API processes sharing Redis; a Redis outage would also
fail the request instead of falling back."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from api.errors import RateLimitExceeded
from shared.settings import ConfigError, SecuritySettings
from shared.users.repository import User

log = logging.getLogger("sqlagent.ratelimit")

KEY_PREFIX = "sqlagent:ratelimit"
# After a Redis failure, count in memory for this long before trying Redis again, so an outage
# does not cost every request a connection timeout.
REDIS_RETRY_S = 5.0
_REDIS_TIMEOUT_S = 0.5
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_EXEMPT = ("/health", "/ready", "/metrics", "/schema")

Clock = Callable[[], float]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Rule:
    bucket: str
    limit: int
    window_s: int
    what: str  # for the 429 detail


class Counts(NamedTuple):
    allowed: bool
    current: int
    previous: int
    # Undo this request's count (a successful login); a no-op when it was not counted.
    give_back: Callable[[], Awaitable[None]]


class Counters(Protocol):
    async def take(
        self, current_key: str, previous_key: str, *, limit: int, elapsed: float, ttl_s: int
    ) -> Counts:
        """Count one request in `current_key` if the weighted total stays within `limit`."""
        ...

    async def aclose(self) -> None: ...


async def _nothing() -> None:
    return None


# Float slack, so that 3 * (1 - 1/3) + 1 fits a limit of 3 (the Lua script uses the same).
_EPSILON = 1e-9


def _fits(current: int, previous: int, *, limit: int, elapsed: float) -> bool:
    return previous * (1 - elapsed) + current + 1 <= limit + _EPSILON


def retry_after(*, current: int, previous: int, limit: int, elapsed: float, window_s: int) -> int:
    """Seconds until one more request fits, assuming no other request is counted meanwhile."""
    if current + 1 <= limit:
        # Only the previous window's weight is in the way: wait until enough of it has slid out.
        fraction = 1 - (limit - current - 1) / previous if previous else elapsed
        wait = (fraction - elapsed) * window_s
    else:
        # This window is full: wait for the next one, in which this window's count still weighs.
        fraction = max(0.0, 1 - (limit - 1) / current)
        wait = (1 - elapsed) * window_s + fraction * window_s
    return max(1, math.ceil(wait - 1e-6))


class MemoryCounters:
    """This process's counters: the backend without Redis, and the fallback while Redis is down.
    Each `take` runs without awaiting, so it is atomic on the event loop."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._counts: dict[str, tuple[int, float]] = {}
        self._next_prune = 0.0

    def _get(self, key: str, now: float) -> int:
        entry = self._counts.get(key)
        return entry[0] if entry and entry[1] > now else 0

    async def take(
        self, current_key: str, previous_key: str, *, limit: int, elapsed: float, ttl_s: int
    ) -> Counts:
        now = self._clock()
        self._prune(now)
        current, previous = self._get(current_key, now), self._get(previous_key, now)
        if not _fits(current, previous, limit=limit, elapsed=elapsed):
            return Counts(False, current, previous, _nothing)
        self._counts[current_key] = (current + 1, now + ttl_s)

        async def give_back() -> None:
            entry = self._counts.get(current_key)
            if entry and entry[0] > 0:
                self._counts[current_key] = (entry[0] - 1, entry[1])

        return Counts(True, current + 1, previous, give_back)

    def _prune(self, now: float) -> None:
        if now < self._next_prune:
            return
        self._next_prune = now + 60
        for key in [k for k, (_, expires) in self._counts.items() if expires <= now]:
            del self._counts[key]

    async def aclose(self) -> None:
        self._counts.clear()


# KEYS: current window, previous window. ARGV: limit, elapsed fraction of the current window, TTL.
_TAKE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
if previous * (1 - tonumber(ARGV[2])) + current + 1 > tonumber(ARGV[1]) + 1e-9 then
  return {0, current, previous}
end
current = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, current, previous}
"""
# Never resurrect an expired key (it would have no TTL).
_GIVE_BACK = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end
return 0
"""


class RedisCounters:
    """Counters shared by every API process. Short timeouts and no retries: a slow or absent Redis
    must cost a request at most ~0.5 s once, then the fallback takes over."""

    def __init__(self, url: str) -> None:
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=16,
            timeout=_REDIS_TIMEOUT_S,
            socket_timeout=_REDIS_TIMEOUT_S,
            socket_connect_timeout=_REDIS_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        self._client = Redis.from_pool(pool)
        self._take = self._client.register_script(_TAKE)
        self._give_back = self._client.register_script(_GIVE_BACK)

    async def take(
        self, current_key: str, previous_key: str, *, limit: int, elapsed: float, ttl_s: int
    ) -> Counts:
        async with asyncio.timeout(2 * _REDIS_TIMEOUT_S):
            allowed, current, previous = await self._take(
                keys=[current_key, previous_key], args=[limit, repr(elapsed), ttl_s]
            )
        if not allowed:
            return Counts(False, int(current), int(previous), _nothing)

        async def give_back() -> None:
            try:
                async with asyncio.timeout(2 * _REDIS_TIMEOUT_S):
                    await self._give_back(keys=[current_key])
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("could not give back a rate-limit count: %s", type(exc).__name__)

        return Counts(True, int(current), int(previous), give_back)

    async def aclose(self) -> None:
        await self._client.aclose()


class FallbackCounters:
    """Redis while it answers; this process's memory while it does not."""

    def __init__(self, primary: RedisCounters, fallback: MemoryCounters) -> None:
        self.primary = primary
        self.fallback = fallback
        self._down_until = 0.0
        self._down = False

    async def take(
        self, current_key: str, previous_key: str, *, limit: int, elapsed: float, ttl_s: int
    ) -> Counts:
        if time.monotonic() >= self._down_until:
            try:
                counts = await self.primary.take(
                    current_key, previous_key, limit=limit, elapsed=elapsed, ttl_s=ttl_s
                )
            except (RedisError, OSError, TimeoutError) as exc:
                self._down_until = time.monotonic() + REDIS_RETRY_S
                if not self._down:
                    self._down = True
                    log.warning(
                        "rate-limit counters: Redis unreachable (%s); counting in this process meanwhile",
                        type(exc).__name__,
                    )
            else:
                if self._down:
                    self._down = False
                    log.info("rate-limit counters: Redis is back; counters are shared again")
                return counts
        return await self.fallback.take(current_key, previous_key, limit=limit, elapsed=elapsed, ttl_s=ttl_s)

    async def aclose(self) -> None:
        await self.primary.aclose()
        await self.fallback.aclose()


def parse_trusted_proxies(entries: tuple[str, ...]) -> tuple[Network, ...]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(
                "SQLAGENT_TRUSTED_PROXIES", f"{entry!r} is not an IP address or network (e.g. 10.0.0.0/8)"
            ) from None
    return tuple(networks)


def bucket_for(method: str, path: str, role: str) -> str | None:
    """Which limit an authenticated request counts against (None: not limited)."""
    if path.startswith(_EXEMPT):
        return None
    if method == "POST" and path.rstrip("/") == "/api/queries":
        return "submit"
    if role == "admin":
        if path == "/api/admin" or path.startswith("/api/admin/"):
            return "admin"
        if method in _UNSAFE and (path.rstrip("/") == "/api/knowledge" or path.startswith("/api/knowledge/")):
            return "admin"
        if (
            method == "POST"
            and path.startswith("/api/data-sources/")
            and path.rstrip("/").endswith("/schema/refresh")
        ):
            return "admin"
    # A non-admin calling an admin route is answered 403 and counts as general use.
    return "general"


class RateLimiter:
    def __init__(
        self, security: SecuritySettings, redis_url: str | None, *, clock: Clock = time.time
    ) -> None:
        self.enabled = security.rate_limits
        self._clock = clock
        self._proxies = parse_trusted_proxies(security.trusted_proxies)
        self.rules = {
            "submit": Rule("submit", security.rate_submit_per_min, 60, "query submissions"),
            "general": Rule("general", security.rate_general_per_min, 60, "requests"),
            "admin": Rule("admin", security.rate_admin_per_min, 60, "admin requests"),
            "login": Rule("login", security.rate_login_failures_per_15min, 15 * 60, "failed logins"),
        }
        memory = MemoryCounters(clock)
        self.counters: Counters = (
            FallbackCounters(RedisCounters(redis_url), memory) if redis_url and self.enabled else memory
        )

    async def take(self, rule: Rule, identity: str) -> Counts:
        """Count one request of `identity` against `rule`; 429 when it does not fit."""
        if not self.enabled:
            return Counts(True, 0, 0, _nothing)
        now = self._clock()
        index, elapsed = divmod(now / rule.window_s, 1)
        prefix = f"{KEY_PREFIX}:{rule.bucket}:{identity}"
        counts = await self.counters.take(
            f"{prefix}:{int(index)}",
            f"{prefix}:{int(index) - 1}",
            limit=rule.limit,
            elapsed=elapsed,
            ttl_s=2 * rule.window_s,
        )
        if not counts.allowed:
            wait = retry_after(
                current=counts.current,
                previous=counts.previous,
                limit=rule.limit,
                elapsed=elapsed,
                window_s=rule.window_s,
            )
            raise RateLimitExceeded(
                f"Too many {rule.what} (limit {rule.limit} per {_per(rule.window_s)}); retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        return counts

    async def check_request(self, connection: ASGIConnection[Any, Any, Any, Any], user: User) -> None:
        """For an authenticated request: count it against the submit, admin or general limit."""
        bucket = bucket_for(str(connection.scope.get("method", "GET")), connection.scope["path"], user.role)
        if bucket is not None:
            await self.take(self.rules[bucket], f"user:{user.id}")

    async def login_attempt(self, connection: ASGIConnection[Any, Any, Any, Any]) -> Counts:
        """Reserve a failed-login slot for the client address before the password is checked (so
        parallel guesses cannot overrun the limit); `give_back()` it when the password was right.
        An address over the limit gets 429 whatever the password."""
        return await self.take(self.rules["login"], f"addr:{address_key(self.client_address(connection))}")

    def client_address(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        """The peer address, or — only when the peer is a trusted proxy — the nearest address in
        `X-Forwarded-For` that is not a trusted proxy (entries left of it are the client's to forge)."""
        client = connection.scope.get("client")
        peer = client[0] if client else "unknown"
        if not self._proxies or not self._trusted(peer):
            return peer
        forwarded = ",".join(connection.headers.getall("x-forwarded-for", []))
        hop = peer
        for entry in reversed([e.strip() for e in forwarded.split(",") if e.strip()]):
            try:
                ipaddress.ip_address(entry)
            except ValueError:
                return hop  # a proxy would not have written this: stop at the last hop we can vouch for
            if not self._trusted(entry):
                return entry
            hop = entry
        return hop

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._proxies)

    async def aclose(self) -> None:
        await self.counters.aclose()


def address_key(address: str) -> str:
    """The unit an address limit applies to: an IPv4 address, or an IPv6 /64 (one host typically
    holds a whole /64, and could otherwise rotate through 2^64 fresh addresses)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _per(window_s: int) -> str:
    return "minute" if window_s == 60 else f"{window_s // 60} minutes"


def lifespan(limiter: RateLimiter) -> Callable[[Litestar], Any]:
    @asynccontextmanager
    async def open_limiter(app: Litestar) -> AsyncIterator[None]:
        app.state["ratelimiter"] = limiter
        try:
            yield
        finally:
            await limiter.aclose()

    return open_limiter


def rate_limiter(state: State) -> RateLimiter:
    return state["ratelimiter"]  # type: ignore[no-any-return]
