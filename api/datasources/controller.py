from __future__ import annotations

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK

from api.auth.middleware import admin_only
from api.datasources import service
from api.datasources.schemas import DataSourceList, SchemaRead, data_source_read, schema_read
from api.errors import error_responses
from api.state import services


class DataSourcesController(Controller):
    path = "/api/data-sources"
    tags = ["data sources"]

    @get("/", operation_id="list_data_sources", responses=error_responses())
    async def list_data_sources(self, state: State) -> DataSourceList:
        return DataSourceList(items=[data_source_read(s) for s in services(state).settings.data_sources])

    @get("/{name:str}/schema", operation_id="get_data_source_schema", responses=error_responses(404))
    async def get_schema(self, name: FromPath[str], state: State) -> SchemaRead:
        svc = services(state)
        return schema_read(await service.current(svc, service.data_source(svc, name)))

    @post(
        "/{name:str}/schema/refresh",
        operation_id="refresh_data_source_schema",
        status_code=HTTP_200_OK,
        guards=[admin_only],
        responses=error_responses(403, 404, 415),
    )
    async def refresh_schema(self, name: FromPath[str], state: State) -> SchemaRead:
        svc = services(state)
        return schema_read(await service.refresh(svc, service.data_source(svc, name)))
