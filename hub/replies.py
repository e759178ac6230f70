"""An agent's reply: one history entry and one outbox row, in one transaction.

The reply goes out on the conversation's channel unless the agent picks
another of the customer's channels. Its recipient is the address the customer
last wrote from on that channel in this conversation, else the customer's
first address of that kind. The gate is asked at once, so the agent learns
that a reply is blocked, and why, before anything could go out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select

from hub.context import Hub, Work
from hub.errors import ConflictError, InvalidInputError
from hub.models import Agent, Conversation, Customer, Identity, Interaction, utcnow
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


async def do_reply(
    hub: Hub,
    work: Work,
    agent: Agent,
    conversation: Conversation,
    text: str,
    channel: str | None = None,
    client_id: str | None = None,
) -> ReplyResult:
    if conversation.status == "closed":
        raise ConflictError(f"conversation {conversation.id} is closed; reopen it to reply")
    if not text.strip():
        raise InvalidInputError("a reply needs text", field="text")
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
