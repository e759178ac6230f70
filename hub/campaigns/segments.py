"""Segments: a saved filter over customers, the count it matches, and its recipients.

A filter is a JSON object; every key narrows the set, a missing key does not:

    tiers                 ["A", "B"]           the customer's tier is one of these
    languages             ["de"]               the customer's language is one of these
    tags                  ["vip"]              has any of these tags
    without_tags          ["press"]            has none of these tags
    consent               {"channel": "email", "state": "granted"}
                          marketing consent on that channel is in that state
                          (`granted`, `pending_confirmation`, `revoked`, `none`)
    last_contact_before   "2026-01-01"         has a contact, none since that date
    last_contact_after    "2026-06-01"         has a contact on or after that date
    open_complaint        true | false         has (or has no) complaint not resolved
    fields                {"company": "ACME", "is_prospect": false}
                          equality on the customer's own fields (`FIELDS`)

Merged-away customers are never members. Recipients are read in pages by
customer id (keyset), each with the customer's first address of the
campaign's kind, so a segment of any size is read in constant memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import String, and_, exists, false, func, not_, select
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from hub.errors import InvalidInputError
from hub.models import Complaint, Consent, Customer, Identity, Interaction

TIERS = ("A", "B", "C")
CONSENT_STATES = ("granted", "pending_confirmation", "revoked", "none")
CONSENT_CHANNELS = ("email", "sms", "phone")
FIELDS = {"company": str, "name": str, "is_prospect": bool, "key_account_agent_id": int}
KEYS = (
    "tiers",
    "languages",
    "tags",
    "without_tags",
    "consent",
    "last_contact_before",
    "last_contact_after",
    "open_complaint",
    "fields",
)
ADDRESS_KIND = {"email": "email", "sms": "phone"}


@dataclass(frozen=True, slots=True)
class Member:
    """A segment member as a campaign needs it: who, where, and what a template may use."""

    customer_id: int
    address: str | None
    name: str
    company: str | None
    tier: str | None
    language: str | None


def check_filter(value: Any) -> dict[str, Any]:
    """The filter, normalised; raises InvalidInputError naming the bad key."""
    if not isinstance(value, dict):
        raise InvalidInputError("a segment filter is an object", field="segment")
    unknown = set(value) - set(KEYS)
    if unknown:
        raise InvalidInputError(f"segment: unknown key {sorted(unknown)[0]!r}", field="segment")
    checked: dict[str, Any] = {}
    for key in KEYS:
        if key in value and value[key] is not None:
            checked[key] = _CHECKS[key](key, value[key])
    return checked


def _strings(key: str, value: Any, allowed: tuple[str, ...] | None = None) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidInputError(f"segment: {key} is a list of strings", field="segment")
    if allowed is not None and not set(value) <= set(allowed):
        raise InvalidInputError(f"segment: {key} may hold {', '.join(allowed)}", field="segment")
    return sorted(set(value))


def _date(key: str, value: Any) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except (TypeError, ValueError):
        raise InvalidInputError(f"segment: {key} is a date YYYY-MM-DD", field="segment") from None


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"segment: {key} is true or false", field="segment")
    return value


def _consent(key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or value.get("state") not in CONSENT_STATES:
        raise InvalidInputError(
            f"segment: consent needs a state ({', '.join(CONSENT_STATES)})", field="segment"
        )
    channel = value.get("channel", "email")
    if channel not in CONSENT_CHANNELS:
        raise InvalidInputError(
            f"segment: consent channel is one of {', '.join(CONSENT_CHANNELS)}", field="segment"
        )
    return {"channel": channel, "state": value["state"]}


def _fields(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInputError("segment: fields is an object", field="segment")
    for name, wanted in value.items():
        kind = FIELDS.get(name)
        if kind is None:
            raise InvalidInputError(
                f"segment: fields may name {', '.join(FIELDS)}, not {name!r}", field="segment"
            )
        if not isinstance(wanted, kind) or (kind is int and isinstance(wanted, bool)):
            raise InvalidInputError(
                f"segment: fields.{name} must be {kind.__name__}", field="segment"
            )
    return dict(value)


_CHECKS = {
    "tiers": lambda key, value: _strings(key, value, TIERS),
    "languages": lambda key, value: [v.lower() for v in _strings(key, value)],
    "tags": _strings,
    "without_tags": _strings,
    "consent": _consent,
    "last_contact_before": _date,
    "last_contact_after": _date,
    "open_complaint": _bool,
    "fields": _fields,
}


def member_conditions(segment: dict[str, Any], dialect: str) -> list[ColumnElement[bool]]:
    """WHERE conditions on `Customer` for the filter (already checked)."""
    conditions: list[ColumnElement[bool]] = [Customer.merged_into_id.is_(None)]
    if "tiers" in segment:
        conditions.append(Customer.tier.in_(segment["tiers"]))
    if "languages" in segment:
        conditions.append(
            func.lower(func.substr(Customer.language, 1, 2)).in_(segment["languages"])
        )
    if "tags" in segment:
        conditions.append(_has_any_tag(segment["tags"], dialect))
    if "without_tags" in segment:
        conditions.append(not_(_has_any_tag(segment["without_tags"], dialect)))
    if "consent" in segment:
        conditions.append(_consent_condition(**segment["consent"]))
    conditions += _contact_conditions(segment)
    if "open_complaint" in segment:
        complaining = exists().where(
            Complaint.customer_id == Customer.id, Complaint.status != "resolved"
        )
        conditions.append(complaining if segment["open_complaint"] else not_(complaining))
    for name, wanted in segment.get("fields", {}).items():
        conditions.append(getattr(Customer, name) == wanted)
    return conditions


def _has_any_tag(tags: list[str], dialect: str) -> ColumnElement[bool]:
    if dialect == "postgresql":
        return func.coalesce(
            Customer.tags.cast(JSONB).has_any(func.cast(tags, ARRAY(String))), false()
        )
    values = func.json_each(Customer.tags).table_valued("value")
    return exists(select(1).select_from(values).where(values.c.value.in_(tags)))


def _consent_condition(channel: str, state: str) -> ColumnElement[bool]:
    mine = and_(
        Consent.customer_id == Customer.id,
        Consent.channel == channel,
        Consent.purpose == "marketing",
    )
    if state == "none":
        return not_(exists().where(mine))
    return exists().where(mine, Consent.state == state)


def _contact_conditions(segment: dict[str, Any]) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if "last_contact_after" in segment:
        since = _midnight(segment["last_contact_after"])
        conditions.append(
            exists().where(Interaction.customer_id == Customer.id, Interaction.occurred_at >= since)
        )
    if "last_contact_before" in segment:
        until = _midnight(segment["last_contact_before"])
        conditions.append(exists().where(Interaction.customer_id == Customer.id))
        conditions.append(
            not_(
                exists().where(
                    Interaction.customer_id == Customer.id, Interaction.occurred_at >= until
                )
            )
        )
    return conditions


def _midnight(day: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC)


async def count_members(session: AsyncSession, segment: dict[str, Any]) -> int:
    dialect = session.get_bind().dialect.name
    statement = (
        select(func.count()).select_from(Customer).where(*member_conditions(segment, dialect))
    )
    return int((await session.execute(statement)).scalar_one())


def _first_address(channel: str) -> Any:
    """The customer's first address of the channel's kind (a correlated, indexed lookup)."""
    return (
        select(Identity.value)
        .where(Identity.customer_id == Customer.id, Identity.kind == ADDRESS_KIND[channel])
        .order_by(Identity.id)
        .limit(1)
        .correlate(Customer)
        .scalar_subquery()
    )


async def find_members(
    session: AsyncSession, segment: dict[str, Any], channel: str, after: int, limit: int
) -> list[Member]:
    """One page of members with customer id above `after`, in id order."""
    dialect = session.get_bind().dialect.name
    statement = (
        select(
            Customer.id,
            _first_address(channel),
            Customer.name,
            Customer.company,
            Customer.tier,
            Customer.language,
        )
        .where(Customer.id > after, *member_conditions(segment, dialect))
        .order_by(Customer.id)
        .limit(limit)
    )
    return [Member(*row) for row in await session.execute(statement)]


async def iterate_members(
    session: AsyncSession, segment: dict[str, Any], channel: str, page: int = 1000
) -> AsyncIterator[list[Member]]:
    after = 0
    while True:
        members = await find_members(session, segment, channel, after, page)
        if not members:
            return
        yield members
        after = members[-1].customer_id
