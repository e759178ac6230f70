"""Data quality figures: gaps and likely duplicates in the customer base, now.

They describe the data as it stands, so the period does not apply; the tier
filter does. Customers merged into another, and erased ones, are not counted.
They read the rollup `kpi_customers` (`hub.kpis.rollup`): one row per counted
customer, kept current by triggers in the transaction of every change.

    data_quality        customers; without e-mail, without phone, without
                        tier (counts and shares); duplicate suspect groups and
                        the customers in them; consents without evidence
    duplicate_suspects  groups of customers that look like one person (the
                        first 50): `name_company`, the same name and company
                        ignoring case and surrounding spaces; `similar_email`,
                        e-mail addresses that reach one mailbox when a
                        `+tag` and the dots of the local part are ignored
                        (`Max.Muster+shop@x.de` and `maxmuster@x.de`)
    consents_without_evidence  consent records with no evidence stored, by
                        channel, purpose and state; `data_quality` counts the
                        ones not revoked (a revoked consent needs none)

Names and companies are case-folded by the database's `lower()` (on SQLite: ASCII only).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import ColumnElement, Select, String, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.kpis.query import KpiQuery
from hub.kpis.rollup import is_marked
from hub.kpis.sql import applied, once, tier_matches
from hub.kpis.tables import Table, share
from hub.models import Consent, Identity, KpiCustomer

LISTED_GROUPS = 50

LOOKUP_BATCH = 1000  # mailboxes per IN list (asyncpg takes at most 32,767 parameters)


def _counted(query: KpiQuery) -> list[ColumnElement[bool]]:
    """Which of the counted customers (the rollup's rows) count: those of the filtered tier."""
    return [tier_matches(query.filters.tier, KpiCustomer.tier)] if query.filters.tier else []


def _no_evidence() -> ColumnElement[bool]:
    text = cast(Consent.evidence, String)
    return or_(Consent.evidence.is_(None), text.in_(("{}", "null")))


async def _name_company_groups(
    session: AsyncSession, query: KpiQuery
) -> list[tuple[str, list[int]]]:
    """Read in the order of the rollup's (name, company, tier, customer) index: no sort."""
    name, company = KpiCustomer.name_key, KpiCustomer.company_key
    ids = func.aggregate_strings(cast(KpiCustomer.id, String), ",")
    statement = (
        select(name, company, ids)
        .where(*_counted(query), name != "")
        .group_by(name, company)
        .having(func.count() > 1)
    )
    return [
        (f"{name_key} / {company_key}" if company_key else name_key, _ids(text))
        for name_key, company_key, text in (await session.execute(statement)).all()
    ]


def mailbox_of(address: str) -> str:
    """The mailbox an address reaches when a +tag and the local part's dots are ignored."""
    local, _, domain = address.rpartition("@")
    return local.split("+", 1)[0].replace(".", "").lower() + "@" + domain.lower()


async def _similar_email_groups(
    session: AsyncSession, query: KpiQuery
) -> list[tuple[str, list[int]]]:
    """Addresses of different customers that reach one mailbox.

    Every address is either its own mailbox or marked (`hub.kpis.rollup.is_marked`); the
    rollup flags the customers who have a marked address, so only their addresses are
    read and reduced in Python, and then the plain addresses equal to one of their
    mailboxes are found by the unique index: the work follows the marked addresses, not
    the whole customer base.
    """
    base = (
        select(Identity.customer_id, Identity.value)
        .join(KpiCustomer, KpiCustomer.id == Identity.customer_id)
        .where(Identity.kind == "email", *_counted(query))
    )
    members: dict[str, set[int]] = defaultdict(set)
    marked = base.where(KpiCustomer.marked_email, is_marked(Identity.value))
    for customer_id, value in await session.execute(marked):
        members[mailbox_of(value)].add(customer_id)
    mailboxes = list(members)
    for start in range(0, len(mailboxes), LOOKUP_BATCH):
        batch = mailboxes[start : start + LOOKUP_BATCH]
        for customer_id, value in await session.execute(base.where(Identity.value.in_(batch))):
            members[value].add(customer_id)
    return sorted((key, sorted(ids)) for key, ids in members.items() if len(ids) > 1)


def _ids(text: str) -> list[int]:
    return sorted({int(part) for part in text.split(",")})


async def _suspects(session: AsyncSession, query: KpiQuery) -> list[tuple[str, str, list[int]]]:
    key = ("suspects", query.filters.tier)
    return await once(session, key, lambda: _find_suspects(session, query))


async def _find_suspects(
    session: AsyncSession, query: KpiQuery
) -> list[tuple[str, str, list[int]]]:
    groups = [("name_company", key, ids) for key, ids in await _name_company_groups(session, query)]
    groups += [
        ("similar_email", key, ids) for key, ids in await _similar_email_groups(session, query)
    ]
    return sorted(groups, key=lambda group: (-len(group[2]), group[0], group[1]))


def _consents(query: KpiQuery, *columns: Any) -> Select[Any]:
    return (
        select(*columns)
        .select_from(Consent)
        .join(KpiCustomer, KpiCustomer.id == Consent.customer_id)
        .where(_no_evidence(), *_counted(query))
    )


async def data_quality(session: AsyncSession, query: KpiQuery) -> Table:
    # One pass over the rollup's narrow rows, one per counted customer.
    tallies = select(
        func.count(),
        func.count().filter(KpiCustomer.tier.is_(None)),
        func.count().filter(KpiCustomer.has_email.is_(False)),
        func.count().filter(KpiCustomer.has_phone.is_(False)),
    ).where(*_counted(query))
    total, no_tier, no_email, no_phone = (await session.execute(tallies)).one()
    suspects = await _suspects(session, query)
    in_groups = {customer_id for _kind, _key, ids in suspects for customer_id in ids}
    consents = await session.scalar(
        _consents(query, func.count()).where(Consent.state != "revoked")
    )
    row = (total, no_email, share(no_email, total), no_phone, share(no_phone, total))
    row += (no_tier, share(no_tier, total), len(suspects), len(in_groups), consents or 0)
    return Table(
        "data_quality",
        (
            "customers",
            "without_email",
            "without_email_share",
            "without_phone",
            "without_phone_share",
            "without_tier",
            "without_tier_share",
            "duplicate_groups",
            "duplicate_customers",
            "consents_without_evidence",
        ),
        [row],
        applied(query.filters, ("tier",)),
    )


async def duplicate_suspects(session: AsyncSession, query: KpiQuery) -> Table:
    suspects = await _suspects(session, query)
    rows = [
        (kind, key, len(ids), " ".join(str(i) for i in ids))
        for kind, key, ids in suspects[:LISTED_GROUPS]
    ]
    return Table(
        "duplicate_suspects",
        ("kind", "key", "customers", "customer_ids"),
        rows,
        applied(query.filters, ("tier",)),
    )


async def consents_without_evidence(session: AsyncSession, query: KpiQuery) -> Table:
    keys = (Consent.channel, Consent.purpose, Consent.state)
    statement = _consents(query, *keys, func.count()).group_by(*keys).order_by(*keys)
    return Table(
        "consents_without_evidence",
        ("channel", "purpose", "state", "records"),
        [tuple(row) for row in (await session.execute(statement)).all()],
        applied(query.filters, ("tier",)),
    )


FIGURES = {
    "data_quality": data_quality,
    "duplicate_suspects": duplicate_suspects,
    "consents_without_evidence": consents_without_evidence,
}
