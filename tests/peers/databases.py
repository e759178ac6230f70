"""Fresh databases for each test, on SQLite and on the PostgreSQL at 127.0.0.1:5432.

The schema is migrated once per run into a template (a SQLite file; a
PostgreSQL template database), and every test gets a copy of it (on
PostgreSQL a pooled copy emptied back to the template's state), so no test
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
    """This run's PostgreSQL databases: a migrated template, and copies of it for tests.

    A test's database comes from a pool and goes back to it emptied: every table
    truncated with its sequences restarted and the rows the migrations put into
    the template restored, so the next test starts exactly as on a new copy.
    Dropping a database instead would force a checkpoint on the server (a second
    or more each on a busy machine, hundreds of times a run). A database whose
    schema a test changed is dropped, not reused.
    """

    def __init__(self) -> None:
        self.template = f"omnihub_{RUN}_template"
        self.created: list[str] = []
        self.idle: list[str] = []
        self.schema: list[tuple[str, str]] = []
        self.seeds: dict[str, list[asyncpg.Record]] = {}
        self.emptying = ""

    async def prepare(self) -> None:
        admin = await connect_admin()
        try:
            await admin.execute(f'CREATE DATABASE "{self.template}"')
        finally:
            await admin.close()
        self.created.append(self.template)
        await migrate(postgres_url(self.template))
        template = await connect(self.template)
        try:
            self.schema = await read_schema(template)
            self.emptying = await emptying_script(template)
            for table in {table for table, _column in self.schema}:
                # the names come from the catalogue, not from input
                rows = await template.fetch(f'SELECT * FROM "{table}"')  # noqa: S608
                if rows:
                    self.seeds[table] = rows
        finally:
            await template.close()

    async def fresh(self) -> AsyncIterator[str]:
        name = self.idle.pop() if self.idle else await self._create()
        yield postgres_url(name)
        if await self._empty(name):
            self.idle.append(name)
        else:
            await self.drop(name)

    async def _create(self) -> str:
        name = f"omnihub_{RUN}_{uuid.uuid4().hex[:8]}"
        admin = await connect_admin()
        try:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        finally:
            await admin.close()
        self.created.append(name)
        return name

    async def _empty(self, name: str) -> bool:
        """Make the database equal to the template again; False when it cannot be."""
        connection = await connect(name)
        try:
            # Whatever a test left connected (a killed hub's pool, a listener) goes.
            await connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if await read_schema(connection) != self.schema:
                return False
            async with connection.transaction():
                await connection.execute(self.emptying)
                for table, rows in self.seeds.items():
                    await connection.copy_records_to_table(table, records=rows)
            return True
        finally:
            await connection.close()

    async def drop(self, name: str) -> None:
        admin = await connect_admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    async def drop_all(self) -> None:
        for name in self.created:
            await self.drop(name)


async def connect(name: str) -> asyncpg.Connection:
    return await asyncpg.connect(POSTGRES_DSN.rsplit("/", 1)[0] + f"/{name}", timeout=5)


async def read_schema(connection: asyncpg.Connection) -> list[tuple[str, str]]:
    """Every column of every table in the public schema, with its type, in order."""
    rows = await connection.fetch(
        "SELECT table_name, column_name || ' ' || data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
    )
    return [(row[0], row[1]) for row in rows]


async def emptying_script(connection: asyncpg.Connection) -> str:
    """SQL that deletes every row and restarts every sequence.

    DELETE, not TRUNCATE: a test leaves a few rows, and TRUNCATE makes new files
    for every table and index, which costs far more. Foreign keys are not checked
    meanwhile (`session_replication_role`), since everything goes.
    """
    tables = await connection.fetch(
        "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public'"
    )
    sequences = await connection.fetch(
        "SELECT quote_ident(sequencename) FROM pg_sequences WHERE schemaname = 'public'"
    )
    return "; ".join(
        ["SET LOCAL session_replication_role = replica"]
        + [f"DELETE FROM {row[0]}" for row in tables]  # noqa: S608 (quoted catalogue names)
        + [f"ALTER SEQUENCE {row[0]} RESTART" for row in sequences]
    )
