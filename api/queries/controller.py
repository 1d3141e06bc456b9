from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.response import ServerSentEvent, Stream
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from api.errors import InvalidState, error_responses
from api.pagination import Page, PageParam, PageSizeParam, Pagination, paginate
from api.queries import events, service
from api.queries.schemas import AttemptCreate, AttemptRead, ResultColumn, ResultsPage, attempt_read
from api.sse import EventStream
from api.state import Services, services
from shared.attempts import repository as attempts
from shared.attempts.models import Attempt
from shared.attempts.status import Status
from shared.results import repository as results

StatusFilter = Annotated[Status | None, QueryParameter(description="only attempts with this status")]
ResultPageSize = Annotated[int, QueryParameter(ge=1, le=1000, description="rows per page (1-1000)")]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(name="Idempotency-Key", max_length=200, description="same key within 24 h: same attempt"),
]
LastEventId = Annotated[
    str | None, HeaderParameter(name="Last-Event-ID", max_length=20, description="resume after this sequence")
]


class QueriesController(Controller):
    path = "/api/queries"
    tags = ["queries"]

    @post(
        "/",
        operation_id="submit_query",
        status_code=HTTP_202_ACCEPTED,
        responses=error_responses(404, 409, 415),
    )
    async def submit(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[AttemptCreate],
        state: State,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[AttemptRead]:
        attempt = await service.submit(services(state), request.user, data, idempotency_key)
        return Response(
            attempt_read(attempt),
            status_code=HTTP_202_ACCEPTED,
            headers={"Location": f"/api/queries/{attempt.id}"},
        )

    @get("/", operation_id="list_queries", responses=error_responses())
    async def list_attempts(
        self,
        request: Request[Any, Any, Any],
        state: State,
        page: PageParam = 1,
        page_size: PageSizeParam = 20,
        status: StatusFilter = None,
        user_id: Annotated[
            int | None, QueryParameter(ge=1, description="admin only: one user's attempts")
        ] = None,
    ) -> Page[AttemptRead]:
        user = request.user
        owner = user_id if user.role == "admin" else user.id
        items, total = await attempts.page(
            services(state).db,
            user_id=owner,
            status=status.value if status else None,
            page=page,
            page_size=page_size,
        )
        return paginate([attempt_read(a) for a in items], page=page, page_size=page_size, total=total)

    @get("/{attempt_id:str}", operation_id="get_query", responses=error_responses(404))
    async def get_attempt(
        self, request: Request[Any, Any, Any], attempt_id: FromPath[str], state: State
    ) -> AttemptRead:
        return attempt_read(await service.visible_attempt(services(state), request.user, attempt_id))

    @delete(
        "/{attempt_id:str}",
        operation_id="delete_query",
        status_code=HTTP_204_NO_CONTENT,
        responses=error_responses(404),
    )
    async def delete_attempt(
        self, request: Request[Any, Any, Any], attempt_id: FromPath[str], state: State
    ) -> None:
        svc = services(state)
        attempt = await service.visible_attempt(svc, request.user, attempt_id)
        # A running attempt's worker finds its row gone at its next step and stops there.
        await attempts.request_cancel(svc.db, attempt.id)
        await attempts.delete(svc.db, attempt.id)

    @post(
        "/{attempt_id:str}/cancel",
        operation_id="cancel_query",
        status_code=HTTP_202_ACCEPTED,
        responses=error_responses(404, 409, 415),
    )
    async def cancel(
        self, request: Request[Any, Any, Any], attempt_id: FromPath[str], state: State
    ) -> AttemptRead:
        svc = services(state)
        attempt = await service.visible_attempt(svc, request.user, attempt_id)
        return attempt_read(await service.cancel(svc, attempt))

    @get("/{attempt_id:str}/results", operation_id="get_query_results", responses=error_responses(404, 409))
    async def get_results(
        self,
        request: Request[Any, Any, Any],
        attempt_id: FromPath[str],
        state: State,
        page: PageParam = 1,
        page_size: ResultPageSize = 100,
    ) -> ResultsPage:
        svc = services(state)
        attempt = await service.visible_attempt(svc, request.user, attempt_id)
        meta = await _stored(svc, attempt)
        rows = await results.rows_slice(svc.db, attempt.id, (page - 1) * page_size, page_size)
        return ResultsPage(
            columns=[ResultColumn(c.name, c.type) for c in meta.columns],
            rows=rows,
            truncated=meta.truncated,
            pagination=Pagination(
                page=page,
                page_size=page_size,
                total_count=meta.row_count,
                total_pages=(meta.row_count + page_size - 1) // page_size,
            ),
        )

    @get(
        "/{attempt_id:str}/results.csv",
        operation_id="get_query_results_csv",
        media_type="text/csv",
        responses=error_responses(404, 409),
    )
    async def get_results_csv(
        self, request: Request[Any, Any, Any], attempt_id: FromPath[str], state: State
    ) -> Stream:
        svc = services(state)
        attempt = await service.visible_attempt(svc, request.user, attempt_id)
        meta = await _stored(svc, attempt)
        chunks = await results.all_chunks(svc.db, attempt.id)
        return Stream(
            _csv(meta.columns, chunks),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{attempt.id}.csv"'},
        )

    @get(
        "/{attempt_id:str}/events",
        operation_id="stream_query_events",
        responses=error_responses(404),
        media_type="text/event-stream",
    )
    async def stream_events(
        self,
        request: Request[Any, Any, Any],
        attempt_id: FromPath[str],
        state: State,
        last_event_id: LastEventId = None,
    ) -> ServerSentEvent:
        svc = services(state)
        attempt = await service.visible_attempt(svc, request.user, attempt_id)
        after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
        return EventStream(events.EventFeed(svc, attempt.id, after))


async def _stored(svc: Services, attempt: Attempt) -> results.StoredResult:
    if attempt.status != Status.SUCCEEDED:
        raise InvalidState(f"The attempt has no results: it is {attempt.status}")
    meta = await results.get_meta(svc.db, attempt.id)
    if meta is None:
        raise InvalidState(
            "The results of this attempt were purged (SQLAGENT_RESULT_TTL_DAYS); ask the question again"
        )
    return meta


def _csv_field(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return msgspec.json.encode(value).decode()
    return value


async def _csv(columns: list[results.StoredColumn], chunks: list[list[list[object]]]) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([c.name for c in columns])
    for chunk in chunks:
        for row in chunk:
            writer.writerow([_csv_field(v) for v in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()
