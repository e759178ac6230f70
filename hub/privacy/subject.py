"""Who a GDPR request is about: the customer, its merged records, and what names them.

A merge keeps the merged record as a tombstone (`merged_into_id`) whose rows
moved onto the survivor; both are the same person, so a request about the
survivor covers every record merged into it, transitively. The person's
addresses are their identities plus every address the hub wrote to or heard
from on their behalf (senders of their history, recipients of their outbox):
an address can outlive its identity, on a block or an old outbox row.

`terms` are the values that name the person wherever they turn up (names,
addresses, numbers, chat ids); erasure sweeps every other table for them.
`private_terms` add what only names them next to their records (IP addresses
and browsers from consent evidence), used on the rows known to be theirs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.errors import NotFoundError
from hub.models import Consent, Customer, Identity, Interaction, OutboxMessage

# Shorter values (a first name like "Al") would match inside unrelated text.
MIN_TERM = 4
ERASED = "[erased]"
EVIDENCE_KEYS = ("ip", "confirmed_ip", "user_agent", "confirmed_user_agent", "address")


@dataclass(frozen=True, slots=True)
class Subject:
    customer_id: int
    customer_ids: tuple[int, ...]
    identities: tuple[tuple[str, str], ...]
    addresses: frozenset[tuple[str, str]]
    terms: frozenset[str]
    private_terms: frozenset[str] = field(default_factory=frozenset)

    @property
    def address_values(self) -> list[str]:
        return sorted({value for _, value in self.addresses})

    @property
    def chat_ids(self) -> list[str]:
        return sorted(value for kind, value in self.identities if kind == "chat")


async def find_subject(session: AsyncSession, customer_id: int) -> Subject:
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFoundError(f"no customer {customer_id}")
    customers = await _with_merged(session, customer)
    ids = tuple(c.id for c in customers)
    identities = tuple(
        (kind, value)
        for kind, value in await session.execute(
            select(Identity.kind, Identity.value)
            .where(Identity.customer_id.in_(ids))
            .order_by(Identity.id)
        )
    )
    addresses = set(identities) | await _used_addresses(session, ids)
    terms = {c.name.strip() for c in customers if c.name} | {value for _, value in addresses}
    terms |= {value.lstrip("+") for kind, value in addresses if kind == "phone"}
    evidence = await _evidence_values(session, ids)
    return Subject(
        customer_id=customer.id,
        customer_ids=ids,
        identities=identities,
        addresses=frozenset(addresses),
        terms=frozenset(_usable(terms)),
        private_terms=frozenset(_usable(terms | evidence)),
    )


async def _with_merged(session: AsyncSession, customer: Customer) -> list[Customer]:
    """The customer and every record merged into it, transitively."""
    found = [customer]
    frontier = [customer.id]
    while frontier:
        merged = list(
            await session.scalars(select(Customer).where(Customer.merged_into_id.in_(frontier)))
        )
        merged = [c for c in merged if c not in found]
        found += merged
        frontier = [c.id for c in merged]
    return found


async def _used_addresses(session: AsyncSession, ids: tuple[int, ...]) -> set[tuple[str, str]]:
    """Addresses on the customers' history and outbox (kinds from the channel)."""
    senders = await session.execute(
        select(Interaction.channel, Interaction.sender)
        .distinct()
        .where(
            Interaction.customer_id.in_(ids),
            Interaction.sender.is_not(None),
            Interaction.direction == "inbound",
        )
    )
    recipients = await session.execute(
        select(OutboxMessage.channel, OutboxMessage.recipient)
        .distinct()
        .where(OutboxMessage.customer_id.in_(ids))
    )
    return {
        (address_kind(channel, value), value) for channel, value in (*senders, *recipients) if value
    }


def address_kind(channel: str, value: str) -> str:
    if channel == "chat":
        return "chat"
    return "email" if "@" in value else "phone"


async def _evidence_values(session: AsyncSession, ids: tuple[int, ...]) -> set[str]:
    rows = await session.scalars(select(Consent.evidence).where(Consent.customer_id.in_(ids)))
    return {
        str(evidence[key]).strip()
        for evidence in rows
        for key in EVIDENCE_KEYS
        if isinstance(evidence, dict) and evidence.get(key)
    }


def _usable(terms: set[str]) -> set[str]:
    """Addresses, numbers and ids; a name only when it is a full name (two words or more):
    a lone first name ("Anna") would blank unrelated text ("Anna-Lena") elsewhere."""
    return {
        term
        for term in terms
        if len(term) >= MIN_TERM and (" " in term or not term.replace("-", "").isalpha())
    }


@lru_cache(maxsize=64)
def term_pattern(terms: frozenset[str]) -> re.Pattern[str]:
    """The terms as whole words (not inside a longer word or number), any case."""
    alternatives = "|".join(re.escape(term) for term in sorted(terms, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def mentions(value: Any, terms: frozenset[str]) -> bool:
    """Does a string, or any string inside a JSON value, hold one of the terms?"""
    return bool(terms) and scrub(value, terms) != value


def scrub(value: Any, terms: frozenset[str]) -> Any:
    """The value with every term replaced by `[erased]`, inside JSON too."""
    if not terms:
        return value
    if isinstance(value, str):
        return term_pattern(terms).sub(ERASED, value)
    if isinstance(value, dict):
        return {scrub(key, terms): scrub(item, terms) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(item, terms) for item in value]
    return value
