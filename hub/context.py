"""The running hub: settings, database, event bus, router and metrics in one object.

`Hub.work()` is the unit of work every request and every intake uses: one
session in one transaction; the events it emits are published only after the
commit, so nobody hears of a change that was rolled back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from hub.assignment import DefaultRouter, Router
from hub.db import WRITES, SessionFactory, create_engine, create_session_factory
from hub.events import Event, EventBus, InProcessEventBus
from hub.events_redis import RedisEventBus
from hub.gate import Policy
from hub.group_commit import GroupCommit
from hub.live_traffic import LiveTraffic
from hub.metrics import Metrics
from hub.privacy.suppression import derive_key
from hub.settings import Settings
from hub.signin_limits import Limits, SigninLimits
from hub.signin_limits_redis import RedisSigninLimits


@dataclass
class Work:
    session: AsyncSession
    events: list[Event] = field(default_factory=list)
    after_commit: list[Any] = field(default_factory=list)

    def emit(self, event_type: str, **data: Any) -> None:
        self.events.append(Event(event_type, data))


Replayer = Callable[["Hub", Any], Awaitable[int | None]]


def choose_bus(settings: Settings) -> EventBus:
    """Redis when `OMNIHUB_REDIS_URL` is set (several processes), else in-process."""
    if settings.redis_url:
        return RedisEventBus(settings.redis_url, stream=settings.redis_stream)
    return InProcessEventBus()


def choose_signin_limits(settings: Settings) -> Limits:
    """Counted in Redis when `OMNIHUB_REDIS_URL` is set (every process sees them), else here."""
    if settings.redis_url:
        return RedisSigninLimits(settings.redis_url, settings.redis_stream)
    return SigninLimits()


@dataclass
class Hub:
    settings: Settings
    engine: AsyncEngine
    sessions: SessionFactory
    bus: EventBus
    router: Router
    metrics: Metrics
    # Per channel: take a stored raw message again (the dead-letter replay).
    replayers: dict[str, Replayer] = field(default_factory=dict)
    live: LiveTraffic = field(default_factory=LiveTraffic)
    # Contacts arriving together are stored together (`hub.intake`).
    intake: GroupCommit[Any, Any] = field(default_factory=GroupCommit)
    # Failed sign-ins (`hub.signin_limits`): in Redis when there is one, shared by processes.
    signin_limits: Limits = field(default_factory=SigninLimits)

    def __post_init__(self) -> None:
        self.metrics.watch_live(lambda: self.live.in_flight)

    @classmethod
    def create(cls, settings: Settings, router: Router | None = None) -> Hub:
        engine = create_engine(settings.database_url)
        return cls(
            settings=settings,
            engine=engine,
            sessions=create_session_factory(engine),
            bus=choose_bus(settings),
            signin_limits=choose_signin_limits(settings),
            router=router or DefaultRouter(),
            metrics=Metrics(),
        )

    @asynccontextmanager
    async def work(self) -> AsyncIterator[Work]:
        async with self.sessions() as session:
            work = Work(session)
            async with session.begin():
                await session.connection(execution_options={WRITES: True})
                yield work
        await self.bus.publish(work.events)
        for callback in work.after_commit:
            callback()

    @property
    def policy(self) -> Policy:
        return Policy(
            marketing_cap=self.settings.marketing_cap,
            marketing_cap_days=self.settings.marketing_cap_days,
            no_marketing_on_open_complaint=self.settings.no_marketing_on_open_complaint,
            suppression_key=derive_key(self.settings.secret_key or ""),
        )

    async def close(self) -> None:
        await self.bus.close()
        await self.signin_limits.close()
        await self.engine.dispose()
