"""Real Chromium driven by Playwright, and the real app served on loopback for it.

Chromium is Debian's (`apt-get install chromium`, when it is missing and we
may: root); Playwright comes with the test extras. Never `playwright install`:
it downloads a browser build of its own, which cannot be reached from here.
Without either, the tests that need them skip (or fail when
OMNIHUB_REQUIRE_PEERS=1).

Fixtures:

    browser     one headless Chromium for the session
    page        a fresh browser context and page for each test, closed after it
    live_url    `create_app(hub.settings, hub)` served by uvicorn on 127.0.0.1,
                a free port, for the test's own `hub` (so on both engines),
                websockets included (the live chat)

The server runs as a task on the test's event loop rather than in a thread of
its own: the hub's pooled database connections (asyncpg, aiosqlite) belong to
the loop that made them and cannot be used from another one. Playwright's
async API awaits on the same loop, so the server answers whenever the test
waits for the browser. The app runs without its lifespan: no outbox
dispatcher races the test for the rows it checks, and the test's `hub`
fixture closes the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest
import uvicorn
from fastapi import FastAPI

from hub.app import create_app
from hub.context import Hub
from tests.peers import ensure_debian_package, missing_peer

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LAUNCH_MS = 30_000
ACTION_MS = 10_000
START_SECONDS = 10.0
STOP_SECONDS = 10.0


def ensure_chromium() -> Path | None:
    """Debian's Chromium, installed first when missing and we may; None when it cannot be had."""
    return ensure_debian_package("chromium", lambda: CHROMIUM if CHROMIUM.exists() else None)


def playwright_api() -> ModuleType | None:
    try:
        from playwright import async_api
    except ImportError:
        return None
    return async_api


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    api = playwright_api()
    if api is None:
        missing_peer("Playwright is not installed (the test extras: playwright)")
    executable = ensure_chromium()
    if executable is None:
        missing_peer("Chromium is not installed (Debian package chromium)")
    async with api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(executable), args=CHROMIUM_ARGS, headless=True, timeout=LAUNCH_MS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 900, "height": 1200})
    context.set_default_timeout(ACTION_MS)
    try:
        yield await context.new_page()
    finally:
        await context.close()


class LoopServer(uvicorn.Server):
    """uvicorn on the caller's loop: it leaves the process's signal handlers to pytest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(hub: Hub, app: FastAPI | None = None) -> AsyncIterator[str]:
    """`app` (else the app for `hub`) on 127.0.0.1 and a free port until the block ends; its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        app or create_app(hub.settings, hub),
        lifespan="off",
        http="h11",
        ws="websockets-sansio",  # the live chat's socket
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=int(STOP_SECONDS),
    )
    server = LoopServer(config)
    task = asyncio.create_task(server.serve(sockets=[listener]), name="uvicorn for the browser")
    try:
        await _started(server, task)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, STOP_SECONDS)
        listener.close()


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    async with asyncio.timeout(START_SECONDS):
        while not server.started:
            if task.done():
                task.result()  # raises why it stopped
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)


@pytest.fixture
async def live_url(hub: Hub) -> AsyncIterator[str]:
    async with serving(hub) as url:
        yield url
