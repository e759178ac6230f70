"""A customer with a long history, written fast with core executemany inserts.

`fill()` writes, in one transaction: three agents; the customer Anna (tier A,
with a key account manager, six identities, four consents, three blocks of
which one is lifted, three open and five resolved complaints, one conversation
per 25 interactions) and `rows` interactions across five channels over three
years; beside her twenty other customers with a thousand interactions each,
interleaved in time, so the index is not one customer's alone. Interactions are
inserted oldest first, as they would arrive. The data follow a seed, so runs
compare.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, insert, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.models import (
    Agent,
    Block,
    Complaint,
    Consent,
    Conversation,
    Customer,
    Identity,
    Interaction,
)

BATCH = 5_000
SPAN = timedelta(days=3 * 365)
OTHER_CUSTOMERS = 20
OTHER_ROWS = 1_000
ROWS_PER_CONVERSATION = 25
CHANNELS = ("email", "phone", "sms", "webform", "chat")
WORDS = (
    *("Lieferung", "Rechnung", "Angebot", "bitte", "danke", "Termin", "Rückruf", "defekt"),
    *("order", "invoice", "delivery", "please", "thanks", "appointment", "broken", "refund"),
)
ANNA = {
    "email": ["anna.berger@example.com", "a.berger@berger-gmbh.example", "anna@berger.example"],
    "phone": ["+491512345678", "+493012345678"],
    "chat": ["chat-7f3a9c"],
}
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


async def fill(engine: AsyncEngine, rows: int, seed: int) -> int:
    """Write the data set; returns Anna's customer id."""
    rng = random.Random(seed)
    async with engine.begin() as connection:
        agents = await insert_returning_ids(connection, Agent.__table__, agent_rows())
        customers = await insert_returning_ids(
            connection, Customer.__table__, customer_rows(agents[0])
        )
        anna, others = customers[0], customers[1:]
        await insert_rows(connection, Identity.__table__, identity_rows(anna, others))
        await insert_rows(connection, Consent.__table__, consent_rows(anna))
        await insert_rows(connection, Block.__table__, block_rows(anna, others))
        await insert_rows(connection, Complaint.__table__, complaint_rows(anna, agents))
        conversations = await conversations_by_customer(connection, anna, others, rows)
        for batch in interaction_batches(rng, anna, others, rows, conversations, agents):
            await connection.execute(insert(Interaction.__table__), batch)
        await analyze(connection)
    return anna


async def insert_rows(
    connection: AsyncConnection, table: Table, rows: list[dict[str, Any]]
) -> None:
    await connection.execute(insert(table), rows)


async def insert_returning_ids(
    connection: AsyncConnection, table: Table, rows: list[dict[str, Any]]
) -> list[int]:
    statement = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return list((await connection.execute(statement, rows)).scalars())


async def analyze(connection: AsyncConnection) -> None:
    """Give PostgreSQL the statistics autovacuum would; SQLite is left as the hub leaves it."""
    if connection.dialect.name == "postgresql":
        await connection.execute(text("ANALYZE"))


def agent_rows() -> list[dict[str, Any]]:
    return [
        {
            "email": f"agent{n}@omnihub.example",
            "name": name,
            "role": "agent",
            "password_hash": None,
            "language": "de",
            "languages": ["de", "en"],
            "teams": ["service"],
            "presence": "online",
            "is_active": True,
            "created_at": NOW - SPAN,
        }
        for n, name in enumerate(("Jana Keller", "Tom Richter", "Mia Wolf"))
    ]


def customer_rows(key_account_agent_id: int) -> list[dict[str, Any]]:
    anna = customer_row("Anna Berger", "Berger GmbH", "A", key_account_agent_id)
    return [anna] + [customer_row(f"Customer {n}", None, "C", None) for n in range(OTHER_CUSTOMERS)]


def customer_row(name: str, company: str | None, tier: str, agent_id: int | None) -> dict[str, Any]:
    return {
        "name": name,
        "company": company,
        "tier": tier,
        "tier_manual": False,
        "key_account_agent_id": agent_id,
        "language": "de",
        "birthday": None,
        "revenue": 125_000 if tier == "A" else 900,
        "is_prospect": False,
        "tags": ["wholesale"] if tier == "A" else [],
        "merged_into_id": None,
        "created_at": NOW - SPAN,
        "updated_at": NOW,
    }


def identity_rows(anna: int, others: list[int]) -> list[dict[str, Any]]:
    mine = [(anna, kind, value) for kind, values in ANNA.items() for value in values]
    theirs = [(other, "email", f"customer{other}@example.com") for other in others]
    return [
        {"customer_id": owner, "kind": kind, "value": value, "created_at": NOW - SPAN}
        for owner, kind, value in mine + theirs
    ]


def consent_rows(anna: int) -> list[dict[str, Any]]:
    states = (
        ("email", "service", "granted"),
        ("email", "marketing", "granted"),
        ("sms", "marketing", "revoked"),
        ("phone", "marketing", "pending_confirmation"),
    )
    return [
        {
            "customer_id": anna,
            "channel": channel,
            "purpose": purpose,
            "state": state,
            "source": "webform",
            "evidence": {"ip": "192.0.2.10"},
            "updated_at": NOW - timedelta(days=30),
        }
        for channel, purpose, state in states
    ]


def block_rows(anna: int, others: list[int]) -> list[dict[str, Any]]:
    return [
        block_row("customer", str(anna), anna, "legal", None),
        block_row("phone", ANNA["phone"][1], None, "opt_out", None),
        block_row("email", ANNA["email"][2], None, "bounce", NOW - timedelta(days=10)),
        block_row("customer", str(others[0]), others[0], "legal", None),
    ]


def block_row(
    kind: str, value: str, customer_id: int | None, reason: str, lifted_at: datetime | None
) -> dict[str, Any]:
    return {
        "kind": kind,
        "value": value,
        "customer_id": customer_id,
        "reason": reason,
        "scope": "all",
        "note": None,
        "created_at": NOW - timedelta(days=100),
        "lifted_at": lifted_at,
    }


def complaint_rows(anna: int, agents: list[int]) -> list[dict[str, Any]]:
    statuses = ["open", "open", "in_progress"] + ["resolved"] * 5
    return [
        {
            "customer_id": anna,
            "subject": f"Complaint {n}: delivery damaged",
            "description": "The goods arrived broken. " * 4,
            "status": status,
            "severity": "high" if n == 0 else "normal",
            "due_at": NOW + timedelta(days=n - 2),
            "opened_at": NOW - timedelta(days=40 * n + 1),
            "resolved_at": NOW - timedelta(days=40 * n) if status == "resolved" else None,
            "created_by_agent_id": agents[n % len(agents)],
            "updated_at": NOW - timedelta(days=40 * n),
        }
        for n, status in enumerate(statuses)
    ]


async def conversations_by_customer(
    connection: AsyncConnection, anna: int, others: list[int], rows: int
) -> dict[int, list[int]]:
    counts = {anna: max(1, rows // ROWS_PER_CONVERSATION)}
    counts.update({other: OTHER_ROWS // ROWS_PER_CONVERSATION for other in others})
    made: dict[int, list[int]] = {}
    for customer_id, count in counts.items():
        batch = [conversation_row(customer_id, n) for n in range(count)]
        made[customer_id] = await insert_returning_ids(connection, Conversation.__table__, batch)
    return made


def conversation_row(customer_id: int, n: int) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "channel": CHANNELS[n % len(CHANNELS)],
        "status": "closed" if n else "open",
        "subject": f"Conversation {n}",
        "thread_key": f"thread-{customer_id}-{n}",
        "priority": 0,
        "created_at": NOW - SPAN,
        "updated_at": NOW,
    }


def interaction_batches(
    rng: random.Random,
    anna: int,
    others: list[int],
    rows: int,
    conversations: dict[int, list[int]],
    agents: list[int],
) -> Iterator[list[dict[str, Any]]]:
    """Every customer's interactions, oldest first, in batches of BATCH rows."""
    owners = [anna] * rows + [other for other in others for _ in range(OTHER_ROWS)]
    moments = sorted(NOW - rng.random() * SPAN for _ in owners)
    rng.shuffle(owners)
    batch: list[dict[str, Any]] = []
    for n, (owner, moment) in enumerate(zip(owners, moments, strict=True)):
        batch.append(interaction_row(rng, n, owner, moment, conversations[owner], agents))
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def interaction_row(
    rng: random.Random,
    n: int,
    owner: int,
    moment: datetime,
    conversations: list[int],
    agents: list[int],
) -> dict[str, Any]:
    channel = rng.choice(CHANNELS)
    outbound = rng.random() < 0.4
    body = " ".join(rng.choices(WORDS, k=rng.randint(8, 60)))
    return {
        "customer_id": owner,
        "conversation_id": rng.choice(conversations),
        "channel": channel,
        "direction": "outbound" if outbound else "inbound",
        "kind": "call" if channel == "phone" else "message",
        "subject": f"Re: order {n % 9000}" if channel == "email" else None,
        "text": body,
        "html": f"<p>{body}</p>" if channel == "email" else None,
        "external_id": f"{channel}-{n}",
        "sender": "agent" if outbound else f"sender-{owner}",
        "author_agent_id": rng.choice(agents) if outbound else None,
        "meta": {},
        "occurred_at": moment,
        "created_at": moment,
    }
