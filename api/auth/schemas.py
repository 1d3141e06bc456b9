from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

Username = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
NewPassword = Annotated[str, msgspec.Meta(min_length=8, max_length=1024)]
TokenName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    password: Password


class UserRead(msgspec.Struct):
    id: int
    username: str
    role: str


class LoginResponse(msgspec.Struct):
    user: UserRead


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True):
    current_password: Password
    new_password: NewPassword


class TokenCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: TokenName


class TokenCreated(msgspec.Struct):
    id: int
    name: str
    token: str
    created_at: datetime


class TokenRead(msgspec.Struct):
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
