from __future__ import annotations

import logging
from typing import Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import Cookie, State
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.auth.credentials import revoked
from api.auth.middleware import SESSION_COOKIE, credential_of
from api.auth.schemas import (
    LoginRequest,
    LoginResponse,
    PasswordChange,
    TokenCreate,
    TokenCreated,
    TokenRead,
    UserRead,
)
from api.errors import (
    AuthInvalidCredentials,
    BadRequest,
    TokenNotFound,
    error_responses,
)
from api.pagination import Page, PageParam, PageSizeParam, paginate
from api.ratelimit import rate_limiter
from api.state import services
from shared.users import repository as users
from shared.users.passwords import ahash_password, averify_password
from shared.users.repository import SESSION_TTL

# Audit lines name user ids and client addresses, never what was typed: a password entered in the
# username field must not end up in the log.
log = logging.getLogger("sqlagent.auth")


def user_read(user: users.User) -> UserRead:
    return UserRead(id=user.id, username=user.username, role=user.role)


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]

    @post(
        "/login",
        operation_id="login",
        exclude_from_auth=True,
        status_code=200,
        responses=error_responses(401, 413, 422, 429),
    )
    async def login(
        self, request: Request[Any, Any, Any], data: JSONBody[LoginRequest], state: State
    ) -> Response[LoginResponse]:
        svc = services(state)
        # A failed-login slot for the client address is taken before the password is checked and
        # given back only when it was right: successes never count, parallel guesses cannot overrun.
        limiter = rate_limiter(state)
        slot = await limiter.login_attempt(request)
        found = await users.get_login(svc.db, data.username)
        # Verify against a dummy hash when the user is unknown: same cost, no user enumeration.
        ok, new_hash = await averify_password(found[1] if found else None, data.password)
        if not found or not ok or not found[0].active:
            who = f"user {found[0].id}" if found else "an unknown user"
            log.info("failed login for %s from %s", who, limiter.client_address(request))
            raise AuthInvalidCredentials()
        await slot.give_back()
        user = found[0]
        log.info("login: user %s from %s", user.id, limiter.client_address(request))
        if new_hash:
            await users.rehash_password(svc.db, user.id, new_hash)
        secret, _ = await users.create_session(svc.db, user.id)
        cookie = Cookie(
            key=SESSION_COOKIE,
            value=secret,
            max_age=int(SESSION_TTL.total_seconds()),
            path="/",
            httponly=True,
            secure=svc.settings.security.cookie_secure,
            samesite="strict",
        )
        return Response(LoginResponse(user=user_read(user)), cookies=[cookie])

    @post(
        "/logout", operation_id="logout", status_code=HTTP_204_NO_CONTENT, responses=error_responses(400, 415)
    )
    async def logout(self, request: Request[Any, Any, Any], state: State) -> Response[None]:
        credential = credential_of(request)
        if credential.session_id is None:
            # The token is valid, so not 401: the client asked for something that does not apply to it.
            raise BadRequest(
                "Logout ends a cookie session; revoke API tokens with DELETE /api/auth/tokens/{id}"
            )
        svc = services(state)
        await users.revoke_session(svc.db, credential.session_id)
        expired = Cookie(
            key=SESSION_COOKIE,
            value="",
            max_age=0,
            path="/",
            httponly=True,
            secure=svc.settings.security.cookie_secure,
            samesite="strict",
        )
        return Response(None, status_code=HTTP_204_NO_CONTENT, cookies=[expired])

    @get("/me", operation_id="me", responses=error_responses())
    async def me(self, request: Request[Any, Any, Any]) -> UserRead:
        return user_read(request.user)

    @post(
        "/password",
        operation_id="change_password",
        status_code=HTTP_204_NO_CONTENT,
        responses=error_responses(400, 415),
    )
    async def change_password(
        self, request: Request[Any, Any, Any], data: JSONBody[PasswordChange], state: State
    ) -> None:
        svc = services(state)
        credential = credential_of(request)
        # A wrong current password is a failed login too: a stolen session must not become a
        # password-guessing oracle.
        slot = await rate_limiter(state).login_attempt(request)
        found = await users.get_login(svc.db, credential.user.username)
        ok, _ = await averify_password(found[1] if found else None, data.current_password)
        if not ok:
            raise BadRequest("The current password is wrong")
        await slot.give_back()
        await users.set_password(
            svc.db,
            credential.user.id,
            await ahash_password(data.new_password),
            keep_session=credential.session_id,
        )

    @post(
        "/tokens", operation_id="create_token", status_code=HTTP_201_CREATED, responses=error_responses(415)
    )
    async def create_token(
        self, request: Request[Any, Any, Any], data: JSONBody[TokenCreate], state: State
    ) -> TokenCreated:
        info, secret = await users.create_token(services(state).db, request.user.id, data.name)
        return TokenCreated(id=info.id, name=info.name, token=secret, created_at=info.created_at)

    @get("/tokens", operation_id="list_tokens", responses=error_responses())
    async def list_tokens(
        self,
        request: Request[Any, Any, Any],
        state: State,
        page: PageParam = 1,
        page_size: PageSizeParam = 20,
    ) -> Page[TokenRead]:
        items, total = await users.list_tokens(
            services(state).db, request.user.id, page=page, page_size=page_size
        )
        return paginate(
            [
                TokenRead(id=t.id, name=t.name, created_at=t.created_at, last_used_at=t.last_used_at)
                for t in items
            ],
            page=page,
            page_size=page_size,
            total=total,
        )

    @delete("/tokens/{token_id:int}", operation_id="revoke_token", responses=error_responses(404, 415))
    async def revoke_token(
        self, request: Request[Any, Any, Any], token_id: FromPath[int], state: State
    ) -> None:
        svc = services(state)
        if not await users.revoke_token(svc.db, request.user.id, token_id):
            raise TokenNotFound()
        await revoked(svc.credentials, svc.bus, request.user.id)
