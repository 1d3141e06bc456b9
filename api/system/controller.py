"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import functools

import msgspec
import redis.asyncio as aioredis
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec

from api.state import Services, services
from shared.db.migrate import available

CHECK_TIMEOUT_S = 2.0
OK = "ok"
IN_PROCESS = "in-process"


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct, omit_defaults=True):
    """`components` maps each dependency to "ok" or what is wrong with it. When not ready, the
    body also has the error mapping's `detail` (naming the failed components) and `error_code`."""

    status: str
    components: dict[str, str]
    detail: str | None = None
    error_code: str | None = None


@functools.cache
def _migration_names(dialect: str) -> frozenset[str]:
    return frozenset(m.name for m in available(dialect))


async def _database(svc: Services) -> str:
    # Through the app's own pool: a probe every few seconds must not open connections.
    rows = await svc.db.fetch("SELECT name FROM schema_migrations")
    dialect = "sqlite" if svc.settings.database.dialect == "sqlite" else "postgres"
    missing = sorted(_migration_names(dialect) - {r["name"] for r in rows})
    return OK if not missing else f"migrations pending: {', '.join(missing)} (run sqlagent migrate)"


async def _redis(url: str) -> str:
    client = aioredis.Redis.from_url(
        url, socket_timeout=CHECK_TIMEOUT_S, socket_connect_timeout=CHECK_TIMEOUT_S
    )
    try:
        await client.ping()
        return OK
    finally:
        await client.aclose()


async def _check(probe: asyncio.Future[str] | asyncio.Task[str]) -> str:
    try:
        return await asyncio.wait_for(probe, CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"


class SystemController(Controller):
    tags = ["system"]

    @get("/health", operation_id="health", exclude_from_auth=True)
    async def health(self) -> Health:
        """Liveness: answers while the process serves requests; checks no dependency."""
        return Health(status=OK)

    @get(
        "/ready",
        operation_id="ready",
        exclude_from_auth=True,
        responses={503: ResponseSpec(data_container=Readiness, description="A dependency is unavailable")},
    )
    async def ready(self, state: State) -> Response[Readiness]:
        """Readiness: the app database (with every migration applied), the broker and Redis."""
        svc = services(state)
        broker_url, redis_url = svc.settings.broker.broker_url, svc.settings.broker.redis_url
        probes: dict[str, asyncio.Task[str]] = {"database": asyncio.create_task(_database(svc))}
        if broker_url is not None:
            probes["broker"] = asyncio.create_task(_redis(broker_url))
        if redis_url is not None:
            probes["redis"] = (
                probes["broker"] if redis_url == broker_url else asyncio.create_task(_redis(redis_url))
            )
        results = await asyncio.gather(*(_check(p) for p in probes.values()))
        components = dict(zip(probes, results, strict=True))
        # Embedded mode: kombu's in-memory transport and the in-process bus, nothing to reach.
        if broker_url is None:
            components["broker"] = IN_PROCESS
        if redis_url is None:
            components["redis"] = IN_PROCESS
        failed = [f"{name} {status}" for name, status in components.items() if status not in (OK, IN_PROCESS)]
        if not failed:
            return Response(Readiness(status=OK, components=components))
        return Response(
            Readiness(
                status="unavailable",
                components=components,
                detail="Not ready: " + "; ".join(failed),
                error_code="SERVICE_UNAVAILABLE",
            ),
            status_code=503,
        )
