"""Shared fixtures: a fresh database per test on each engine, the hub, an API client.

Tests that take `hub` (or anything built on it) run once on SQLite and once on
PostgreSQL. Without a reachable PostgreSQL those runs skip, or fail when
OMNIHUB_REQUIRE_PEERS=1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher

from hub import agents
from hub.agents import create_agent, create_token
from hub.app import create_app
from hub.context import Hub
from hub.settings import Settings, load_settings
from tests.peers import missing_peer
from tests.peers.databases import PostgresDatabases, SqliteDatabases

pytest_plugins = [
    "tests.peers.dovecot",
    "tests.peers.smtp",
    "tests.peers.twilio",
    "tests.peers.browser",
    "tests.peers.redis",
    "tests.voice_steps",  # the `voice` fixture, for the voice tests' two modules
]

SECRET = "test-secret-key-that-is-long-enough-0123456789"

# argon2's defaults cost ~0.2 s a hash by design; tests hash many passwords.
agents.password_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(scope="session")
async def sqlite_databases(tmp_path_factory: pytest.TempPathFactory) -> SqliteDatabases:
    databases = SqliteDatabases(Path(tmp_path_factory.mktemp("sqlite")))
    await databases.prepare()
    return databases


@pytest.fixture(scope="session")
async def postgres_databases() -> AsyncIterator[PostgresDatabases | None]:
    databases = PostgresDatabases()
    try:
        await databases.prepare()
    except (OSError, TimeoutError) as error:
        yield None
        del error
        return
    yield databases
    await databases.drop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(
    request: pytest.FixtureRequest,
    sqlite_databases: SqliteDatabases,
    postgres_databases: PostgresDatabases | None,
) -> AsyncIterator[str]:
    if request.param == "sqlite":
        databases = sqlite_databases
    elif postgres_databases is None:
        missing_peer("PostgreSQL is not reachable at 127.0.0.1:5432")
    else:
        databases = postgres_databases
    async for url in databases.fresh():
        yield url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(_env_file=None, database_url=database_url, secret_key=SECRET)


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[Hub]:
    running = Hub.create(settings)
    yield running
    await running.close()


@pytest.fixture
async def client(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(hub.settings, hub)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as http:
        yield http


@dataclass
class SignedIn:
    id: int
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


MakeAgent = Callable[..., Awaitable[SignedIn]]


@pytest.fixture
def make_agent(hub: Hub) -> MakeAgent:
    """Create an agent of a role and an API token for it."""
    count = 0

    async def make(role: str = "agent", name: str | None = None) -> SignedIn:
        nonlocal count
        count += 1
        email = f"{role}{count}@omnihub.test"
        async with hub.work() as work:
            agent = await create_agent(
                work.session,
                email,
                name or f"{role.title()} {count}",
                role,
                "correct horse battery",
            )
            token = await create_token(work.session, agent)
        return SignedIn(agent.id, email, token)

    return make


@pytest.fixture
async def agent(make_agent: MakeAgent) -> SignedIn:
    return await make_agent("agent")


@pytest.fixture
async def supervisor(make_agent: MakeAgent) -> SignedIn:
    return await make_agent("supervisor")
