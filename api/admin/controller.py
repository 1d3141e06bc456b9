"""User administration (admin only). The guard sits on the controller, so it runs before any body
is parsed: a non-admin gets 403 whatever they send."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.admin.schemas import AdminUserRead, UserCreate, UserUpdate, admin_user_read
from api.auth.credentials import revoked
from api.auth.middleware import admin_only, credential_of
from api.errors import InvalidState, UserExists, UserNotFound, error_responses
from api.pagination import Page, PageParam, PageSizeParam, paginate
from api.state import services
from shared.db.database import is_unique_violation
from shared.users import repository as users
from shared.users.passwords import ahash_password


def _given(value: Any) -> Any:
    return None if value is msgspec.UNSET else value


class AdminUsersController(Controller):
    path = "/api/admin/users"
    tags = ["admin"]
    guards = [admin_only]

    @get("/", operation_id="list_users", responses=error_responses(403))
    async def list_users(
        self, state: State, page: PageParam = 1, page_size: PageSizeParam = 20
    ) -> Page[AdminUserRead]:
        items, total = await users.list_users(services(state).db, page=page, page_size=page_size)
        return paginate([admin_user_read(u) for u in items], page=page, page_size=page_size, total=total)

    @post(
        "/",
        operation_id="create_user",
        status_code=HTTP_201_CREATED,
        responses=error_responses(403, 409, 413, 415),
    )
    async def create_user(self, data: JSONBody[UserCreate], state: State) -> Response[AdminUserRead]:
        db = services(state).db
        try:
            user = await users.create_user(
                db, username=data.username, password_hash=await ahash_password(data.password), role=data.role
            )
        except Exception as exc:
            if is_unique_violation(exc):
                raise UserExists(f"A user named {data.username!r} exists") from None
            raise
        return Response(
            admin_user_read(user),
            status_code=HTTP_201_CREATED,
            headers={"Location": f"/api/admin/users/{user.id}"},
        )

    @patch("/{user_id:int}", operation_id="update_user", responses=error_responses(403, 404, 409, 413, 415))
    async def update_user(
        self,
        request: Request[Any, Any, Any],
        user_id: FromPath[int],
        data: JSONBody[UserUpdate],
        state: State,
    ) -> AdminUserRead:
        password = _given(data.password)
        credential = credential_of(request)
        user = await _update(
            state,
            user_id,
            role=_given(data.role),
            active=_given(data.active),
            password_hash=await ahash_password(password) if password is not None else None,
            # An admin resetting their own password keeps the session they are using.
            keep_session=credential.session_id if user_id == credential.user.id else None,
        )
        return admin_user_read(user)

    @delete(
        "/{user_id:int}",
        operation_id="deactivate_user",
        status_code=HTTP_204_NO_CONTENT,
        responses=error_responses(403, 404, 409, 415),
    )
    async def deactivate_user(self, user_id: FromPath[int], state: State) -> None:
        await _update(state, user_id, role=None, active=False)


async def _update(state: State, user_id: int, **changes: Any) -> users.User:
    svc = services(state)
    try:
        user = await users.update_user(svc.db, user_id, **changes)
    except users.LastActiveAdmin:
        raise InvalidState("This would leave no active admin; make another user admin first") from None
    if user is None:
        raise UserNotFound()
    # A role or an active flag is part of every cached credential of the user.
    await revoked(svc.credentials, svc.bus, user_id)
    return user
