from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.auth.middleware import admin_only
from api.errors import error_responses
from api.knowledge import service
from api.knowledge.schemas import KnowledgeRead, KnowledgeWrite, knowledge_read
from api.pagination import Page, PageParam, PageSizeParam, paginate
from api.state import services

DataSourceFilter = Annotated[
    str | None, QueryParameter(max_length=100, description="only the examples of this data source")
]


class KnowledgeController(Controller):
    path = "/api/knowledge"
    tags = ["knowledge"]

    @get("/", operation_id="list_knowledge", responses=error_responses(404))
    async def list_examples(
        self,
        state: State,
        page: PageParam = 1,
        page_size: PageSizeParam = 20,
        data_source: DataSourceFilter = None,
    ) -> Page[KnowledgeRead]:
        items, total = await service.page(
            services(state), data_source=data_source, page=page, page_size=page_size
        )
        return paginate([knowledge_read(e) for e in items], page=page, page_size=page_size, total=total)

    @post(
        "/",
        operation_id="create_knowledge",
        status_code=HTTP_201_CREATED,
        guards=[admin_only],
        responses=error_responses(403, 404, 413, 415),
    )
    async def create_example(
        self, request: Request[Any, Any, Any], data: JSONBody[KnowledgeWrite], state: State
    ) -> Response[KnowledgeRead]:
        example = await service.create(services(state), request.user, data)
        return Response(
            knowledge_read(example),
            status_code=HTTP_201_CREATED,
            headers={"Location": f"/api/knowledge/{example.id}"},
        )

    @get("/{example_id:str}", operation_id="get_knowledge", responses=error_responses(404))
    async def get_example(self, example_id: FromPath[str], state: State) -> KnowledgeRead:
        return knowledge_read(await service.get(services(state), example_id))

    @put(
        "/{example_id:str}",
        operation_id="replace_knowledge",
        guards=[admin_only],
        responses=error_responses(403, 404, 413, 415),
    )
    async def replace_example(
        self, example_id: FromPath[str], data: JSONBody[KnowledgeWrite], state: State
    ) -> KnowledgeRead:
        return knowledge_read(await service.replace(services(state), example_id, data))

    @delete(
        "/{example_id:str}",
        operation_id="delete_knowledge",
        status_code=HTTP_204_NO_CONTENT,
        guards=[admin_only],
        responses=error_responses(403, 404, 415),
    )
    async def delete_example(self, example_id: FromPath[str], state: State) -> None:
        await service.delete(services(state), example_id)
