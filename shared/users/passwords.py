"""argon2id password hashing. A hash costs ~90 ms here: async callers use the `a*` functions,
which run it in a worker thread so the event loop keeps serving."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
# Verified against when the user does not exist, so an unknown name costs as much as a known one.
_DUMMY_HASH = _hasher.hash("sqlagent-timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> tuple[bool, str | None]:
    """(ok, new_hash): new_hash is set when the stored hash used older parameters."""
    try:
        _hasher.verify(stored_hash or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False, None
    if stored_hash is None:
        return False, None
    return True, (_hasher.hash(password) if _hasher.check_needs_rehash(stored_hash) else None)


async def ahash_password(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def averify_password(stored_hash: str | None, password: str) -> tuple[bool, str | None]:
    return await asyncio.to_thread(verify_password, stored_hash, password)
