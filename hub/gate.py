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
    marketing the address was erased on request            suppressed
              (`hub.privacy.suppression`)

A service message (a reply to the customer's own inquiry, a confirmation)
passes unless a block of scope `all` stands. `check_many` answers for any
number of recipients with a fixed number of queries: each set of values is
bound as one parameter (a PostgreSQL array, a SQLite JSON array).
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    CompoundSelect,
    String,
    bindparam,
    cast,
    func,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from hub.models import Block, Complaint, Consent, OutboxMessage, utcnow
from hub.privacy.suppression import find_suppressed

PURPOSES = ("service", "marketing")
ADDRESS_KIND = {"email": "email", "sms": "phone", "voice": "phone", "phone": "phone"}
ADDRESS_KINDS = tuple(dict.fromkeys(ADDRESS_KIND.values()))  # email, phone
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


ALLOWED = Decision()


@dataclass(frozen=True, slots=True)
class Policy:
    """The gate's configurable rules (from settings)."""

    marketing_cap: int = 4
    marketing_cap_days: int = 30
    no_marketing_on_open_complaint: bool = True
    # The key suppressed addresses are hashed with; None checks no suppression.
    suppression_key: bytes | None = None


async def check(
    session: AsyncSession, recipient: Recipient, purpose: str, policy: Policy
) -> Decision:
    return (await check_many(session, [recipient], purpose, policy))[0]


async def check_each(
    session: AsyncSession, asked: list[tuple[Recipient, str]], policy: Policy
) -> list[Decision]:
    """One decision per (recipient, purpose), in order: `check_many` once per purpose."""
    by_purpose: dict[str, list[int]] = defaultdict(list)
    for index, (_, purpose) in enumerate(asked):
        by_purpose[purpose].append(index)
    decisions: dict[int, Decision] = {}
    for purpose, indexes in by_purpose.items():
        recipients = [asked[index][0] for index in indexes]
        found = await check_many(session, recipients, purpose, policy)
        decisions |= dict(zip(indexes, found, strict=True))
    return [decisions[index] for index in range(len(asked))]


async def check_many(
    session: AsyncSession, recipients: list[Recipient], purpose: str, policy: Policy
) -> list[Decision]:
    """One decision per recipient, in order, from at most five queries."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}")
    if not recipients:
        return []
    dialect = session.get_bind().dialect.name
    customers = sorted({r.customer_id for r in recipients if r.customer_id is not None})
    blocks = await _blocks(session, dialect, recipients, customers)
    facts = _MarketingFacts()
    if purpose == "marketing" and customers:
        facts = await _marketing_facts(session, dialect, customers, policy)
    if purpose == "marketing" and policy.suppression_key is not None:
        addresses = [(ADDRESS_KIND.get(r.channel, ""), r.address) for r in recipients]
        known = [(kind, address) for kind, address in addresses if kind]
        facts.suppressed = await find_suppressed(session, known, key=policy.suppression_key)
    return [_decide(r, purpose, blocks, facts, policy) for r in recipients]


def in_bound_array(column: Any, values: list[Any], dialect: str, name: str) -> ColumnElement[bool]:
    """`column IN values` with the whole list bound as a single parameter."""
    is_int = bool(values) and isinstance(values[0], int)
    return in_array_parameter(column, dialect, name, is_int, bound(values, dialect))


def in_array_parameter(
    column: Any, dialect: str, name: str, is_int: bool, value: Any = None
) -> ColumnElement[bool]:
    """`column IN` the list bound as parameter `name`: `value`, or without one, a list
    given (through `bound`) when the statement runs, which is then built once for
    lists of any length."""
    if dialect == "postgresql":
        array_type = ARRAY(BigInteger if is_int else String)
        array = bindparam(name, value, type_=array_type, required=value is None)
        return column == func.any(array)
    text = bindparam(name, value, type_=String, required=value is None)
    return column.in_(select(func.json_each(text).table_valued("value").c.value))


def bound(values: list[Any], dialect: str) -> Any:
    """A list as `in_array_parameter` takes it: an array, or JSON text on SQLite."""
    return values if dialect == "postgresql" else json.dumps(values)


async def _blocks(
    session: AsyncSession, dialect: str, recipients: list[Recipient], customers: list[int]
) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """Active blocks keyed by (kind, value); a customer block is keyed ("customer", id)."""
    addresses = {
        kind: sorted({r.address for r in recipients if ADDRESS_KIND.get(r.channel) == kind})
        for kind in ADDRESS_KINDS
    }
    kinds = tuple(kind for kind, values in addresses.items() if values)
    parameters = {f"{kind}s": bound(addresses[kind], dialect) for kind in kinds}
    parameters["customers"] = bound(customers or [0], dialect)
    found: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for kind, value, reason, scope in await session.execute(
        _blocks_statement(dialect, kinds), parameters
    ):
        found[(kind, value)].append((reason, scope))
    return found


@functools.lru_cache(maxsize=8)
def _blocks_statement(dialect: str, kinds: tuple[str, ...]) -> CompoundSelect:
    """The active blocks of the customers and addresses given as parameters `customers`,
    `emails` and `phones` (those of `kinds`). Built once for each shape: the dispatcher
    asks again whenever its answers are older than 100 ms, and building the statement
    cost more than running it."""
    # A customer block is found by its customer_id, the column a merge moves.
    by_customer = select(
        Block.kind, cast(Block.customer_id, String).label("value"), Block.reason, Block.scope
    ).where(
        Block.kind == "customer",
        Block.lifted_at.is_(None),
        in_array_parameter(Block.customer_id, dialect, "customers", is_int=True),
    )
    by_address = [
        select(Block.kind, Block.value, Block.reason, Block.scope).where(
            Block.kind == kind,
            Block.lifted_at.is_(None),
            in_array_parameter(Block.value, dialect, f"{kind}s", is_int=False),
        )
        for kind in kinds
    ]
    # One SELECT per kind glued by UNION ALL, not one SELECT with an OR: PostgreSQL's
    # generic plan for a prepared statement (used after five runs) re-checks every
    # row of an OR against the whole array, which took seconds for 100,000 recipients.
    return union_all(by_customer, *by_address)


@dataclass
class _MarketingFacts:
    consents: dict[tuple[int, str], tuple[str, str | None]] | None = None
    complaining: set[int] | None = None
    sent_recently: dict[int, int] | None = None
    suppressed: set[tuple[str, str]] | None = None


async def _marketing_facts(
    session: AsyncSession, dialect: str, customers: list[int], policy: Policy
) -> _MarketingFacts:
    consents = await session.execute(
        # Only the one key of the evidence the gate needs: decoding 100,000
        # evidence documents cost a third of the gate's time.
        select(
            Consent.customer_id,
            Consent.channel,
            Consent.state,
            Consent.evidence["confirmed_at"].as_string(),
        ).where(
            in_bound_array(Consent.customer_id, customers, dialect, "customers"),
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
                    in_bound_array(Complaint.customer_id, customers, dialect, "customers"),
                    Complaint.status != "resolved",
                )
            )
        )
    since = utcnow() - timedelta(days=policy.marketing_cap_days)
    sent = await session.execute(
        select(OutboxMessage.customer_id, func.count())
        .where(
            in_bound_array(OutboxMessage.customer_id, customers, dialect, "customers"),
            OutboxMessage.purpose == "marketing",
            OutboxMessage.status == "sent",
            OutboxMessage.sent_at >= since,
        )
        .group_by(OutboxMessage.customer_id)
    )
    return _MarketingFacts(
        consents={
            (customer_id, channel): (state, confirmed_at)
            for customer_id, channel, state, confirmed_at in consents
        },
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
        if (ADDRESS_KIND.get(recipient.channel), recipient.address) in (facts.suppressed or ()):
            reasons.append("suppressed")
    return Decision(tuple(dict.fromkeys(reasons))) if reasons else ALLOWED


def _marketing_reasons(recipient: Recipient, facts: _MarketingFacts, policy: Policy) -> list[str]:
    channel = CONSENT_CHANNEL.get(recipient.channel)
    if channel is None:
        return ["channel:no_marketing"]
    if recipient.customer_id is None:
        return ["consent:missing"]
    reasons = []
    state, confirmed_at = (facts.consents or {}).get((recipient.customer_id, channel), (None, None))
    reasons += _consent_reasons(channel, state, confirmed_at)
    if recipient.customer_id in (facts.complaining or set()):
        reasons.append("open_complaint")
    if (facts.sent_recently or {}).get(recipient.customer_id, 0) >= policy.marketing_cap:
        reasons.append("frequency_cap")
    return reasons


def _consent_reasons(channel: str, state: str | None, confirmed_at: str | None) -> list[str]:
    if state is None:
        return ["consent:missing"]
    if state == "revoked":
        return ["consent:revoked"]
    # Marketing e-mail needs the double opt-in's confirmation, not only a tick box.
    if state != "granted" or (channel == "email" and not confirmed_at):
        return ["consent:unconfirmed"]
    return []
