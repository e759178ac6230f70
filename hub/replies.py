"""An agent's reply: one history entry and one outbox row, in one transaction.

The reply goes out on the conversation's channel unless the agent picks
another of the customer's channels. Its recipient is the address the customer
last wrote from on that channel in this conversation, else the customer's
first address of that kind. The gate is asked at once, so the agent learns
that a reply is blocked, and why, before anything could go out; `check_reply`
asks it while the agent is still typing.

A draft remembers the newest message of the conversation the agent had seen
when they began it (`seen_interaction_id`). A reply sent with it is refused
(`StaleDraftError`, naming what came) when a message arrived or another answer
went out since, so nobody answers a question that has changed or was answered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub import gate
from hub.context import Hub, Work
from hub.errors import ConflictError, InvalidInputError
from hub.models import (
    Agent,
    Conversation,
    Customer,
    Identity,
    Interaction,
    OutboxMessage,
    utcnow,
)
from hub.outbox import Message, enqueue
from templates import render_html

SUBJECT_TAG = re.compile(r"\s*\[#\d+\]")
MAX_REFERENCES = 20
# Which identity a channel reaches the customer at.
IDENTITY_OF_CHANNEL = {
    "email": "email",
    "sms": "phone",
    "voice": "phone",
    "chat": "chat",
    "webform": "email",
}


@dataclass(frozen=True, slots=True)
class ReplyResult:
    interaction_id: int
    outbox_id: int
    status: str
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReplyCheck:
    """What sending now would do: the channel, the recipient, and the gate's reasons."""

    channel: str
    recipient: str
    reasons: tuple[str, ...]


class StaleDraftError(ConflictError):
    """Messages came into the conversation, or went out, after the draft began."""

    def __init__(self, conversation_id: int, changes: list[dict[str, Any]]) -> None:
        super().__init__(
            f"conversation {conversation_id} changed while the reply was drafted",
            field="seen_interaction_id",
        )
        self.changes = changes


async def check_reply(
    hub: Hub, session: AsyncSession, conversation: Conversation, channel: str | None = None
) -> ReplyCheck:
    """The gate's answer for a reply on `channel` (default: the conversation's), unsent."""
    chosen = _send_channel(channel or conversation.channel)
    recipient = await _recipient(Work(session), conversation, chosen)
    decision = await gate.check(
        session,
        gate.Recipient(conversation.customer_id, chosen, recipient),
        "service",
        hub.policy,
    )
    return ReplyCheck(chosen, recipient, decision.reasons)


async def check_draft_is_current(
    session: AsyncSession, conversation: Conversation, seen_interaction_id: int
) -> None:
    """Raise `StaleDraftError` when a message came or went after the one the agent saw."""
    newer = list(
        await session.scalars(
            select(Interaction)
            .where(
                Interaction.conversation_id == conversation.id,
                Interaction.id > seen_interaction_id,
                Interaction.kind == "message",
                Interaction.direction.in_(("inbound", "outbound")),
            )
            .order_by(Interaction.id)
            .limit(20)
        )
    )
    if newer:
        raise StaleDraftError(conversation.id, [_change(entry) for entry in newer])


def _change(entry: Interaction) -> dict[str, Any]:
    return {
        "id": entry.id,
        "direction": entry.direction,
        "channel": entry.channel,
        "text": entry.text,
        "sender": entry.sender,
        "occurred_at": entry.occurred_at,
    }


async def do_reply(
    hub: Hub,
    work: Work,
    agent: Agent,
    conversation: Conversation,
    text: str,
    channel: str | None = None,
    client_id: str | None = None,
    seen_interaction_id: int | None = None,
) -> ReplyResult:
    if conversation.status == "closed":
        raise ConflictError(f"conversation {conversation.id} is closed; reopen it to reply")
    if not text.strip():
        raise InvalidInputError("a reply needs text", field="text")
    if seen_interaction_id is not None and not await _is_repeat(work, conversation, client_id):
        await check_draft_is_current(work.session, conversation, seen_interaction_id)
    channel = _send_channel(channel or conversation.channel)
    recipient = await _recipient(work, conversation, channel)
    subject = _reply_subject(conversation) if channel == "email" else None
    headers = await _threading_headers(work, conversation) if channel == "email" else None
    reply = Interaction(
        customer_id=conversation.customer_id,
        conversation_id=conversation.id,
        channel=channel,
        direction="outbound",
        kind="message",
        subject=subject,
        text=text,
        author_agent_id=agent.id,
        sender=agent.email,
        meta={"recipient": recipient},
    )
    work.session.add(reply)
    await work.session.flush()
    key = f"reply:{conversation.id}:{client_id}" if client_id else f"reply:{reply.id}"
    row = await enqueue(
        work,
        Message(
            idempotency_key=key,
            channel=channel,
            recipient=recipient,
            purpose="service",
            text=text,
            subject=subject,
            customer_id=conversation.customer_id,
            conversation_id=conversation.id,
            interaction_id=reply.id,
            headers=headers,
            html=await _reply_html(work, text, conversation) if channel == "email" else None,
        ),
        hub.policy,
    )
    conversation.first_response_at = conversation.first_response_at or utcnow()
    work.emit(
        "message.sent",
        conversation_id=conversation.id,
        interaction_id=reply.id,
        customer_id=conversation.customer_id,
        channel=channel,
        status=row.status,
    )
    return ReplyResult(
        row.interaction_id or reply.id, row.id, row.status, tuple(row.blocked_reasons)
    )


async def _is_repeat(work: Work, conversation: Conversation, client_id: str | None) -> bool:
    """A second click on the same send: its first reply is news only to the staleness check."""
    if client_id is None:
        return False
    key = f"reply:{conversation.id}:{client_id}"
    found = await work.session.scalar(
        select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key)
    )
    return found is not None


def reply_channel(channel: str) -> str:
    """The channel a reply to a contact on `channel` goes out on."""
    return _send_channel(channel)


def _send_channel(channel: str) -> str:
    # A web form is answered by e-mail; a call is answered by SMS (voice is not a text channel).
    chosen = {"webform": "email", "voice": "sms", "phone": "sms"}.get(channel, channel)
    if chosen not in ("email", "sms", "chat"):
        raise InvalidInputError(f"cannot reply on channel {channel}", field="channel")
    return chosen


async def _recipient(work: Work, conversation: Conversation, channel: str) -> str:
    kind = IDENTITY_OF_CHANNEL[channel]
    last_sender = await work.session.scalar(
        select(Interaction.sender)
        .join(Identity, (Identity.value == Interaction.sender) & (Identity.kind == kind))
        .where(
            Interaction.conversation_id == conversation.id,
            Interaction.direction == "inbound",
            Identity.customer_id == conversation.customer_id,
        )
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
        .limit(1)
    )
    if last_sender is not None:
        return last_sender
    first = await work.session.scalar(
        select(Identity.value)
        .where(Identity.customer_id == conversation.customer_id, Identity.kind == kind)
        .order_by(Identity.id)
        .limit(1)
    )
    if first is None:
        raise InvalidInputError(
            f"the customer has no {kind} to reply to on {channel}", field="channel"
        )
    return first


def _reply_subject(conversation: Conversation) -> str:
    """`Re: <subject> [#<conversation>]`: the tag threads an answer whose headers were lost."""
    subject = SUBJECT_TAG.sub("", conversation.subject or "").strip()
    if not subject.lower().startswith(("re:", "aw:")):
        subject = f"Re: {subject}".strip()
    return f"{subject} [#{conversation.id}]"


async def _threading_headers(work: Work, conversation: Conversation) -> dict[str, str] | None:
    """In-Reply-To the customer's last mail, References its thread (RFC 5322 3.6.4)."""
    message_ids = list(
        await work.session.scalars(
            select(Interaction.external_id)
            .where(
                Interaction.conversation_id == conversation.id,
                Interaction.channel == "email",
                Interaction.direction == "inbound",
                Interaction.external_id.like("<%>"),
            )
            .order_by(Interaction.occurred_at, Interaction.id)
        )
    )
    if not message_ids:
        return None
    return {"In-Reply-To": message_ids[-1], "References": " ".join(message_ids[-MAX_REFERENCES:])}


async def _reply_html(work: Work, text: str, conversation: Conversation) -> str:
    """The HTML alternative of an e-mail reply: the agent's text, escaped, in paragraphs."""
    customer = await work.session.get(Customer, conversation.customer_id)
    paragraphs = [part.strip() for part in text.replace("\r\n", "\n").split("\n\n")]
    return render_html(
        "reply",
        {
            "paragraphs": [p.split("\n") for p in paragraphs if p],
            "language": (customer.language if customer else None) or "en",
        },
    )
