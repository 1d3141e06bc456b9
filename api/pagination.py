"""The list envelope every list endpoint answers (SPEC "Lists")."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

import msgspec
from litestar.params import QueryParameter

T = TypeVar("T")

PageParam = Annotated[int, QueryParameter(ge=1, le=1_000_000, description="page number, from 1")]
PageSizeParam = Annotated[int, QueryParameter(ge=1, le=100, description="items per page (1-100)")]


class Pagination(msgspec.Struct):
    page: int
    page_size: int
    total_count: int
    total_pages: int


class Page(msgspec.Struct, Generic[T]):
    items: list[T]
    pagination: Pagination


def paginate(items: list[T], *, page: int, page_size: int, total: int) -> Page[T]:
    return Page(
        items=items,
        pagination=Pagination(
            page=page,
            page_size=page_size,
            total_count=total,
            total_pages=(total + page_size - 1) // page_size,
        ),
    )
