"""The app factory: the one place that wires the hub's parts together.

`create_app(settings)` builds the running `Hub`, mounts the API, the console
and the channels, maps the hub's errors to HTTP, counts every request for
`/metrics`, runs the background work (the outbox dispatcher, the IMAP intake
when configured, the routing timers) while the app lives, and closes
everything when it stops.

Around every request, outermost first: security headers
(`hub.security_headers`), the signed session cookie, the session guard that
empties a session ended by a password change (`hub.session_guard`), and the
count of requests in flight with their metrics (`hub.live_traffic`). Every API
router checks the ids in its paths against the agent's teams (`hub.scope`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import StatementError
from starlette.middleware.sessions import SessionMiddleware

from agent_ui import campaign_pages, kpi_pages, pages
from channels.chat import routes as chat_routes
from channels.chat import wiring as chat
from channels.email import wiring as email
from channels.email.bulk import BulkSmtpSender
from channels.sms import segments as sms_segments
from channels.sms import webhooks as sms_webhooks
from channels.sms.sending import TwilioSmsSender
from channels.voice import webhooks as voice_webhooks
from channels.webform import routes as webform_routes
from hub.api import ROUTERS
from hub.campaigns.job import CampaignJob
from hub.context import Hub
from hub.delivery import Sender
from hub.dispatcher import Dispatcher
from hub.errors import HubError
from hub.heap import settle_start_up_heap
from hub.leases import leased
from hub.live_traffic import LiveTrafficMiddleware
from hub.number_range import out_of_range_answer
from hub.openapi_errors import document_hub_errors
from hub.privacy.retention import retention_job
from hub.scope import check_scope
from hub.security_headers import SecurityHeaders
from hub.session_guard import SessionGuard
from hub.settings import Settings
from routing.engine import install_router
from routing.sla import timer_job
from templates import TEMPLATE_DIR

SESSION_COOKIE = "omnihub_session"
SESSION_SECONDS = 12 * 3600
# Background work that runs in one process at a time however many serve (the
# outbox dispatcher and the campaign sender lease their rows themselves; the
# chat's jobs serve the sockets of their own process).
LEASED_JOBS = {"imap intake", "routing timers", "privacy upkeep"}


@dataclass
class Wiring:
    """The channels' parts a running app starts and stops."""

    senders: dict[str, Sender] = field(default_factory=dict)
    jobs: dict[str, Callable[[asyncio.Event], Awaitable[None]]] = field(default_factory=dict)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def wire_channels(settings: Settings, hub: Hub) -> Wiring:
    wiring = Wiring()
    hub.replayers["email"] = email.replay
    sender = email.build_sender(settings)
    if sender is not None:
        wiring.senders["email"] = sender
        wiring.closers.append(sender.close)
    sms_sender = TwilioSmsSender.from_settings(settings)
    if sms_sender is not None:
        wiring.senders["sms"] = sms_sender
        wiring.closers.append(sms_sender.close)
    intake = email.build_intake(hub, settings)
    if intake is not None:
        wiring.jobs["imap intake"] = intake.run
    wiring.senders["chat"] = chat.build_sender()
    return wiring


def campaign_senders(settings: Settings, wiring: Wiring, given: bool) -> dict[str, list[Sender]]:
    """Campaigns send e-mail over OMNIHUB_CAMPAIGN_CONNECTIONS connections of their own;
    senders a test hands in are used as they are."""
    chosen: dict[str, list[Sender]] = {
        channel: [sender]
        for channel, sender in wiring.senders.items()
        if channel in ("email", "sms")
    }
    if not given and "email" in chosen:
        extra = [
            BulkSmtpSender.from_settings(settings) for _ in range(settings.campaign_connections)
        ]
        chosen["email"] = list(extra)
        wiring.closers += [sender.close for sender in extra]
    return chosen


def create_app(
    settings: Settings, hub: Hub | None = None, senders: dict[str, Sender] | None = None
) -> FastAPI:
    """The app; `senders` replaces the configured ones (tests hand in their own)."""
    running = hub or Hub.create(settings)
    rules = install_router(settings, running)  # the rules file's errors stop start-up here
    wiring = wire_channels(settings, running)
    if senders is not None:
        wiring.senders = senders
    chat_registry = chat.registry_of(wiring.senders)
    if chat_registry is not None:
        chat_registry.bind(running)  # the session log is in the hub's database
    jobs = {
        "outbox dispatcher": Dispatcher(running, wiring.senders).run,
        **wiring.jobs,
        **chat.jobs(running, chat_registry),
        "routing timers": timer_job(running, rules, settings.routing_tick_seconds),
        "privacy upkeep": retention_job(running),
        "campaign sender": CampaignJob(
            running, campaign_senders(settings, wiring, given=senders is not None)
        ).run,
    }

    for name in LEASED_JOBS & jobs.keys():
        jobs[name] = leased(running, name, jobs[name])

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(job(stop), name=name) for name, job in jobs.items()]
        settle_start_up_heap()  # full collections stop walking the start-up heap
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            for close in wiring.closers:
                await close()
            await running.close()

    app = FastAPI(title="omnihub", version="0.1.0", lifespan=lifespan)
    app.state.hub = running
    document_hub_errors(app)  # the hub's own 422 answers are in /openapi.json too
    app.state.chat = chat_registry
    # The contacts' webhooks first: they are most of the requests, and a request is
    # matched against the routes in the order they were included.
    webhook_routers = (
        sms_webhooks.router,
        webform_routes.router,
        voice_webhooks.router,
        chat_routes.router,
    )
    for router in webhook_routers:
        app.include_router(router)
    for router in ROUTERS:  # a path's ids are checked against the agent's teams first
        app.include_router(router, dependencies=[Depends(check_scope)])
    for router in (sms_segments.router, pages.router, campaign_pages.router, kpi_pages.router):
        app.include_router(router)
    app.add_exception_handler(HubError, _hub_error)  # type: ignore[arg-type]
    for error in (StatementError, OverflowError):  # a number too large is bad input, not a 500
        app.add_exception_handler(error, out_of_range_answer)
    app.add_middleware(LiveTrafficMiddleware, live=running.live, metrics=running.metrics)
    app.add_middleware(SessionGuard)  # inside the session middleware: it reads the session
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key or "",
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_SECONDS,
        same_site="lax",
        https_only=settings.public_url.startswith("https://"),
    )
    app.add_middleware(SecurityHeaders, template_dir=TEMPLATE_DIR)  # outermost: every answer
    return app


async def _hub_error(_request: Request, error: HubError) -> JSONResponse:
    body = {"detail": error.message}
    if error.field:
        body["field"] = error.field
    return JSONResponse(body, status_code=error.status_code)


def app_from_environment() -> FastAPI:
    """The factory `omnihub serve --workers N` gives uvicorn: settings from the environment."""
    from hub.settings import load_settings

    return create_app(load_settings())
