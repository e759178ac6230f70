"""Sign-in limits: the window, and shared through Redis (N processes allow the limit,
not N times it); the 429 answers themselves are in test_security_sessions.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from hub.app import create_app
from hub.context import Hub
from hub.signin_limits import PER_EMAIL, SigninLimits
from hub.signin_limits_redis import RedisSigninLimits
from tests.conftest import SignedIn
from tests.peers.redis import PrivateRedis

PASSWORD = "correct horse battery"  # the conftest agents'


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test")


async def sign_in(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await http.post("/login", json={"email": email, "password": password})


@pytest.fixture
async def two_processes(
    hub: Hub, redis_url: str, redis_stream: str
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two hubs on one database and one Redis, as two processes behind a balancer."""
    settings = hub.settings.model_copy(
        update={"redis_url": redis_url, "redis_stream": redis_stream}
    )
    hubs = [Hub.create(settings), Hub.create(settings)]
    try:
        apps = [create_app(settings, each) for each in hubs]
        async with client_of(apps[0]) as first, client_of(apps[1]) as second:
            yield first, second
    finally:
        for each in hubs:
            await each.close()


async def test_wrong_passwords_at_one_process_limit_the_sign_in_at_another(
    two_processes: tuple[httpx.AsyncClient, httpx.AsyncClient], agent: SignedIn
):
    first, second = two_processes
    for attempt in range(PER_EMAIL):
        at = first if attempt % 2 else second  # the balancer spreads the guesses
        assert (await sign_in(at, agent.email, "wrong guess!")).status_code == 401

    limited = await sign_in(first, agent.email)  # even the right password now
    also = await sign_in(second, agent.email)

    assert limited.status_code == 429 and also.status_code == 429
    assert 0 < int(limited.headers["retry-after"]) <= 15 * 60


async def test_a_success_at_one_process_forgets_the_emails_failures_at_every_process(
    two_processes: tuple[httpx.AsyncClient, httpx.AsyncClient], agent: SignedIn
):
    first, second = two_processes
    for _ in range(PER_EMAIL - 1):
        await sign_in(first, agent.email, "wrong guess!")
    assert (await sign_in(second, agent.email)).status_code == 200

    await sign_in(first, agent.email, "wrong guess!")  # the first process's fifth

    assert (await sign_in(first, agent.email)).status_code == 200


Clock = list[float]


@pytest.fixture(params=["in the process", "in Redis"])
async def limits_and_clock(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[SigninLimits | RedisSigninLimits, Clock]]:
    now = [1_000_000.0]
    window = {"per_email": 3, "per_address": 100, "window": 60, "clock": lambda: now[0]}
    if request.param == "in the process":
        yield SigninLimits(**window), now
        return
    redis_url, prefix = (request.getfixturevalue(name) for name in ("redis_url", "redis_stream"))
    limits = RedisSigninLimits(redis_url, prefix, **window)
    yield limits, now
    await limits.close()


async def test_failures_expire_after_the_window_and_a_success_forgets_the_emails(
    limits_and_clock: tuple[SigninLimits | RedisSigninLimits, Clock],
):
    limits, now = limits_and_clock
    for _ in range(3):
        await limits.record_failure("A@example.com", "10.0.0.1")

    assert await limits.retry_after("a@example.com ", "10.0.0.2") == 60
    now[0] += 30
    assert await limits.retry_after("a@example.com", "10.0.0.2") == 30
    now[0] += 30
    assert await limits.retry_after("a@example.com", "10.0.0.2") is None
    for _ in range(3):
        await limits.record_failure("b@example.com", "10.0.0.1")
    await limits.record_success("b@example.com")
    assert await limits.retry_after("b@example.com", "10.0.0.3") is None


async def test_with_redis_down_a_process_still_limits_by_its_own_counts(
    hub: Hub, private_redis: PrivateRedis, agent: SignedIn
):
    settings = hub.settings.model_copy(update={"redis_url": private_redis.url})
    redis_hub = Hub.create(settings)
    private_redis.stop()
    try:
        async with client_of(create_app(settings, redis_hub)) as http:
            for _ in range(PER_EMAIL):
                assert (await sign_in(http, agent.email, "wrong guess!")).status_code == 401

            limited = await sign_in(http, agent.email)
    finally:
        await redis_hub.close()

    assert limited.status_code == 429
