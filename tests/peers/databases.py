"""Fresh databases for each test, on SQLite and on the PostgreSQL at 127.0.0.1:5432.

The schema is migrated once per run into a template (a SQLite file; a
PostgreSQL template database), and every test gets its own copy, so no test
sees what another left, and the migrations themselves are what builds it.
Every PostgreSQL database this run creates carries the run's own name and is
dropped at the end.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from hub.db import migrate

POSTGRES_DSN = os.environ.get(
    "OMNIHUB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
RUN = uuid.uuid4().hex[:10]


async def connect_admin() -> asyncpg.Connection:
    return await asyncpg.connect(POSTGRES_DSN, timeout=5)


def postgres_url(name: str) -> str:
    base = POSTGRES_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


class SqliteDatabases:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.template = folder / "template.db"

    async def prepare(self) -> None:
        await migrate(f"sqlite+aiosqlite:///{self.template}")

    async def fresh(self) -> AsyncIterator[str]:
        path = self.folder / f"{uuid.uuid4().hex}.db"
        shutil.copyfile(self.template, path)
        yield f"sqlite+aiosqlite:///{path}"
        for leftover in self.folder.glob(f"{path.name}*"):
            leftover.unlink()


class PostgresDatabases:
    def __init__(self) -> None:
        self.template = f"omnihub_{RUN}_template"
        self.created: list[str] = []

    async def prepare(self) -> None:
        admin = await connect_admin()
        try:
            await admin.execute(f'CREATE DATABASE "{self.template}"')
        finally:
            await admin.close()
        self.created.append(self.template)
        await migrate(postgres_url(self.template))

    async def fresh(self) -> AsyncIterator[str]:
        name = f"omnihub_{RUN}_{uuid.uuid4().hex[:8]}"
        admin = await connect_admin()
        try:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        finally:
            await admin.close()
        yield postgres_url(name)
        await self.drop(name)

    async def drop(self, name: str) -> None:
        admin = await connect_admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    async def drop_all(self) -> None:
        for name in self.created:
            await self.drop(name)
