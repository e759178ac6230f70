"""Many customers with one e-mail address each, a tenth of them planted as blocked.

`fill()` writes, in one transaction with core executemany inserts in batches,
`count` customers, each with one e-mail identity. A seeded shuffle gives each
customer at most one row of `PLANTS`, an ordered table of what that share of
customers has (blocks, a consent, a complaint, sent messages) and the reasons
the gate must give for them per purpose. The plants that block cover 10 % of
the customers; the decoys (a lifted block, a resolved complaint, sends under
the cap or too old to count, a revoked consent on another channel) must pass.
Every customer without a blocking plant holds a confirmed marketing e-mail
consent, so the marketing gate lets them through.

Sent messages are dated relative to the wall clock, as the gate's frequency
cap is, so the data set must be checked soon after it is written (not days).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bench.big_customer import analyze, insert_rows
from hub.gate import Recipient
from hub.models import Block, Complaint, Consent, Customer, Identity, OutboxMessage, utcnow

BATCH = 5_000
BOUNCE = (("hard_bounce", "all"),)
UNSUBSCRIBE = (("unsubscribe", "marketing"),)


@dataclass(frozen=True, slots=True)
class Plant:
    """What a share of the customers has, and the reasons the gate must give them."""

    name: str
    share: float
    marketing: frozenset[str] = frozenset()
    service: frozenset[str] = frozenset()
    email_blocks: tuple[tuple[str, str], ...] = ()  # (reason, scope) on the address
    customer_block: str | None = None  # reason of a scope-`all` block on the customer
    lifted_block: bool = False  # a hard bounce on the address, lifted since
    consent: str | None = "confirmed"  # a key of consent_state(), None: no consent
    sms_consent: str | None = None  # a marketing consent on another channel
    complaint: str | None = None  # status of one complaint
    recent_marketing: int = 0  # marketing messages sent in the cap's period
    old_marketing: int = 0  # marketing messages sent before it
    recent_service: int = 0


def _reasons(*codes: str) -> frozenset[str]:
    return frozenset(codes)


MIXED_ALL = _reasons("block:hard_bounce", "block:legal")
# fmt: off
PLANTS = (
    # Blocked: 10 % in all.
    Plant("hard bounce", 0.02, _reasons("block:hard_bounce"), _reasons("block:hard_bounce"),
          email_blocks=BOUNCE),
    Plant("customer block (legal)", 0.015, _reasons("block:legal"), _reasons("block:legal"),
          customer_block="legal"),
    Plant("unsubscribed from marketing", 0.015, _reasons("block:unsubscribe"),
          email_blocks=UNSUBSCRIBE),
    Plant("consent revoked", 0.01, _reasons("consent:revoked"), consent="revoked"),
    Plant("consent missing", 0.01, _reasons("consent:missing"), consent=None,
          sms_consent="confirmed"),
    Plant("consent pending", 0.005, _reasons("consent:unconfirmed"), consent="pending"),
    Plant("consent granted, unconfirmed", 0.005, _reasons("consent:unconfirmed"),
          consent="unconfirmed"),
    Plant("open complaint", 0.01, _reasons("open_complaint"), complaint="open"),
    Plant("frequency cap", 0.005, _reasons("frequency_cap"), recent_marketing=4,
          old_marketing=3),
    Plant("every rule at once", 0.0025,
          MIXED_ALL | {"consent:revoked", "open_complaint", "frequency_cap"}, MIXED_ALL,
          email_blocks=BOUNCE, customer_block="legal", consent="revoked",
          complaint="in_progress", recent_marketing=5),
    Plant("marketing rules at once", 0.0025,
          _reasons("block:unsubscribe", "consent:unconfirmed", "open_complaint"),
          email_blocks=UNSUBSCRIBE, consent="pending", complaint="open"),
    # Decoys: rows the gate reads that must not block.
    Plant("decoy: lifted bounce", 0.005, lifted_block=True),
    Plant("decoy: resolved complaint", 0.005, complaint="resolved"),
    Plant("decoy: under the cap", 0.005, recent_marketing=3, old_marketing=6, recent_service=5),
    Plant("decoy: SMS consent revoked", 0.005, sms_consent="revoked"),
)
# fmt: on
PASSING = Plant("confirmed consent", 0.0)


@dataclass(frozen=True, slots=True)
class Planted:
    """The recipients, in customer order, and what each one was given."""

    recipients: list[Recipient]
    plants: dict[int, Plant]

    def expected(self, purpose: str) -> dict[int, frozenset[str]]:
        """The reasons the gate must give, by customer id, for those it must stop."""
        reasons = {cid: getattr(plant, purpose) for cid, plant in self.plants.items()}
        return {cid: codes for cid, codes in reasons.items() if codes}


async def fill(engine: AsyncEngine, count: int, seed: int) -> Planted:
    """Write the data set; returns the recipients and what was planted on them."""
    now = utcnow()
    async with engine.begin() as connection:
        ids = await insert_customers(connection, count, now)
        plants = assign(ids, random.Random(seed))
        addresses = {cid: f"customer{cid}@bench.example" for cid in ids}
        await insert_all(connection, Identity.__table__, identity_rows(addresses, now))
        await insert_all(connection, Consent.__table__, consent_rows(plants, now))
        await insert_all(connection, Block.__table__, block_rows(plants, addresses, now))
        await insert_all(connection, Complaint.__table__, complaint_rows(plants, now))
        await insert_all(connection, OutboxMessage.__table__, outbox_rows(plants, addresses, now))
        await analyze(connection)
    recipients = [Recipient(cid, "email", addresses[cid]) for cid in ids]
    return Planted(recipients, plants)


async def insert_customers(connection: AsyncConnection, count: int, now: datetime) -> list[int]:
    """The new customers' ids, read back after the insert.

    Not by RETURNING: on SQLite, SQLAlchemy inserts one row per statement when
    it must return ids in parameter order, which takes half a minute here.
    """
    newest = select(func.coalesce(func.max(Customer.id), 0))
    before = (await connection.execute(newest)).scalar_one()
    await insert_all(connection, Customer.__table__, customer_rows(count, now))
    added = select(Customer.id).where(Customer.id > before).order_by(Customer.id)
    return list((await connection.execute(added)).scalars())


def assign(ids: list[int], rng: random.Random) -> dict[int, Plant]:
    """Every customer's plant: shares of a seeded shuffle, the rest `PASSING`."""
    shuffled = rng.sample(ids, len(ids))
    plants = dict.fromkeys(ids, PASSING)
    start = 0
    for plant in PLANTS:
        size = round(plant.share * len(ids))
        plants.update(dict.fromkeys(shuffled[start : start + size], plant))
        start += size
    return plants


def batches(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def insert_all(
    connection: AsyncConnection, table: Table, rows: Iterator[dict[str, Any]]
) -> None:
    for batch in batches(rows):
        await insert_rows(connection, table, batch)


def customer_rows(count: int, now: datetime) -> Iterator[dict[str, Any]]:
    for n in range(count):
        yield {
            "name": f"Customer {n}",
            "company": None,
            "tier": "C",
            "tier_manual": False,
            "key_account_agent_id": None,
            "language": "de",
            "birthday": None,
            "revenue": 0,
            "is_prospect": False,
            "tags": [],
            "merged_into_id": None,
            "created_at": now - timedelta(days=400),
            "updated_at": now,
        }


def identity_rows(addresses: dict[int, str], now: datetime) -> Iterator[dict[str, Any]]:
    for cid, address in addresses.items():
        yield {"customer_id": cid, "kind": "email", "value": address, "created_at": now}


def consent_state(key: str, now: datetime) -> tuple[str, dict[str, Any]]:
    confirmed = (now - timedelta(days=200)).isoformat()
    return {
        "confirmed": ("granted", {"confirmed_at": confirmed, "ip": "192.0.2.10"}),
        "unconfirmed": ("granted", {"source": "import"}),
        "pending": ("pending_confirmation", {"source": "webform"}),
        "revoked": ("revoked", {}),
    }[key]


def consent_rows(plants: dict[int, Plant], now: datetime) -> Iterator[dict[str, Any]]:
    for cid, plant in plants.items():
        for channel, key in (("email", plant.consent), ("sms", plant.sms_consent)):
            if key is not None:
                yield consent_row(cid, channel, *consent_state(key, now), now)


def consent_row(
    cid: int, channel: str, state: str, evidence: dict[str, Any], now: datetime
) -> dict[str, Any]:
    return {
        "customer_id": cid,
        "channel": channel,
        "purpose": "marketing",
        "state": state,
        "source": "webform",
        "evidence": evidence,
        "updated_at": now - timedelta(days=100),
    }


def block_rows(
    plants: dict[int, Plant], addresses: dict[int, str], now: datetime
) -> Iterator[dict[str, Any]]:
    for cid, plant in plants.items():
        for reason, scope in plant.email_blocks:
            yield block_row("email", addresses[cid], None, reason, scope, now)
        if plant.customer_block is not None:
            yield block_row("customer", str(cid), cid, plant.customer_block, "all", now)
        if plant.lifted_block:
            row = block_row("email", addresses[cid], None, "hard_bounce", "all", now)
            yield row | {"lifted_at": now - timedelta(days=5)}


def block_row(
    kind: str, value: str, cid: int | None, reason: str, scope: str, now: datetime
) -> dict[str, Any]:
    return {
        "kind": kind,
        "value": value,
        "customer_id": cid,
        "reason": reason,
        "scope": scope,
        "note": None,
        "created_by_agent_id": None,
        "created_at": now - timedelta(days=60),
        "lifted_at": None,
        "lifted_by_agent_id": None,
    }


def complaint_rows(plants: dict[int, Plant], now: datetime) -> Iterator[dict[str, Any]]:
    for cid, plant in plants.items():
        if plant.complaint is not None:
            resolved = plant.complaint == "resolved"
            yield {
                "customer_id": cid,
                "subject": "Delivery damaged",
                "description": None,
                "status": plant.complaint,
                "severity": "normal",
                "due_at": now + timedelta(days=3),
                "opened_at": now - timedelta(days=20),
                "resolved_at": now - timedelta(days=2) if resolved else None,
                "created_by_agent_id": None,
                "updated_at": now,
            }


def outbox_rows(
    plants: dict[int, Plant], addresses: dict[int, str], now: datetime
) -> Iterator[dict[str, Any]]:
    """Sent messages: recent ones within the cap's 30 days, old ones 40 days and more back."""
    for cid, plant in plants.items():
        sends = (
            [("marketing", now - timedelta(days=1 + n)) for n in range(plant.recent_marketing)]
            + [("marketing", now - timedelta(days=40 + n)) for n in range(plant.old_marketing)]
            + [("service", now - timedelta(days=1 + n)) for n in range(plant.recent_service)]
        )
        for n, (purpose, sent_at) in enumerate(sends):
            yield outbox_row(f"bench-{cid}-{n}", purpose, addresses[cid], cid, sent_at)


def outbox_row(key: str, purpose: str, address: str, cid: int, sent_at: datetime) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "channel": "email",
        "purpose": purpose,
        "recipient": address,
        "customer_id": cid,
        "conversation_id": None,
        "interaction_id": None,
        "payload": {"subject": "News"},
        "status": "sent",
        "attempts": 1,
        "next_attempt_at": sent_at,
        "lease_until": None,
        "claimed_by": None,
        "last_error": None,
        "blocked_reasons": [],
        "provider_id": f"provider-{key}",
        "created_at": sent_at,
        "sent_at": sent_at,
    }
