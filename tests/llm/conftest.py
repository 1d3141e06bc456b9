from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# `import support.llm_server` until the lead puts tests/ on pytest's pythonpath.
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from support.llm_server import LlmServer  # noqa: E402

from worker.pipeline.generate import LlmClient, LlmConfig  # noqa: E402


@pytest.fixture
def llm_server() -> Iterator[LlmServer]:
    with LlmServer() as server:
        yield server


@pytest.fixture
async def make_client(llm_server: LlmServer) -> AsyncIterator[Callable[..., LlmClient]]:
    """LlmClient factory against `llm_server`, fast backoff; clients are closed afterwards."""
    clients: list[LlmClient] = []

    def make(**overrides: Any) -> LlmClient:
        backoff = overrides.pop("backoff_base_s", 0.01)
        fields: dict[str, Any] = {
            "base_url": llm_server.base_url,
            "api_key": "sk-test-key",
            "model": "test-model",
            "timeout_s": 5.0,
            "max_retries": 3,
        }
        fields.update(overrides)
        client = LlmClient(LlmConfig(**fields), backoff_base_s=backoff)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
