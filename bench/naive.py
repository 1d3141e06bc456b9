"""The naive reference for submit throughput: the handler most tutorials would write.

One async Litestar handler that INSERTs an attempt row (asyncpg, into the bench's app database)
and then calls Celery's `send_task`, which is blocking network I/O, right on the event loop. No
authentication, no event row, no validation beyond the body's type: it is the floor a real submit
path must beat, not a competitor. Run by uvicorn the way `sqlagent serve` runs the API:

    python -m bench.naive --port P --database-url URL --broker-url URL --user-id N
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import msgspec
import uvicorn
from celery import Celery
from litestar import Litestar, post

# A queue of its own: no worker drains it, and the bench flushes Redis afterwards.
QUEUE = "bench-naive"


class NaiveCreate(msgspec.Struct, forbid_unknown_fields=True):
    question: str
    data_source: str = "default"


class NaiveRead(msgspec.Struct):
    id: str
    status: str


def create_app(database_url: str, broker_url: str, user_id: int) -> Litestar:
    celery = Celery("bench-naive", broker=broker_url, set_as_current=False)
    celery.conf.update(task_serializer="json", broker_connection_retry_on_startup=True)
    pool: asyncpg.Pool | None = None

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10)
        try:
            yield
        finally:
            await pool.close()
            celery.close()

    @post("/naive", status_code=202)
    async def submit(data: NaiveCreate) -> NaiveRead:
        assert pool is not None
        attempt_id = str(uuid.uuid4())
        await pool.execute(
            """INSERT INTO attempts (id, user_id, question, data_source, status, seq, created_at)
               VALUES ($1, $2, $3, $4, 'queued', 1, $5)""",
            attempt_id,
            user_id,
            data.question,
            data.data_source,
            datetime.now(UTC),
        )
        celery.send_task("attempts.run", args=[attempt_id], queue=QUEUE)  # blocks the loop: the point
        return NaiveRead(id=attempt_id, status="queued")

    return Litestar(route_handlers=[submit], lifespan=[lifespan], logging_config=None, debug=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--broker-url", required=True)
    parser.add_argument("--user-id", type=int, required=True)
    args = parser.parse_args()
    app = create_app(args.database_url, args.broker_url, args.user_id)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
