"""The single wiring point of the API: `create_app(settings)`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.types import Message, Scope

from api.admin.controller import AdminUsersController
from api.auth.controller import AuthController
from api.auth.credentials import CHANNEL as REVOCATIONS
from api.auth.credentials import CredentialCache
from api.auth.middleware import AuthMiddleware
from api.datasources.controller import DataSourcesController
from api.errors import EXCEPTION_HANDLERS
from api.knowledge.controller import KnowledgeController
from api.metrics import MetricsController, count_response
from api.queries.controller import QueriesController
from api.ratelimit import RateLimiter
from api.ratelimit import lifespan as rate_limits
from api.requestid import RequestIdMiddleware, finish_response, response_headers
from api.state import Services
from api.system.controller import SystemController
from shared.attempts import repository as attempts
from shared.attempts.intake import Intake, NewAttempt, mark_undispatched
from shared.attempts.models import Attempt
from shared.db.database import open_database
from shared.events.bus import make_bus
from shared.heap import frozen_after_start_up
from shared.settings import Settings, load_settings
from shared.tasks import Dispatcher, Publisher

Lifespan = Callable[[Litestar], AbstractAsyncContextManager[None]]

_PUBLIC = {"/health", "/ready", "/metrics", "/schema", "/api/auth/login"}
_API_CSP = "default-src 'none'; frame-ancestors 'none'"
_DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
)


def _security_headers(settings: Settings) -> Callable[[Message, Scope], Any]:
    # Appended as encoded pairs: no response of ours sets these itself, and this runs for every
    # response, where Litestar's MutableScopeHeaders (a search per header) was a visible cost.
    common = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
    ]
    if settings.security.cookie_secure:
        common.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
    api = [*common, (b"content-security-policy", _API_CSP.encode())]
    docs = [*common, (b"content-security-policy", _DOCS_CSP.encode())]

    async def before_send(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        path: str = scope.get("path", "")
        is_docs = path.startswith("/schema") and not path.endswith(".json")
        response_headers(message).extend(docs if is_docs else api)

    return before_send


def create_app(settings: Settings, *, lifespans: Sequence[Lifespan] = ()) -> Litestar:
    # Built here, not in the lifespan, so a bad SQLAGENT_TRUSTED_PROXIES fails at start-up.
    limiter = RateLimiter(settings.security, settings.broker.redis_url)

    @asynccontextmanager
    async def open_services(app: Litestar) -> AsyncIterator[None]:
        db = await open_database(settings.database.url)
        publisher = Publisher(
            settings.broker.broker_url, attempt_deadline_s=settings.agent.attempt_deadline_s
        )
        dispatcher = Dispatcher(
            publisher,
            lambda ids: attempts.mark_dispatched(db, ids),
            lambda ids: mark_undispatched(db, ids),
        )
        dispatcher.start()

        def committed(rows: list[tuple[Attempt, NewAttempt]]) -> None:
            for attempt, new in rows:
                dispatcher.dispatch(attempt.id, new.request_id, marked=True)

        intake = Intake(db, committed)
        intake.start()
        bus = make_bus(settings.broker.redis_url)
        credentials = CredentialCache()
        bus.watch(REVOCATIONS, credentials)
        app.state["services"] = Services(
            settings=settings,
            db=db,
            dispatcher=dispatcher,
            intake=intake,
            bus=bus,
            credentials=credentials,
        )
        try:
            yield
        finally:
            await intake.close()
            await bus.close()
            await dispatcher.close()
            await publisher.close()
            await db.close()

    return Litestar(
        route_handlers=[
            AuthController,
            QueriesController,
            SystemController,
            KnowledgeController,
            DataSourcesController,
            AdminUsersController,
            MetricsController,
        ],
        lifespan=[open_services, rate_limits(limiter), *lifespans],
        # The request id first, so every later step (authentication included) logs with it.
        middleware=[
            RequestIdMiddleware(),
            DefineMiddleware(AuthMiddleware, exclude=["^/schema", "^/metrics"]),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        before_send=[_security_headers(settings), finish_response, count_response],
        request_max_body_size=1_000_000,
        openapi_config=OpenAPIConfig(
            title="sqlagent",
            version="0.1.0",
            description="Questions in plain language, answered with provably read-only SQL.",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        # Our own logging setup (shared.logs); Litestar's default would replace it.
        logging_config=None,
        debug=False,
    )


def create_app_from_env() -> Litestar:
    """Factory for `uvicorn --factory` (several API worker processes)."""
    return create_app(load_settings(), lifespans=[frozen_after_start_up])
