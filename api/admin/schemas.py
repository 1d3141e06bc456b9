from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from api.auth.schemas import NewPassword, Username
from shared.users.repository import User

Role = Literal["admin", "user"]


class UserCreate(msgspec.Struct, forbid_unknown_fields=True):
    username: Username
    password: NewPassword
    role: Role = "user"


class UserUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Only the fields sent change; `null` is not a value any of them can take."""

    role: Role | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET
    password: NewPassword | msgspec.UnsetType = msgspec.UNSET


class AdminUserRead(msgspec.Struct):
    id: int
    username: str
    role: str
    active: bool
    created_at: datetime


def admin_user_read(user: User) -> AdminUserRead:
    return AdminUserRead(
        id=user.id, username=user.username, role=user.role, active=user.active, created_at=user.created_at
    )
