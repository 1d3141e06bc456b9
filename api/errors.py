"""The API's one error mapping: every 4xx/5xx body is `{"detail", "error_code"}` (422 adds
`errors`), whatever raised it — our own `AppError`s, Litestar's routing and validation errors, or
a bug (500, revealing nothing)."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any, ClassVar

import asyncpg
import msgspec
import redis.exceptions
from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    SerializationException,
    ValidationException,
)
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

log = logging.getLogger("sqlagent.api")


class ErrorLocation(msgspec.Struct):
    loc: list[str]
    msg: str


class ErrorBody(msgspec.Struct, omit_defaults=True):
    detail: str
    error_code: str
    errors: list[ErrorLocation] | None = None


class AppError(Exception):
    status_code: ClassVar[int] = 400
    error_code: ClassVar[str] = "BAD_REQUEST"
    default_detail: ClassVar[str] = "Bad request"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        self.detail = detail or self.default_detail
        self.headers = headers or {}
        super().__init__(self.detail)


class BadRequest(AppError):
    pass


class RequestValidationError(AppError):
    """Input that passed decoding but breaks a rule the schema cannot express (e.g. trimming)."""

    status_code, error_code, default_detail = 422, "VALIDATION_ERROR", "Invalid request"

    def __init__(self, loc: list[str], msg: str) -> None:
        super().__init__(f"Invalid request: {'.'.join(loc)}: {msg}")
        self.errors = [ErrorLocation(loc=loc, msg=msg)]


class AuthSessionInvalid(AppError):
    status_code, error_code, default_detail = 401, "AUTH_SESSION_INVALID", "Authentication required"


class AuthSessionExpired(AppError):
    status_code, error_code, default_detail = (
        401,
        "AUTH_SESSION_EXPIRED",
        "Your session has expired; log in again",
    )


class AuthInvalidCredentials(AppError):
    status_code, error_code, default_detail = 401, "AUTH_INVALID_CREDENTIALS", "Invalid username or password"


class PermissionDenied(AppError):
    status_code, error_code, default_detail = 403, "PERMISSION_DENIED", "This needs the admin role"


class QueryNotFound(AppError):
    status_code, error_code, default_detail = 404, "QUERY_NOT_FOUND", "No such query attempt"


class KnowledgeNotFound(AppError):
    status_code, error_code, default_detail = 404, "KNOWLEDGE_NOT_FOUND", "No such knowledge example"


class UserNotFound(AppError):
    status_code, error_code, default_detail = 404, "USER_NOT_FOUND", "No such user"


class TokenNotFound(AppError):
    status_code, error_code, default_detail = 404, "NOT_FOUND", "No such API token"


class DataSourceNotFound(AppError):
    status_code, error_code, default_detail = 404, "DATA_SOURCE_NOT_FOUND", "No such data source"


class InvalidState(AppError):
    status_code, error_code, default_detail = 409, "INVALID_STATE", "Not possible in the current state"


class UserExists(AppError):
    status_code, error_code, default_detail = 409, "USER_EXISTS", "A user with this name exists"


class UnsupportedMediaType(AppError):
    status_code, error_code, default_detail = (
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        "Send the body as application/json",
    )


class SqlRejectedError(AppError):
    status_code, error_code, default_detail = 422, "SQL_REJECTED", "The SQL was rejected by the guard"


class RateLimitExceeded(AppError):
    status_code, error_code, default_detail = 429, "RATE_LIMIT_EXCEEDED", "Too many requests; slow down"


class ServiceUnavailable(AppError):
    status_code, error_code, default_detail = (
        503,
        "SERVICE_UNAVAILABLE",
        "A service sqlagent depends on is unavailable; try again shortly",
    )


_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "AUTH_SESSION_INVALID",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "INVALID_STATE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMIT_EXCEEDED",
    503: "SERVICE_UNAVAILABLE",
}

_encoder = msgspec.json.Encoder()


def _response(status: int, body: ErrorBody, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        content=_encoder.encode(body), status_code=status, media_type=MediaType.JSON, headers=headers
    )


def _validation_locations(extra: Any) -> list[ErrorLocation]:
    errors = []
    for item in extra if isinstance(extra, list) else []:
        if not isinstance(item, dict):
            continue
        loc = [str(item["source"])] if item.get("source") else []
        if item.get("key"):
            loc.extend(str(item["key"]).lstrip("$.").split(".") if str(item["key"]) != "$" else [])
        errors.append(ErrorLocation(loc=loc or ["body"], msg=str(item.get("message", "invalid value"))))
    return errors


def app_error_handler(_: Request[Any, Any, Any], exc: AppError) -> Response[bytes]:
    errors = exc.errors if isinstance(exc, RequestValidationError) else None
    return _response(exc.status_code, ErrorBody(exc.detail, exc.error_code, errors), exc.headers)


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    if isinstance(exc, ValidationException):
        errors = _validation_locations(exc.extra) or [ErrorLocation(loc=["body"], msg=exc.detail)]
        detail = "Invalid request: " + "; ".join(f"{'.'.join(e.loc)}: {e.msg}" for e in errors)
        return _response(422, ErrorBody(detail, "VALIDATION_ERROR", errors))
    if isinstance(exc.__cause__, SerializationException):
        # A body that is not even JSON: SPEC counts it as a validation error, not a bad request.
        errors = [ErrorLocation(loc=["body"], msg=f"malformed JSON: {exc.__cause__}")]
        return _response(
            422, ErrorBody("Invalid request: the body is not valid JSON", "VALIDATION_ERROR", errors)
        )
    if isinstance(exc, NotFoundException):
        return _response(404, ErrorBody("No such route", "NOT_FOUND"))
    if isinstance(exc, MethodNotAllowedException):
        return _response(405, ErrorBody("Method not allowed", "METHOD_NOT_ALLOWED"), exc.headers)
    status = exc.status_code
    if status >= 500:
        # A client that hung up mid-request is not a server fault worth an error line.
        level = logging.INFO if "disconnected" in exc.detail else logging.ERROR
        log.log(level, "http error %s on %s %s: %s", status, request.method, request.url.path, exc.detail)
        code = _HTTP_CODES.get(status, "INTERNAL_ERROR")
        return _response(
            status, ErrorBody("Internal server error" if code == "INTERNAL_ERROR" else exc.detail, code)
        )
    return _response(status, ErrorBody(exc.detail, _HTTP_CODES.get(status, "BAD_REQUEST")), exc.headers)


def unavailable_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """A dependency (app database, Redis) is briefly unreachable: 503, not 500, so clients retry."""
    log.warning("dependency unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return _response(
        503,
        ErrorBody("A service sqlagent depends on is unavailable; try again shortly", "SERVICE_UNAVAILABLE"),
        {"Retry-After": "5"},
    )


def sqlite_operational_handler(
    request: Request[Any, Any, Any], exc: sqlite3.OperationalError
) -> Response[bytes]:
    if "locked" in str(exc) or "unable to open" in str(exc) or "disk I/O" in str(exc):
        return unavailable_handler(request, exc)
    return internal_error_handler(request, exc)


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _response(HTTP_500_INTERNAL_SERVER_ERROR, ErrorBody("Internal server error", "INTERNAL_ERROR"))


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    AppError: app_error_handler,
    HTTPException: http_exception_handler,
    # Outages of the app database or Redis (the handler nearest in the MRO wins).
    asyncpg.PostgresConnectionError: unavailable_handler,
    asyncpg.InterfaceError: unavailable_handler,
    asyncpg.TooManyConnectionsError: unavailable_handler,
    asyncpg.CannotConnectNowError: unavailable_handler,
    redis.exceptions.ConnectionError: unavailable_handler,
    redis.exceptions.TimeoutError: unavailable_handler,
    OSError: unavailable_handler,
    TimeoutError: unavailable_handler,
    sqlite3.OperationalError: sqlite_operational_handler,
    Exception: internal_error_handler,
}

_DESCRIPTIONS = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    413: "Body too large",
    415: "Body must be JSON",
    422: "Invalid input",
    429: "Rate limited",
    500: "Internal error",
    503: "Unavailable",
}


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI declarations of the error bodies a route can answer (plus those every route can)."""
    # 400 replaces the schema Litestar generates for its own ValidationException (we answer 422).
    every = {400, 401, 413, 422, 429, 500, 503}
    return {
        status: ResponseSpec(data_container=ErrorBody, description=_DESCRIPTIONS.get(status, "Error"))
        for status in sorted(set(statuses) | every)
    }
