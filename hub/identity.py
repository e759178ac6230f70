"""Who a contact is: addresses normalised, and the customer that owns them.

An e-mail address is trimmed, validated and case-folded (local parts are
case-insensitive in practice, whatever RFC 5321 allows); a phone number becomes
E.164 via `phonenumbers`, so `0151 2345678`, `+49 151 2345678` and
`0049-151-2345678` are one identity. An unknown address becomes a new customer,
a prospect.

Normalising is pure and, for a phone number, costly (`phonenumbers.parse`), and
one contact's address is normalised several times on its way in (the channel's
checks, then the intake), so the last few thousand results are kept.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.context import Hub
from hub.errors import InvalidInputError
from hub.models import Customer, Identity

MAX_CHAT_ID = 200
NORMALISED_KEPT = 4096  # addresses; a few hundred kB


@functools.lru_cache(maxsize=NORMALISED_KEPT)
def normalise_email(raw: str) -> str:
    candidate = raw.strip()
    try:
        result = validate_email(candidate, check_deliverability=False, test_environment=True)
    except EmailNotValidError as error:
        raise InvalidInputError(
            f"invalid e-mail address {candidate!r}: {error}", field="email"
        ) from None
    return result.normalized.casefold()


@functools.lru_cache(maxsize=NORMALISED_KEPT)
def normalise_phone(raw: str, region: str) -> str:
    candidate = raw.strip()
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        raise InvalidInputError(f"invalid phone number {candidate!r}", field="phone") from None
    # Possible, not "valid": the metadata lags behind real number ranges, and a
    # call center cannot turn away a customer whose real number it does not know.
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        raise InvalidInputError(f"invalid phone number {candidate!r}", field="phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_identity(kind: str, raw: str, region: str) -> str:
    if kind == "email":
        return normalise_email(raw)
    if kind == "phone":
        return normalise_phone(raw, region)
    if kind == "chat":
        value = raw.strip()
        if not value or len(value) > MAX_CHAT_ID:
            raise InvalidInputError("a chat id is 1 to 200 characters", field="chat")
        return value
    raise InvalidInputError(f"unknown identity kind {kind!r}", field="kind")


async def find_customer_by_identity(
    session: AsyncSession, kind: str, value: str
) -> Customer | None:
    """Find the customer owning an already normalised identity."""
    return (await find_customers_by_identities(session, [(kind, value)])).get((kind, value))


async def resolve_customer(
    session: AsyncSession, kind: str, value: str, name: str | None = None
) -> tuple[Customer, bool]:
    """The customer owning the normalised identity, or a new prospect; and whether it is new."""
    customers, created = await resolve_customers(session, [(kind, value, name)])
    return customers[0], bool(created)


async def resolve_customers(
    session: AsyncSession, senders: Sequence[tuple[str, str, str | None]]
) -> tuple[list[Customer], set[int]]:
    """The customer owning each normalised (kind, value, name) identity, in order, and
    the ids of those created now: an unknown identity becomes one new prospect, named
    after its first sender. One SELECT for all; the new ones in one INSERT each for
    customers and identities."""
    owners = await find_customers_by_identities(session, {(k, v) for k, v, _ in senders})
    new: dict[tuple[str, str], Customer] = {}
    for kind, value, name in senders:
        if (kind, value) not in owners and (kind, value) not in new:
            new[(kind, value)] = Customer(name=(name or "").strip()[:200], is_prospect=True)
    if new:
        session.add_all(new.values())
        await session.flush()
        session.add_all(
            Identity(customer_id=customer.id, kind=kind, value=value)
            for (kind, value), customer in new.items()
        )
        await session.flush()
        owners.update(new)
    return [owners[(kind, value)] for kind, value, _ in senders], {c.id for c in new.values()}


async def find_customers_by_identities(
    session: AsyncSession, identities: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Customer]:
    """The owners of already normalised identities that have one."""
    values_of: dict[str, list[str]] = {}
    for kind, value in identities:
        values_of.setdefault(kind, []).append(value)
    if not values_of:
        return {}
    statement = (
        select(Identity.kind, Identity.value, Customer)
        .select_from(Customer)
        .join(Identity, Identity.customer_id == Customer.id)
        .where(
            or_(
                *(
                    and_(Identity.kind == kind, Identity.value.in_(sorted(values)))
                    for kind, values in sorted(values_of.items())
                )
            )
        )
    )
    rows = await session.execute(statement)
    return {(kind, value): customer for kind, value, customer in rows}


async def add_identity(session: AsyncSession, customer: Customer, kind: str, value: str) -> None:
    """Attach an identity to a customer; an identity owned by someone else is an error."""
    owner = await find_customer_by_identity(session, kind, value)
    if owner is None:
        session.add(Identity(customer_id=customer.id, kind=kind, value=value))
        await session.flush()
    elif owner.id != customer.id:
        raise InvalidInputError(
            f"{value} already belongs to customer {owner.id}; merge the two instead", field=kind
        )


async def do_attach_identity(
    hub: Hub, kind: str, value: str, name: str | None, extra_kind: str, extra_value: str
) -> int:
    """Attach an extra identity (a chat id) to the customer owning (kind, value), or to a
    new prospect holding it; an extra identity that already has an owner keeps it.
    Returns the owning customer's id."""
    async with hub.work() as work:
        owner = await find_customer_by_identity(work.session, extra_kind, extra_value)
        if owner is not None:
            return owner.id
        customer, is_new = await resolve_customer(work.session, kind, value, name)
        await add_identity(work.session, customer, extra_kind, extra_value)
        if is_new:
            work.emit("customer.created", customer_id=customer.id)
        return customer.id
