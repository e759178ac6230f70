"""Customers: creating and updating them, finding them by identity, and their card.

The card is what an agent sees first: profile, tier and key account, the
identities, consents and active blocks, every open complaint, and the newest
history across all channels. Each part is one indexed query.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    String,
    bindparam,
    cast,
    literal_column,
    null,
    select,
    union,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine

from hub.audit import record
from hub.complaints import complaint_view
from hub.errors import InvalidInputError, NotFoundError
from hub.history import get_history
from hub.identity import add_identity, find_customer_by_identity, normalise_identity
from hub.models import Agent, Block, Complaint, Consent, Customer, Identity, UTCDateTime
from hub.visibility import sees_customer

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
    session: AsyncSession,
    region: str,
    email: str | None = None,
    phone: str | None = None,
    seen_by: Agent | None = None,
) -> Customer:
    """The customer owning the identity; with `seen_by`, one that agent may see, answering
    for another team's customer exactly as for nobody's."""
    if (email is None) == (phone is None):
        raise InvalidInputError("give exactly one of email or phone")
    kind, raw = ("email", email) if email is not None else ("phone", phone)
    value = normalise_identity(kind, raw or "", region)
    customer = await find_customer_by_identity(session, kind, value)
    hidden = (
        customer is not None
        and seen_by is not None
        and not await session.scalar(select(sees_customer(seen_by, customer.id)))
    )
    if customer is None or hidden:
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
    """The card in three statements: the customer, its contacts, its history."""
    customer, key_account, complaints = await _customer(session, customer_id)
    contacts = await _contacts(session, customer_id)
    page = await get_history(session, customer_id, history_size)
    return {
        **profile(customer),
        "key_account": key_account,
        "emails": [row.value for row in contacts["identity"] if row.kind == "email"],
        "phones": [row.value for row in contacts["identity"] if row.kind == "phone"],
        "chat_ids": [row.value for row in contacts["identity"] if row.kind == "chat"],
        "consents": [_consent(row) for row in contacts["consent"]],
        "blocks": [_block(row) for row in contacts["block"]],
        "open_complaints": [complaint_view(complaint) for complaint in complaints],
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


# The card's statements are built once, with the customer as a bound parameter,
# and are few: on SQLite each statement costs about 0.3 ms of hand-offs to the
# driver's thread whatever it reads, and building and hashing a fresh statement
# costs as much again (bench/history.py measures the card against the history).
_CUSTOMER = bindparam("customer_id")
_identity, _consent_table, _block_table = Identity.__table__, Consent.__table__, Block.__table__

# The customer, its key account manager and its open complaints, newest first:
# one row per open complaint, or one row without a complaint.
_CUSTOMER_CARD = (
    select(Customer, Agent.id, Agent.name, Agent.email, Agent.presence, Complaint)
    .outerjoin(Agent, Agent.id == Customer.key_account_agent_id)
    .outerjoin(Complaint, (Complaint.customer_id == Customer.id) & (Complaint.status != "resolved"))
    .where(Customer.id == _CUSTOMER)
    .order_by(Complaint.opened_at.desc(), Complaint.id.desc())
)

# Identities, consents and active blocks come back as one UNION ALL: each row
# names its `part` and fills that part's columns, leaving the others NULL.
_CONTACT_COLUMNS: dict[str, TypeEngine[Any]] = {
    "kind": String(),
    "value": String(),
    "channel": String(),
    "purpose": String(),
    "state": String(),
    "source": String(),
    "reason": String(),
    "scope": String(),
    "updated_at": UTCDateTime(),
    "created_at": UTCDateTime(),
}


def _contact_part(
    part: str,
    position: ColumnElement[int],
    where: ColumnElement[bool],
    **filled: ColumnElement[Any],
) -> Select[Any]:
    """One part's rows: its name, its id for ordering, its columns, NULL (typed) elsewhere."""
    columns = [
        filled.get(name, cast(null(), type_)).label(name)
        for name, type_ in _CONTACT_COLUMNS.items()
    ]
    part_name = literal_column(f"'{part}'", String()).label("part")
    return select(part_name, position.label("position"), *columns).where(where)


def _active_block_ids() -> Select[Any]:
    """Active blocks on the customer itself or on any of its addresses and numbers."""
    active = _block_table.c.lifted_at.is_(None)
    on_customer = select(_block_table.c.id).where(_block_table.c.customer_id == _CUSTOMER, active)
    on_identity = (
        select(_block_table.c.id)
        .join(
            _identity,
            (_identity.c.kind == _block_table.c.kind) & (_identity.c.value == _block_table.c.value),
        )
        .where(_identity.c.customer_id == _CUSTOMER, active)
    )
    return select(union(on_customer, on_identity).subquery().c.id)


def _contacts_statement() -> Select[Any]:
    i, c, b = _identity.c, _consent_table.c, _block_table.c
    parts = union_all(
        _contact_part("identity", i.id, i.customer_id == _CUSTOMER, kind=i.kind, value=i.value),
        _contact_part(
            "consent",
            c.id,
            c.customer_id == _CUSTOMER,
            channel=c.channel,
            purpose=c.purpose,
            state=c.state,
            source=c.source,
            updated_at=c.updated_at,
        ),
        _contact_part(
            "block",
            b.id,
            b.id.in_(_active_block_ids()),
            kind=b.kind,
            value=b.value,
            reason=b.reason,
            scope=b.scope,
            created_at=b.created_at,
        ),
    ).subquery()
    return select(parts).order_by(parts.c.part, parts.c.position)


_CONTACTS = _contacts_statement()


async def _customer(
    session: AsyncSession, customer_id: int
) -> tuple[Customer, dict[str, Any] | None, list[Complaint]]:
    """The customer, its key account (or None) and its open complaints."""
    rows = (await session.execute(_CUSTOMER_CARD, {"customer_id": customer_id})).all()
    if not rows:
        raise NotFoundError(f"no customer {customer_id}")
    customer, agent_id, name, email, presence, _ = rows[0]
    complaints = [row.Complaint for row in rows if row.Complaint is not None]
    key_account = {"id": agent_id, "name": name, "email": email, "presence": presence}
    return customer, key_account if agent_id is not None else None, complaints


async def _contacts(session: AsyncSession, customer_id: int) -> dict[str, list[Row[Any]]]:
    """The customer's identities, consents and active blocks, each part in id order."""
    parts: dict[str, list[Row[Any]]] = {"identity": [], "consent": [], "block": []}
    for row in await session.execute(_CONTACTS, {"customer_id": customer_id}):
        parts[row.part].append(row)
    return parts


def _consent(row: Row[Any]) -> dict[str, Any]:
    return {
        "channel": row.channel,
        "purpose": row.purpose,
        "state": row.state,
        "source": row.source,
        "updated_at": row.updated_at,
    }


def _block(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.position,
        "kind": row.kind,
        "value": row.value,
        "reason": row.reason,
        "scope": row.scope,
        "created_at": row.created_at,
    }
