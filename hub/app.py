"""The app factory: the one place that wires the hub's parts together.

`create_app(settings)` builds the running `Hub`, mounts the API, the console
and (as their issues land) the channels, maps the hub's errors to HTTP, counts
every request for `/metrics`, runs the outbox dispatcher while the app lives,
and closes the database when the app stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from time import perf_counter

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.middleware.sessions import SessionMiddleware

from agent_ui import pages
from hub.api import ROUTERS
from hub.context import Hub
from hub.delivery import Sender
from hub.dispatcher import Dispatcher
from hub.errors import HubError
from hub.settings import Settings

SESSION_COOKIE = "omnihub_session"
SESSION_SECONDS = 12 * 3600


def create_app(
    settings: Settings, hub: Hub | None = None, senders: dict[str, Sender] | None = None
) -> FastAPI:
    running = hub or Hub.create(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        dispatcher = Dispatcher(running, senders or {})
        background = asyncio.create_task(dispatcher.run(stop), name="outbox dispatcher")
        try:
            yield
        finally:
            stop.set()
            await background
            await running.close()

    app = FastAPI(title="omnihub", version="0.1.0", lifespan=lifespan)
    app.state.hub = running
    for router in (*ROUTERS, pages.router):
        app.include_router(router)
    app.add_exception_handler(HubError, _hub_error)  # type: ignore[arg-type]
    app.middleware("http")(_count_requests)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key or "",
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_SECONDS,
        same_site="lax",
        https_only=settings.public_url.startswith("https://"),
    )
    return app


async def _hub_error(_request: Request, error: HubError) -> JSONResponse:
    body = {"detail": error.message}
    if error.field:
        body["field"] = error.field
    return JSONResponse(body, status_code=error.status_code)


async def _count_requests(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    started = perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    path = getattr(route, "path", "unmatched")
    metrics = request.app.state.hub.metrics
    metrics.requests.labels(request.method, path, str(response.status_code)).inc()
    metrics.request_seconds.labels(request.method, path).observe(perf_counter() - started)
    return response


def app_from_environment() -> FastAPI:
    """The factory `omnihub serve --workers N` gives uvicorn: settings from the environment."""
    from hub.settings import load_settings

    return create_app(load_settings())
