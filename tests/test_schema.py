"""The schema: built by the migrations, equal to the models, and indexed for every lookup."""

from __future__ import annotations

import asyncio
import sys
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.dialects import sqlite

from hub.context import Hub
from hub.history import encode_cursor, history_query
from hub.models import Base, Block, Complaint, Conversation, Customer, Identity, utcnow
from tests.peers.databases import RUN, connect_admin, postgres_url


async def test_the_migrations_build_exactly_the_schema_the_models_describe(hub: Hub):
    def differences(connection):
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with hub.engine.connect() as connection:
        diff = await connection.run_sync(differences)

    assert diff == []


async def test_sqlite_runs_in_wal_mode_with_foreign_keys_enforced(hub: Hub):
    if not hub.settings.is_sqlite:
        pytest.skip("SQLite pragmas")
    async with hub.engine.connect() as connection:
        journal = await connection.scalar(text("PRAGMA journal_mode"))
        foreign_keys = await connection.scalar(text("PRAGMA foreign_keys"))

    assert (journal, foreign_keys) == ("wal", 1)


LOOKUPS = {
    "identity": (
        select(Identity).where(Identity.kind == "phone", Identity.value == "+49151"),
        "sqlite_autoindex_identities_1",
    ),
    "history page": (history_query(1, 50), "ix_interactions_customer_id_occurred_at_id"),
    "history after a cursor": (
        history_query(1, 50, encode_cursor(utcnow(), 99)),
        "ix_interactions_customer_id_occurred_at_id",
    ),
    "open conversation of a customer": (
        select(Conversation).where(
            Conversation.customer_id == 1,
            Conversation.status != "closed",
            Conversation.channel == "sms",
        ),
        "ix_conversations_customer_id_status_channel",
    ),
    "my conversations": (
        select(Conversation)
        .where(Conversation.status == "open", Conversation.assignee_id == 3)
        .order_by(Conversation.id.desc()),
        "ix_conversations_status_assignee_id_id",
    ),
    "a queue": (
        select(Conversation)
        .where(Conversation.status == "open", Conversation.queue == "pool")
        .order_by(Conversation.id.desc()),
        "ix_conversations_status_queue_id",
    ),
    "open complaints of a customer": (
        select(Complaint).where(Complaint.customer_id == 1, Complaint.status != "resolved"),
        "ix_complaints_customer_id_status",
    ),
    "complaints by status": (
        select(Complaint).where(Complaint.status == "open").order_by(Complaint.id.desc()),
        "ix_complaints_status_id",
    ),
    "blocks on an address": (
        select(Block).where(
            Block.kind == "email", Block.value == "a@b.de", Block.lifted_at.is_(None)
        ),
        "ix_blocks_kind_value_lifted_at",
    ),
    "merged customers": (
        select(Customer).where(Customer.merged_into_id == 1),
        "ix_customers_merged_into_id",
    ),
}


@pytest.mark.parametrize("name", LOOKUPS)
async def test_every_console_and_api_lookup_uses_an_index(hub: Hub, name):
    if not hub.settings.is_sqlite:
        pytest.skip("the plan is read on SQLite; PostgreSQL plans depend on table statistics")
    statement, index = LOOKUPS[name]
    sql = str(statement.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))

    async with hub.engine.connect() as connection:
        plan = " | ".join(
            row[-1] for row in await connection.execute(text(f"EXPLAIN QUERY PLAN {sql}"))
        )

    assert index in plan, plan
    assert "SCAN" not in plan.replace(f"SCAN {index}", ""), plan


async def test_several_hub_processes_migrating_one_new_postgresql_database_at_once_all_succeed(
    database_url: str,
):
    if not database_url.startswith("postgresql"):
        pytest.skip("the migration lock is PostgreSQL's (one SQLite file has one hub process)")
    name = f"omnihub_{RUN}_{uuid.uuid4().hex[:8]}"
    admin = await connect_admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        migrating = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                f"from hub.db import migrate_sync; migrate_sync({postgres_url(name)!r})",
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(3)
        ]
        outcomes = [await process.communicate() for process in migrating]
    finally:
        admin = await connect_admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    assert [process.returncode for process in migrating] == [0, 0, 0], [e for _, e in outcomes]
