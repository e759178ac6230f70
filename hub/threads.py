"""Threading: which of the sender's open conversations a contact joins, or a new one.

Only the conversations of the customer the sender resolved to are ever
looked at, so a thread never crosses customers, whatever the headers claim.
The rules, in order, are `find_open_conversation`'s; automatic mail
(auto-replies, bounces) never starts a conversation.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from hub.context import Work
from hub.models import Conversation, Customer, Interaction
from hub.values import Inbound


async def thread_into(
    work: Work, conversations: list[Conversation], customer: Customer, inbound: Inbound
) -> tuple[Conversation | None, bool]:
    """The conversation the inbound joins, or a new one (added to `conversations`, the
    customer's open ones, oldest first); automatic mail never starts one."""
    conversation = await find_open_conversation(work, conversations, inbound)
    if conversation is not None:
        conversation.last_message_at = max(
            conversation.last_message_at or inbound.received_at, inbound.received_at
        )
        return conversation, False
    if inbound.automatic:
        return None, False
    conversation = Conversation(
        customer_id=customer.id,
        channel=inbound.channel,
        subject=inbound.subject,
        thread_key=inbound.thread_key,
        created_at=inbound.received_at,
        last_message_at=inbound.received_at,
    )
    work.session.add(conversation)
    conversations.append(conversation)
    return conversation, True


async def open_conversations_of(
    work: Work, customer_ids: set[int]
) -> dict[int, list[Conversation]]:
    """Each customer's open conversations, oldest first (customers without any left out)."""
    if not customer_ids:
        return {}
    statement = (
        select(Conversation)
        .where(Conversation.customer_id.in_(sorted(customer_ids)), Conversation.status != "closed")
        .order_by(Conversation.id)
    )
    open_of: dict[int, list[Conversation]] = {}
    for conversation in await work.session.scalars(statement):
        open_of.setdefault(conversation.customer_id, []).append(conversation)
    return open_of


def _newest(
    conversations: list[Conversation], belongs: Callable[[Conversation], bool]
) -> Conversation | None:
    return next((c for c in reversed(conversations) if belongs(c)), None)


async def _referenced(work: Work, conversations: list[Conversation], inbound: Inbound) -> set[int]:
    """Which of these conversations hold an interaction the inbound refers to."""
    ids = [c.id for c in conversations if c.id is not None]
    if not ids:
        return set()
    statement = select(Interaction.conversation_id).where(
        Interaction.conversation_id.in_(ids),
        Interaction.channel == inbound.channel,
        Interaction.external_id.in_(inbound.references),
    )
    return {found for found in await work.session.scalars(statement) if found is not None}


async def find_open_conversation(
    work: Work, conversations: list[Conversation], inbound: Inbound
) -> Conversation | None:
    """Which of the sender's own open conversations (oldest first) the inbound belongs to.

    The rules, in order, the first that finds one wins (a thread never crosses
    customers, since only the sender's customer's conversations are asked): the
    conversations the channel hints at, those holding a message it refers to, the
    same thread key, and, for a contact without thread key that is not automatic,
    the newest one on the same channel.
    """
    if inbound.conversation_hints:
        hinted = set(inbound.conversation_hints)
        if found := _newest(conversations, lambda c: c.id in hinted):
            return found
    if inbound.references:
        referenced = await _referenced(work, conversations, inbound)
        if found := _newest(conversations, lambda c: c.id in referenced):
            return found
    if inbound.thread_key is not None:
        return _newest(conversations, lambda c: c.thread_key == inbound.thread_key)
    if inbound.automatic:
        return None
    return _newest(conversations, lambda c: c.channel == inbound.channel)
