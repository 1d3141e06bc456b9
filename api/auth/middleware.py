"""Authentication: the `session_token` cookie or `Authorization: Bearer <api token>`.

Runs before the handler's body is parsed, so an anonymous or unprivileged caller gets 401/403,
never 422. Also the CSRF rule: a cookie-authenticated unsafe request must be JSON, and the per-user
rate limits (api/ratelimit.py), which need to know who is asking."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from api.errors import AuthSessionExpired, AuthSessionInvalid, PermissionDenied, UnsupportedMediaType
from api.ratelimit import rate_limiter
from api.state import Services, services
from shared.db.database import utcnow
from shared.users import repository as users
from shared.users.repository import Credential

SESSION_COOKIE = "session_token"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        credential = await self._credential(connection)
        await rate_limiter(connection.app.state).check_request(connection, credential.user)
        return AuthenticationResult(user=credential.user, auth=credential)

    async def _credential(self, connection: ASGIConnection[Any, Any, Any, Any]) -> Credential:
        svc = services(connection.app.state)
        header = connection.headers.get("authorization")
        if header:
            scheme, _, secret = header.partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                raise AuthSessionInvalid("Use 'Authorization: Bearer <api token>'")
            credential = await _token(svc, secret.strip())
            if credential is None:
                raise AuthSessionInvalid("Invalid or revoked API token")
            return credential
        cookie = connection.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise AuthSessionInvalid()
        credential = await users.session_credential(svc.db, cookie)
        if credential is None:
            raise AuthSessionInvalid("Invalid or revoked session; log in again")
        if credential.expired:
            raise AuthSessionExpired()
        if connection.scope.get("method", "GET") in _UNSAFE:
            content_type = connection.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if content_type != "application/json":
                raise UnsupportedMediaType(
                    "Requests authenticated by cookie must send Content-Type: application/json"
                )
        return credential


async def _token(svc: Services, secret: str) -> Credential | None:
    """The API token's credential, from the process's cache or the database (api/auth/credentials.py)."""
    token_digest = users.digest(secret)
    entry = svc.credentials.get(token_digest)
    if entry is None:
        generation = svc.credentials.generation
        found = await users.find_token(svc.db, token_digest)
        if found is None:
            return None
        entry = svc.credentials.put(token_digest, *found, generation)
    now = utcnow()
    if users.use_is_stale(entry.last_used_at, now):
        await users.touch_token(svc.db, entry.credential.token_id or 0, now)
        entry.last_used_at = now
    return entry.credential


def admin_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    # Litestar's automatic OPTIONS handlers skip authentication (there is no user): nothing to guard.
    if connection.scope.get("method", "GET") == "OPTIONS":
        return
    if connection.user.role != "admin":
        raise PermissionDenied()


def credential_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Credential:
    return connection.auth  # type: ignore[no-any-return]
