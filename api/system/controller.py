"""Liveness, readiness and the data-source list."""

from __future__ import annotations

import asyncio

import msgspec
import redis.asyncio as aioredis
from litestar import Controller, Response, get
from litestar.datastructures import State

from api.errors import error_responses
from api.state import services
from shared.db.migrate import pending


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: str
    components: dict[str, str]


class DataSourceRead(msgspec.Struct):
    name: str
    dialect: str
    description: str


class DataSourceList(msgspec.Struct):
    items: list[DataSourceRead]


class SystemController(Controller):
    tags = ["system"]

    @get("/health", operation_id="health", exclude_from_auth=True)
    async def health(self) -> Health:
        return Health(status="ok")

    @get("/ready", operation_id="ready", exclude_from_auth=True, responses={503: error_responses(503)[503]})
    async def ready(self, state: State) -> Response[Readiness]:
        svc = services(state)
        components: dict[str, str] = {}
        try:
            await asyncio.wait_for(svc.db.fetchval("SELECT 1"), 3)
            missing = await asyncio.wait_for(pending(svc.settings.database.url), 3)
            components["database"] = "ok" if not missing else f"migrations pending: {', '.join(missing)}"
        except Exception as exc:
            components["database"] = f"unreachable: {type(exc).__name__}"
        redis_urls = {"broker": svc.settings.broker.broker_url, "redis": svc.settings.broker.redis_url}
        for name, url in redis_urls.items():
            if url is None:
                continue
            client = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
            try:
                await client.ping()
                components[name] = "ok"
            except Exception as exc:
                components[name] = f"unreachable: {type(exc).__name__}"
            finally:
                await client.aclose()
        ok = all(v == "ok" for v in components.values())
        return Response(Readiness(status="ok" if ok else "unavailable", components=components),
                        status_code=200 if ok else 503)

    @get("/api/data-sources", operation_id="list_data_sources", responses=error_responses())
    async def data_sources(self, state: State) -> DataSourceList:
        return DataSourceList(
            items=[
                DataSourceRead(name=s.name, dialect=s.dialect, description=s.description)
                for s in services(state).settings.data_sources
            ]
        )
