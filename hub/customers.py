"""Customers: creating and updating them, finding them by identity, and their card.

The card is what an agent sees first: profile, tier and key account, the
identities, consents and active blocks, every open complaint, and the newest
history across all channels. Each part is one indexed query.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, union
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import record
from hub.complaints import complaint_view
from hub.errors import InvalidInputError, NotFoundError
from hub.history import get_history
from hub.identity import add_identity, find_customer_by_identity, normalise_identity
from hub.models import Agent, Block, Complaint, Consent, Customer, Identity

TIERS = ("A", "B", "C")
PROFILE_FIELDS = (
    "name",
    "company",
    "tier",
    "key_account_agent_id",
    "language",
    "birthday",
    "revenue",
    "tags",
)


async def get_customer(session: AsyncSession, customer_id: int) -> Customer:
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFoundError(f"no customer {customer_id}")
    return customer


async def lookup_customer(
    session: AsyncSession, region: str, email: str | None = None, phone: str | None = None
) -> Customer:
    if (email is None) == (phone is None):
        raise InvalidInputError("give exactly one of email or phone")
    kind, raw = ("email", email) if email is not None else ("phone", phone)
    value = normalise_identity(kind, raw or "", region)
    customer = await find_customer_by_identity(session, kind, value)
    if customer is None:
        raise NotFoundError(f"no customer with {kind} {value}")
    return customer


async def create_customer(
    session: AsyncSession,
    actor_id: int | None,
    region: str,
    fields: dict[str, Any],
    emails: list[str],
    phones: list[str],
) -> Customer:
    customer = Customer(name="", is_prospect=False)
    session.add(customer)
    await apply_profile(session, customer, fields)
    await session.flush()
    await add_identities(session, customer, region, emails, phones)
    record(session, actor_id, "customer.created", "customer", customer.id)
    return customer


async def update_customer(
    session: AsyncSession,
    actor_id: int | None,
    region: str,
    customer: Customer,
    fields: dict[str, Any],
    emails: list[str],
    phones: list[str],
) -> Customer:
    changed = await apply_profile(session, customer, fields)
    await add_identities(session, customer, region, emails, phones)
    record(
        session,
        actor_id,
        "customer.updated",
        "customer",
        customer.id,
        fields=sorted(changed),
        added_emails=emails,
        added_phones=phones,
    )
    return customer


async def add_identities(
    session: AsyncSession, customer: Customer, region: str, emails: list[str], phones: list[str]
) -> None:
    for kind, raws in (("email", emails), ("phone", phones)):
        for raw in raws:
            await add_identity(session, customer, kind, normalise_identity(kind, raw, region))


async def apply_profile(
    session: AsyncSession, customer: Customer, fields: dict[str, Any]
) -> set[str]:
    """Set the given profile fields, checked; returns the names that changed."""
    unknown = set(fields) - set(PROFILE_FIELDS)
    if unknown:
        raise InvalidInputError(f"unknown field {sorted(unknown)[0]!r}", field=sorted(unknown)[0])
    if "tier" in fields:
        _check_tier(fields["tier"])
        customer.tier_manual = fields["tier"] is not None
    if fields.get("key_account_agent_id") is not None:
        await _check_agent(session, fields["key_account_agent_id"])
    changed = {name for name, value in fields.items() if getattr(customer, name) != value}
    for name, value in fields.items():
        setattr(customer, name, value)
    if changed & {"name", "company", "tier", "revenue"}:
        customer.is_prospect = False
    return changed


def _check_tier(tier: str | None) -> None:
    if tier is not None and tier not in TIERS:
        raise InvalidInputError("tier must be A, B or C", field="tier")


async def _check_agent(session: AsyncSession, agent_id: int) -> None:
    if await session.get(Agent, agent_id) is None:
        raise InvalidInputError(f"no agent {agent_id}", field="key_account_agent_id")


async def get_card(session: AsyncSession, customer_id: int, history_size: int) -> dict[str, Any]:
    customer = await get_customer(session, customer_id)
    identities = await _identities(session, customer_id)
    page = await get_history(session, customer_id, history_size)
    return {
        **profile(customer),
        "key_account": await _key_account(session, customer.key_account_agent_id),
        "emails": [value for kind, value in identities if kind == "email"],
        "phones": [value for kind, value in identities if kind == "phone"],
        "chat_ids": [value for kind, value in identities if kind == "chat"],
        "consents": await _consents(session, customer_id),
        "blocks": await _blocks(session, customer_id),
        "open_complaints": await open_complaints(session, customer_id),
        "history": page.entries,
        "history_next": page.next,
    }


def profile(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "name": customer.name,
        "company": customer.company,
        "tier": customer.tier,
        "tier_manual": customer.tier_manual,
        "key_account_agent_id": customer.key_account_agent_id,
        "language": customer.language,
        "birthday": customer.birthday,
        "revenue": customer.revenue,
        "tags": customer.tags,
        "is_prospect": customer.is_prospect,
        "merged_into_id": customer.merged_into_id,
        "created_at": customer.created_at,
    }


async def _identities(session: AsyncSession, customer_id: int) -> list[tuple[str, str]]:
    statement = (
        select(Identity.kind, Identity.value)
        .where(Identity.customer_id == customer_id)
        .order_by(Identity.id)
    )
    return [(row.kind, row.value) for row in await session.execute(statement)]


async def _key_account(session: AsyncSession, agent_id: int | None) -> dict[str, Any] | None:
    if agent_id is None:
        return None
    agent = await session.get(Agent, agent_id)
    if agent is None:
        return None
    return {"id": agent.id, "name": agent.name, "email": agent.email, "presence": agent.presence}


async def _consents(session: AsyncSession, customer_id: int) -> list[dict[str, Any]]:
    statement = select(Consent).where(Consent.customer_id == customer_id).order_by(Consent.id)
    return [
        {
            "channel": c.channel,
            "purpose": c.purpose,
            "state": c.state,
            "source": c.source,
            "updated_at": c.updated_at,
        }
        for c in await session.scalars(statement)
    ]


async def _blocks(session: AsyncSession, customer_id: int) -> list[dict[str, Any]]:
    """Active blocks on the customer itself or on any of its addresses and numbers."""
    on_customer = select(Block.id).where(
        Block.customer_id == customer_id, Block.lifted_at.is_(None)
    )
    on_identity = (
        select(Block.id)
        .join(Identity, (Identity.kind == Block.kind) & (Identity.value == Block.value))
        .where(Identity.customer_id == customer_id, Block.lifted_at.is_(None))
    )
    ids = union(on_customer, on_identity).subquery()
    statement = select(Block).where(Block.id.in_(select(ids.c.id))).order_by(Block.id)
    return [
        {
            "id": b.id,
            "kind": b.kind,
            "value": b.value,
            "reason": b.reason,
            "scope": b.scope,
            "created_at": b.created_at,
        }
        for b in await session.scalars(statement)
    ]


async def open_complaints(session: AsyncSession, customer_id: int) -> list[dict[str, Any]]:
    statement = (
        select(Complaint)
        .where(Complaint.customer_id == customer_id, Complaint.status != "resolved")
        .order_by(Complaint.opened_at.desc(), Complaint.id.desc())
    )
    return [complaint_view(c) for c in await session.scalars(statement)]
