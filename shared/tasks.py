"""What the API and the workers agree on about Celery: task names, the queue, and how messages
are published. The API sends tasks by name and never imports worker code."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from celery import Celery

RUN_ATTEMPT = "attempts.run"
QUEUE = "sqlagent"
# Embedded mode: kombu's in-memory transport, shared by every Celery app in the process.
EMBEDDED_BROKER = "memory://localhost/"

BROKER_BACKOFF_S = 2.0

log = logging.getLogger("sqlagent.dispatch")


def celery_config(broker_url: str | None, *, attempt_deadline_s: float) -> dict[str, Any]:
    """Settings every Celery app of ours shares (the worker's adds pool and event settings)."""
    return {
        "broker_url": broker_url or EMBEDDED_BROKER,
        "task_default_queue": QUEUE,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_backend": None,
        "task_ignore_result": True,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 3,
        # A message whose worker died is redelivered after this; it must exceed the longest attempt.
        "broker_transport_options": (
            # The in-memory transport polls; its 1 s default would be most of an attempt's latency.
            {"polling_interval": 0.01}
            if broker_url is None
            else {
                "visibility_timeout": int(attempt_deadline_s * 2 + 60),
                "socket_timeout": 3,
                "socket_connect_timeout": 3,
            }
        ),
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_send_sent_event": True,
    }


class Publisher:
    """Publishes `attempts.run` messages. `send_task` is blocking I/O, so it runs in a thread."""

    def __init__(self, broker_url: str | None, *, attempt_deadline_s: float) -> None:
        self.app = Celery("sqlagent-publisher", set_as_current=False)
        self._quiet_until = 0.0
        self.app.conf.update(celery_config(broker_url, attempt_deadline_s=attempt_deadline_s))

    def publish_sync(self, attempt_id: str) -> None:
        self.app.send_task(
            RUN_ATTEMPT,
            args=[attempt_id],
            queue=QUEUE,
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
        )

    async def publish(self, attempt_id: str) -> bool:
        """True when the broker took the message. False leaves it to the sweeper (the outbox).

        After a failure the publisher stays quiet for BROKER_BACKOFF_S: while the broker is down,
        submissions answer at once instead of each waiting out a connection timeout."""
        if time.monotonic() < self._quiet_until:
            return False
        try:
            await asyncio.to_thread(self.publish_sync, attempt_id)
        except Exception as exc:  # any broker failure: the attempt row stays queued and undispatched
            self._quiet_until = time.monotonic() + BROKER_BACKOFF_S
            log.warning("could not publish attempt %s, the sweeper will retry: %s", attempt_id, exc)
            return False
        return True

    def close(self) -> None:
        self.app.close()
