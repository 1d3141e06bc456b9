"""What the lifespan opens once and every handler shares (typed, instead of loose app.state keys)."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.datastructures import State

from api.auth.credentials import CredentialCache
from shared.attempts.intake import Intake
from shared.db.database import Database
from shared.events.bus import EventBus
from shared.settings import Settings
from shared.tasks import Dispatcher


@dataclass
class Services:
    settings: Settings
    db: Database
    dispatcher: Dispatcher
    intake: Intake
    bus: EventBus
    credentials: CredentialCache


def services(state: State) -> Services:
    return state["services"]  # type: ignore[no-any-return]
