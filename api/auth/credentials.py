"""API tokens, cached in the API process.

Looking a bearer token up was a database round trip on every request, about half of the app
database's work per submit. A hit here costs a dict lookup. Revocation stays immediate:

- every change that can end or alter an API token's credential (the token revoked; the user
  deactivated, demoted or otherwise changed by an admin) forgets the user's entries here and
  broadcasts the user id on Redis;
  every API process drops that user's entries when the message arrives (within milliseconds);
- the cache is only used while that broadcast channel is subscribed: from the moment the
  subscription drops until it is confirmed again (when messages may have been missed) every
  request goes to the database, and the cache starts empty;
- a lookup that raced with an invalidation is not cached (a generation counter), so a stale
  answer cannot be stored after the revocation that made it stale;
- entries expire after a few seconds anyway, which bounds what a change made behind the API's
  back (someone editing the database by hand) can take.

Sessions (cookies) are not cached: they carry expiry and are a browser's, not a script's, path."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from shared.events.bus import EventBus
from shared.users.repository import Credential

log = logging.getLogger("sqlagent.auth")

CHANNEL = "sqlagent:auth:revoked"
TTL_S = 5.0
MAX_ENTRIES = 10_000


class _Entry:
    __slots__ = ("credential", "expires", "last_used_at")

    def __init__(self, credential: Credential, expires: float, last_used_at: datetime | None) -> None:
        self.credential = credential
        self.expires = expires
        self.last_used_at = last_used_at


class CredentialCache:
    """Token digest → credential. Also the bus `Watcher` of the revocation channel."""

    def __init__(self, *, ttl_s: float = TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._generation = 0
        self.live = False  # the revocation channel is subscribed: entries can be trusted

    @property
    def generation(self) -> int:
        """Read before a database lookup, passed to `put` after it."""
        return self._generation

    def get(self, digest: str) -> _Entry | None:
        if not self.live:
            return None
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            del self._entries[digest]
            return None
        return entry

    def put(
        self, digest: str, credential: Credential, last_used_at: datetime | None, generation: int
    ) -> _Entry:
        """The entry for a database lookup; kept only if no revocation happened meanwhile."""
        entry = _Entry(credential, self._clock() + self._ttl_s, last_used_at)
        if not self.live or generation != self._generation:
            return entry  # a revocation happened while this was looked up: the answer may be stale
        if len(self._entries) >= MAX_ENTRIES:
            del self._entries[next(iter(self._entries))]  # the oldest
        self._entries[digest] = entry
        return entry

    def forget_user(self, user_id: int) -> None:
        self._generation += 1
        for digest in [d for d, e in self._entries.items() if e.credential.user.id == user_id]:
            del self._entries[digest]

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()

    # Watcher of CHANNEL

    def on_live(self) -> None:
        self.clear()  # whatever was revoked while we were not listening
        self.live = True

    def on_down(self) -> None:
        self.live = False
        self.clear()

    def on_message(self, data: bytes) -> None:
        try:
            user_id = int(data)
        except ValueError:
            log.warning("ignoring a malformed message on %s", CHANNEL)
            self.clear()
            return
        self.forget_user(user_id)


async def revoked(cache: CredentialCache, bus: EventBus, user_id: int) -> None:
    """Call after committing a change to `user_id`'s credentials, before answering."""
    cache.forget_user(user_id)
    try:
        await bus.broadcast(CHANNEL, str(user_id).encode())
    except Exception as exc:  # the others' caches expire within TTL_S; their feed is likely down too
        log.warning("could not broadcast a credential change of user %s: %s", user_id, exc)
