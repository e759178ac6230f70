"""The gate: may this message go to this recipient, and if not, every reason why.

Asked when a message is queued and again when it is sent (a block may have
arrived in between). The rules, in order; all that apply are reported:

    scope     rule                                         reason code
    any       a block of scope `all` on the customer,      block:<reason>
              the address or the number
    marketing a block of scope `marketing`                 block:<reason>
    marketing no marketing consent on the channel          consent:missing
    marketing consent not yet confirmed (e-mail needs      consent:unconfirmed
              a confirmed double opt-in)
    marketing consent revoked                              consent:revoked
    marketing the customer has an open complaint          open_complaint
              (policy, on by default)
    marketing N marketing messages sent in the period      frequency_cap
    marketing a channel marketing is never sent on         channel:no_marketing

A service message (a reply to the customer's own inquiry, a confirmation)
passes unless a block of scope `all` stands. `check_many` answers for any
number of recipients with a fixed number of queries: each set of values is
bound as one parameter (a PostgreSQL array, a SQLite JSON array).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import BigInteger, String, and_, bindparam, func, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from hub.models import Block, Complaint, Consent, OutboxMessage, utcnow

PURPOSES = ("service", "marketing")
ADDRESS_KIND = {"email": "email", "sms": "phone", "voice": "phone", "phone": "phone"}
CONSENT_CHANNEL = {"email": "email", "sms": "sms", "voice": "phone", "phone": "phone"}


@dataclass(frozen=True, slots=True)
class Recipient:
    customer_id: int | None
    channel: str
    address: str


@dataclass(frozen=True, slots=True)
class Decision:
    reasons: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.reasons


@dataclass(frozen=True, slots=True)
class Policy:
    """The gate's configurable rules (from settings)."""

    marketing_cap: int = 4
    marketing_cap_days: int = 30
    no_marketing_on_open_complaint: bool = True


async def check(
    session: AsyncSession, recipient: Recipient, purpose: str, policy: Policy
) -> Decision:
    return (await check_many(session, [recipient], purpose, policy))[0]


async def check_many(
    session: AsyncSession, recipients: list[Recipient], purpose: str, policy: Policy
) -> list[Decision]:
    """One decision per recipient, in order, from at most four queries."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}")
    if not recipients:
        return []
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    customers = sorted({r.customer_id for r in recipients if r.customer_id is not None})
    blocks = await _blocks(session, dialect, recipients, customers)
    facts = _MarketingFacts()
    if purpose == "marketing" and customers:
        facts = await _marketing_facts(session, dialect, customers, policy)
    return [_decide(r, purpose, blocks, facts, policy) for r in recipients]


def _values_in(column: Any, values: list[Any], dialect: str, name: str) -> ColumnElement[bool]:
    """`column IN values` with the whole list bound as a single parameter."""
    is_int = bool(values) and isinstance(values[0], int)
    if dialect == "postgresql":
        array = bindparam(name, values, type_=ARRAY(BigInteger if is_int else String))
        return column == func.any(array)
    table = func.json_each(bindparam(name, json.dumps(values))).table_valued("value")
    return column.in_(select(table.c.value))


async def _blocks(
    session: AsyncSession, dialect: str, recipients: list[Recipient], customers: list[int]
) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """Active blocks keyed by (kind, value); a customer block is keyed ("customer", id)."""
    emails = sorted({r.address for r in recipients if ADDRESS_KIND.get(r.channel) == "email"})
    phones = sorted({r.address for r in recipients if ADDRESS_KIND.get(r.channel) == "phone"})
    targets = [
        and_(
            Block.kind == "customer",
            _values_in(Block.customer_id, customers or [0], dialect, "customers"),
        )
    ]
    if emails:
        targets.append(
            and_(Block.kind == "email", _values_in(Block.value, emails, dialect, "emails"))
        )
    if phones:
        targets.append(
            and_(Block.kind == "phone", _values_in(Block.value, phones, dialect, "phones"))
        )
    statement = select(Block.kind, Block.value, Block.reason, Block.scope).where(
        Block.lifted_at.is_(None), or_(*targets)
    )
    found: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for row in await session.execute(statement):
        found[(row.kind, row.value)].append((row.reason, row.scope))
    return found


@dataclass
class _MarketingFacts:
    consents: dict[tuple[int, str], tuple[str, dict[str, Any]]] | None = None
    complaining: set[int] | None = None
    sent_recently: dict[int, int] | None = None


async def _marketing_facts(
    session: AsyncSession, dialect: str, customers: list[int], policy: Policy
) -> _MarketingFacts:
    consents = await session.execute(
        select(Consent.customer_id, Consent.channel, Consent.state, Consent.evidence).where(
            _values_in(Consent.customer_id, customers, dialect, "customers"),
            Consent.purpose == "marketing",
        )
    )
    complaining: set[int] = set()
    if policy.no_marketing_on_open_complaint:
        complaining = set(
            await session.scalars(
                select(Complaint.customer_id)
                .distinct()
                .where(
                    _values_in(Complaint.customer_id, customers, dialect, "customers"),
                    Complaint.status != "resolved",
                )
            )
        )
    since = utcnow() - timedelta(days=policy.marketing_cap_days)
    sent = await session.execute(
        select(OutboxMessage.customer_id, func.count())
        .where(
            _values_in(OutboxMessage.customer_id, customers, dialect, "customers"),
            OutboxMessage.purpose == "marketing",
            OutboxMessage.status == "sent",
            OutboxMessage.sent_at >= since,
        )
        .group_by(OutboxMessage.customer_id)
    )
    return _MarketingFacts(
        consents={(row.customer_id, row.channel): (row.state, row.evidence) for row in consents},
        complaining=complaining,
        sent_recently={row[0]: row[1] for row in sent},
    )


def _decide(
    recipient: Recipient,
    purpose: str,
    blocks: dict[tuple[str, str], list[tuple[str, str]]],
    facts: _MarketingFacts,
    policy: Policy,
) -> Decision:
    standing = list(blocks.get((ADDRESS_KIND.get(recipient.channel, ""), recipient.address), []))
    if recipient.customer_id is not None:
        standing += blocks.get(("customer", str(recipient.customer_id)), [])
    reasons = [
        f"block:{reason}" for reason, scope in standing if scope == "all" or purpose == "marketing"
    ]
    if purpose == "marketing":
        reasons += _marketing_reasons(recipient, facts, policy)
    return Decision(tuple(dict.fromkeys(reasons)))


def _marketing_reasons(recipient: Recipient, facts: _MarketingFacts, policy: Policy) -> list[str]:
    channel = CONSENT_CHANNEL.get(recipient.channel)
    if channel is None:
        return ["channel:no_marketing"]
    if recipient.customer_id is None:
        return ["consent:missing"]
    reasons = []
    state, evidence = (facts.consents or {}).get((recipient.customer_id, channel), (None, {}))
    reasons += _consent_reasons(channel, state, evidence)
    if recipient.customer_id in (facts.complaining or set()):
        reasons.append("open_complaint")
    if (facts.sent_recently or {}).get(recipient.customer_id, 0) >= policy.marketing_cap:
        reasons.append("frequency_cap")
    return reasons


def _consent_reasons(channel: str, state: str | None, evidence: dict[str, Any]) -> list[str]:
    if state is None:
        return ["consent:missing"]
    if state == "revoked":
        return ["consent:revoked"]
    # Marketing e-mail needs the double opt-in's confirmation, not only a tick box.
    if state != "granted" or (channel == "email" and not evidence.get("confirmed_at")):
        return ["consent:unconfirmed"]
    return []
