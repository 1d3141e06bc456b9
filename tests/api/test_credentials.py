"""The API-token cache: when it may answer, and what makes it forget."""

from __future__ import annotations

from datetime import UTC, datetime

from api.auth.credentials import MAX_ENTRIES, CredentialCache
from shared.users.repository import Credential, User

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def credential(user_id: int, token_id: int = 1) -> Credential:
    user = User(id=user_id, username=f"u{user_id}", role="user", active=True, created_at=NOW)
    return Credential(user=user, token_id=token_id)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def live_cache(clock: Clock | None = None) -> CredentialCache:
    cache = CredentialCache(ttl_s=5.0, clock=clock or Clock())
    cache.on_live()
    return cache


def test_nothing_is_cached_until_the_revocation_channel_is_subscribed() -> None:
    cache = CredentialCache()
    cache.put("d1", credential(1), None, cache.generation)
    assert cache.get("d1") is None
    cache.on_live()
    cache.put("d1", credential(1), None, cache.generation)
    assert cache.get("d1") is not None


def test_losing_the_channel_empties_the_cache_and_stops_using_it() -> None:
    cache = live_cache()
    cache.put("d1", credential(1), None, cache.generation)
    cache.on_down()
    assert cache.get("d1") is None
    cache.on_live()  # messages sent while it was down are lost: it starts empty
    assert cache.get("d1") is None


def test_a_revocation_message_forgets_only_that_users_entries() -> None:
    cache = live_cache()
    cache.put("d1", credential(1, 1), None, cache.generation)
    cache.put("d2", credential(1, 2), None, cache.generation)
    cache.put("d3", credential(2, 3), None, cache.generation)
    cache.on_message(b"1")
    assert cache.get("d1") is None and cache.get("d2") is None
    assert cache.get("d3") is not None
    cache.on_message(b"not a user id")  # unknown content: forget everything rather than guess
    assert cache.get("d3") is None


def test_a_lookup_that_raced_with_a_revocation_is_not_stored() -> None:
    cache = live_cache()
    generation = cache.generation  # the middleware reads this before its database lookup
    cache.forget_user(7)  # meanwhile, any revocation
    cache.put("d1", credential(1), None, generation)
    assert cache.get("d1") is None


def test_entries_expire() -> None:
    clock = Clock()
    cache = live_cache(clock)
    cache.put("d1", credential(1), None, cache.generation)
    clock.now += 4.9
    assert cache.get("d1") is not None
    clock.now += 0.2
    assert cache.get("d1") is None


def test_the_cache_is_bounded() -> None:
    cache = live_cache()
    for i in range(MAX_ENTRIES + 10):
        cache.put(f"d{i}", credential(i), None, cache.generation)
    assert cache.get("d0") is None  # the oldest went first
    assert cache.get(f"d{MAX_ENTRIES + 9}") is not None
