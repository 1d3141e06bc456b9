"""The sweeper: the outbox's publisher of last resort and the reaper of lost attempts.

Runs in every worker process (and in the API process in embedded mode). Every move it makes is a
conditional update, so two sweepers at once do no harm: one wins, the other finds nothing."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from shared.attempts import repository as attempts
from shared.attempts.status import RUNNING, Status
from shared.db.database import utcnow
from shared.results import repository as results
from worker.runtime import WorkerRuntime

log = logging.getLogger("sqlagent.sweeper")

MAX_TRIES = 3
# A fresh attempt's own publish is still in flight for a moment; leave it alone meanwhile.
DISPATCH_GRACE = timedelta(seconds=2)


async def sweep_once(rt: WorkerRuntime) -> None:
    now = utcnow()
    for attempt_id, tries in await attempts.expired_leases(rt.db, now=now):
        if tries >= MAX_TRIES:
            event = await attempts.transition(
                rt.db,
                attempt_id,
                expected=RUNNING,
                to=Status.FAILED,
                lease_expired_before=now,
                error_code="INTERNAL_ERROR",
                detail=f"the worker running this attempt was lost {tries} times",
            )
        else:
            event = await attempts.transition(
                rt.db,
                attempt_id,
                expected=RUNNING,
                to=Status.QUEUED,
                lease_expired_before=now,
                lease_owner=None,
                lease_expires_at=None,
                dispatched_at=None,
            )
        if event is not None:
            log.warning("attempt %s lost its worker (try %d): %s", attempt_id, tries, event.status)
            rt.announcer.announce(event)

    pending = await attempts.undispatched(
        rt.db,
        older_than=now - DISPATCH_GRACE,
        redispatch_before=now - timedelta(seconds=rt.settings.redispatch_after_s),
    )
    if pending:
        await rt.publisher.publish(pending)  # broker still down: raises, and the next round retries
        log.info("published %d undispatched attempt(s)", len(pending))
        await attempts.mark_dispatched(rt.db, pending)

    await results.purge_older_than(rt.db, now - timedelta(days=rt.settings.agent.result_ttl_days))


async def sweep_forever(rt: WorkerRuntime) -> None:
    while True:
        try:
            await sweep_once(rt)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # app database or broker blip: next round
            log.warning("sweep failed: %s", exc)
        await asyncio.sleep(rt.settings.sweep_interval_s)
