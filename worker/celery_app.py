"""The Celery app (`celery -A worker.celery_app worker|flower`).

Module-level because Celery's CLI needs one, but configured lazily: settings are read from the
environment on first use (`on_configure`), or handed over by `configure()` when the process
already built them (the `sqlagent` CLI, the embedded worker, tests)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from shared.settings import Settings, load_settings
from shared.tasks import celery_config

app = Celery("sqlagent", set_as_current=False)
_settings: Settings | None = None


def configure(settings: Settings) -> Celery:
    global _settings
    _settings = settings
    app.conf.update(
        celery_config(settings.broker.broker_url, attempt_deadline_s=settings.agent.attempt_deadline_s),
        # Flower shows every attempt's task, its state and runtime.
        worker_send_task_events=True,
        task_track_started=True,
        # A thread pool: attempts wait on the LLM, so they overlap on one process's event loop.
        worker_pool="threads",
        # Attempts mostly wait on the LLM: 64 in flight per process cost little (bench/README.md).
        worker_concurrency=64,
        worker_hijack_root_logger=False,
        include=["worker.tasks"],
    )
    return app


def settings() -> Settings:
    if _settings is None:
        configure(load_settings())
    assert _settings is not None
    return _settings


@app.on_configure.connect
def _on_configure(sender: Celery, **_: Any) -> None:
    if _settings is None:
        configure(load_settings())


celery_app = app
