"""One way out: every message the hub sends is first a row here.

A row is written in the same transaction as the change that caused it (a
reply, a consent request, a campaign step), under an idempotency key:
queueing the same key again is a no-op that returns the first row. A row moves

    queued ──claim──> sending ──> sent          (provider id recorded)
      ^                  │  └───> failed        (permanent error, reason kept)
      │                  │  └───> blocked       (the gate said no, reasons kept)
      │                  │  └───> unknown       (may have gone out: reconcile, never resend)
      │         sent ──provider report──> delivered | failed (undelivered)
      └── retry, backoff ┘
    sending, lease expired ──> reclaimed by any dispatcher (the claimer died)

and every final state becomes an entry in the customer's history.

A campaign's rows (`campaign_id` set) are sent by its campaign sender, never by
the dispatcher, and know two more states: `handed` (the message is being
handed to the server: after a crash it becomes `unknown`, never resent) and
`cancelled`; see `hub.campaigns.sending`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from hub.context import Work
from hub.db import insert_for
from hub.errors import InvalidInputError
from hub.gate import PURPOSES, Decision, Policy, Recipient, check_each
from hub.models import Interaction, OutboxMessage, utcnow

# `handed` and `cancelled` are a campaign's rows only (see `hub.campaigns.sending`).
STATUSES = (
    "queued",
    "sending",
    "handed",
    "sent",
    "delivered",
    "blocked",
    "failed",
    "unknown",
    "cancelled",
)
# A provider's reports about a sent message (Twilio's message statuses) arrive out
# of order and more than once: only a report of a later stage is applied.
PROVIDER_STAGES = {
    "accepted": 0,
    "queued": 0,
    "sending": 1,
    "sent": 2,
    "delivered": 3,
    "undelivered": 3,
    "failed": 3,
    "read": 4,
}
MAX_KEY = 200


@dataclass(frozen=True, slots=True)
class Message:
    """What to queue: the rendered message, whom it is for, and why it is sent."""

    idempotency_key: str
    channel: str
    recipient: str
    purpose: str
    text: str
    subject: str | None = None
    html: str | None = None
    customer_id: int | None = None
    conversation_id: int | None = None
    interaction_id: int | None = None
    headers: dict[str, str] | None = None


async def enqueue(work: Work, message: Message, policy: Policy) -> OutboxMessage:
    """Queue a message once per idempotency key; returns the row (new or the first one).

    The gate is asked now, so that the caller learns at once when a message is
    blocked (the row is then stored as `blocked`, with the reasons, and never
    dispatched); the dispatcher asks again at send time.
    """
    return (await enqueue_many(work, [message], policy))[0]


async def enqueue_many(work: Work, messages: list[Message], policy: Policy) -> list[OutboxMessage]:
    """`enqueue` for several messages at once, in order: the gate asked once per purpose,
    the new rows written in one INSERT. A key given twice is queued once."""
    for message in messages:
        _check(message)
    asked = [(Recipient(m.customer_id, m.channel, m.recipient), m.purpose) for m in messages]
    decisions = await check_each(work.session, asked, policy)
    insert_new = insert_for(work.session)
    now = utcnow()
    values = [_row(m, decision, now) for m, decision in zip(messages, decisions, strict=True)]
    # The rows as parameters, not as VALUES in the statement: one statement for any
    # number of rows, compiled once (a VALUES list is compiled again on every call).
    statement = (
        insert_new(OutboxMessage)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(OutboxMessage)
    )
    new = {row.idempotency_key: row for row in await work.session.scalars(statement, values)}
    rows = {**await _by_keys(work, {m.idempotency_key for m in messages} - set(new)), **new}
    for row in new.values():
        work.emit(
            f"outbox.{row.status}",
            outbox_id=row.id,
            channel=row.channel,
            customer_id=row.customer_id,
            reasons=row.blocked_reasons,
        )
    blocked = [row for row in new.values() if row.status == "blocked"]
    await add_outcomes_to_history(
        work, [(row, "blocked: " + ", ".join(row.blocked_reasons)) for row in blocked]
    )
    return [rows[message.idempotency_key] for message in messages]


def _row(message: Message, decision: Decision, now: datetime) -> dict[str, Any]:
    return {
        "idempotency_key": message.idempotency_key,
        "channel": message.channel,
        "recipient": message.recipient,
        "purpose": message.purpose,
        "customer_id": message.customer_id,
        "conversation_id": message.conversation_id,
        "interaction_id": message.interaction_id,
        "payload": _payload(message),
        "status": "queued" if decision.allowed else "blocked",
        "attempts": 0,
        "blocked_reasons": list(decision.reasons),
        "next_attempt_at": now,
    }


async def _by_keys(work: Work, keys: set[str]) -> dict[str, OutboxMessage]:
    """The rows already queued under these keys (repeats: the first row stands)."""
    if not keys:
        return {}
    statement = select(OutboxMessage).where(OutboxMessage.idempotency_key.in_(sorted(keys)))
    return {row.idempotency_key: row for row in await work.session.scalars(statement)}


async def add_outcome_to_history(work: Work, row: OutboxMessage, summary: str) -> None:
    """Every final state of a message is an entry in its customer's history."""
    await add_outcomes_to_history(work, [(row, summary)])


async def add_outcomes_to_history(work: Work, outcomes: list[tuple[OutboxMessage, str]]) -> None:
    """`add_outcome_to_history` for several messages, in one INSERT.

    Written as a statement, not by the unit of work: the dispatcher records
    outcomes all the time, and the ORM's flush of them cost ~0.4 ms more each."""
    entries = [_history_entry(row, summary) for row, summary in outcomes if row.customer_id]
    if entries:
        await work.session.execute(insert(Interaction.__table__), entries)


def _history_entry(row: OutboxMessage, summary: str) -> dict[str, Any]:
    return {
        "customer_id": row.customer_id,
        "conversation_id": row.conversation_id,
        "channel": row.channel,
        "direction": "outbound",
        "kind": "delivery",
        "subject": row.payload.get("subject"),
        "text": f"{row.purpose} message to {row.recipient} {summary}",
        "meta": {
            "outbox_id": row.id,
            "status": row.status,
            "reasons": row.blocked_reasons,
            "provider_id": row.provider_id,
            "error": row.last_error,
        },
    }


def _check(message: Message) -> None:
    if not message.idempotency_key or len(message.idempotency_key) > MAX_KEY:
        raise InvalidInputError(
            "an idempotency key is 1 to 200 characters", field="idempotency_key"
        )
    if message.purpose not in PURPOSES:
        raise InvalidInputError(f"purpose must be one of {', '.join(PURPOSES)}", field="purpose")
    if not message.recipient:
        raise InvalidInputError("a message needs a recipient", field="recipient")


def _payload(message: Message) -> dict[str, Any]:
    payload: dict[str, Any] = {"text": message.text}
    if message.subject is not None:
        payload["subject"] = message.subject
    if message.html is not None:
        payload["html"] = message.html
    if message.headers:
        payload["headers"] = message.headers
    return payload


async def do_record_provider_status(
    work: Work, provider_id: str, provider_status: str, error: str | None = None
) -> OutboxMessage | None:
    """Apply a provider's report on a sent message, once and only forwards; None if unknown."""
    # Locked: two callbacks for one message at the same moment apply one after the other.
    row = (
        await work.session.scalars(
            select(OutboxMessage).where(OutboxMessage.provider_id == provider_id).with_for_update()
        )
    ).first()
    stage = PROVIDER_STAGES.get(provider_status)
    if row is None or stage is None:
        return None
    if stage <= PROVIDER_STAGES.get(row.provider_status or "", -1):
        return row
    row.provider_status = provider_status
    if provider_status == "delivered":
        row.status = "delivered"
        await add_outcome_to_history(work, row, "delivered")
    elif provider_status in ("undelivered", "failed"):
        row.status, row.last_error = "failed", error or provider_status
        await add_outcome_to_history(work, row, f"{provider_status}: {error or 'no reason given'}")
    work.emit(
        "outbox.status_reported",
        outbox_id=row.id,
        status=provider_status,
        customer_id=row.customer_id,
    )
    return row
