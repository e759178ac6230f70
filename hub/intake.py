"""One way in: every contact, from every channel, is stored by `ingest()`.

The steps, in order: the same (channel, external id) seen before returns the
first result and stores nothing; otherwise resolve the customer from the
sender's identity (an unknown one becomes a prospect), thread into an open
conversation of that same customer or open a new one, store the interaction
and its attachments, open a complaint when the inbound is one, ask the router
who takes the conversation, and emit events (published after commit).

A thread never crosses customers: a thread key only matches conversations of
the customer the sender resolved to, whatever the headers claim.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from typing import TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import Select, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.assignment import Router
from hub.context import Hub, Work
from hub.errors import InvalidInputError
from hub.identity import normalise_identity, resolve_customer
from hub.models import (
    Attachment,
    Complaint,
    ComplaintConversation,
    Conversation,
    Customer,
    Interaction,
)
from hub.values import Inbound

T = TypeVar("T")
# Below the engine's pool (hub.db: 10), which the console and background work share.
INGEST_SLOTS = 8
_SLOTS: WeakKeyDictionary[AsyncEngine, asyncio.Semaphore] = WeakKeyDictionary()
MAX_EXTERNAL_ID = 500
MAX_SUBJECT = 500


@dataclass(frozen=True, slots=True)
class IngestResult:
    customer_id: int
    conversation_id: int | None
    interaction_id: int
    complaint_id: int | None
    duplicate: bool = False


async def accept_inbound(hub: Hub, inbound: Inbound) -> IngestResult:
    """The entry every channel calls: ingest in a transaction of its own, then count it.

    When this returns, the contact is committed, so the caller may acknowledge it
    to its source (principle 3).
    """
    result, _ = await accept_inbound_then(hub, inbound, _nothing_more)
    return result


async def _nothing_more(_work: Work, _result: IngestResult) -> None:
    return None


async def accept_inbound_then(
    hub: Hub, inbound: Inbound, then: Callable[[Work, IngestResult], Awaitable[T]]
) -> tuple[IngestResult, T]:
    """`accept_inbound`, with `then` done in the same transaction (a confirmation queued
    in the outbox commits with the contact that caused it, principle 2).

    The first try stores without looking for an earlier copy first: a repeat is
    rare, and the unique (channel, external id) refuses it anyway. When the
    database refuses something (that repeat, or a new sender's identity another
    request stored meanwhile), the transaction is rolled back whole, events
    included, and `ingest` runs again in a new one, where it finds the earlier
    copy or the identity and returns or uses it.
    """
    started = perf_counter()
    region = hub.settings.default_region
    check_inbound(inbound)
    async with _slot(hub):
        result, done = await _store_then(hub, inbound, region, then)
    count_ingest(hub, inbound.channel, result, started)
    return result, done


async def _store_then(
    hub: Hub, inbound: Inbound, region: str, then: Callable[[Work, IngestResult], Awaitable[T]]
) -> tuple[IngestResult, T]:
    try:
        async with hub.work() as work:
            stored = await store_new(work, inbound, region)
            result = stored.result
            done = await then(work, result)
            await stored.finish(work, hub.router)  # last: it holds the routing lock to commit
    except IntegrityError:
        async with hub.work() as work:
            result = await ingest(work, inbound, hub.router, region)
            done = await then(work, result)
    return result, done


def _slot(hub: Hub) -> asyncio.Semaphore:
    """One of this engine's `INGEST_SLOTS`: at most that many intake transactions at once.

    Past the pool's size every further transaction would open an overflow
    connection, which is closed again on return: connected (TLS tried, types
    introspected) and every statement prepared anew, for one contact. Under a
    burst that made each contact dearer the longer the backlog grew; and all of
    them queue on the routing lock anyway. A request over the limit waits here,
    holding nothing.
    """
    slots = _SLOTS.get(hub.engine)
    if slots is None:
        slots = _SLOTS[hub.engine] = asyncio.Semaphore(INGEST_SLOTS)
    return slots


def count_ingest(hub: Hub, channel: str, result: IngestResult, started: float) -> None:
    """Count a committed ingest (stored or duplicate) and how long it took since `started`."""
    counter = hub.metrics.ingest_duplicates if result.duplicate else hub.metrics.ingested
    counter.labels(channel).inc()
    hub.metrics.ingest_seconds.labels(channel).observe(perf_counter() - started)


async def ingest(work: Work, inbound: Inbound, router: Router, region: str) -> IngestResult:
    """Store one inbound contact exactly once; see the module docstring for the steps.

    For callers inside a larger unit of work: a repeat is looked for first, and
    the storing runs in a savepoint, so a repeat stored meanwhile by another
    process costs only the savepoint."""
    check_inbound(inbound)
    earlier = await find_ingested(work, inbound.channel, inbound.external_id)
    if earlier is not None:
        return earlier
    emitted = len(work.events)
    try:
        async with work.session.begin_nested():
            return await ingest_new(work, inbound, router, region)
    except IntegrityError:
        # Another process stored the same external id between our check and insert.
        del work.events[emitted:]
        earlier = await find_ingested(work, inbound.channel, inbound.external_id)
        if earlier is None:
            raise
        return earlier


async def ingest_new(work: Work, inbound: Inbound, router: Router, region: str) -> IngestResult:
    """Store a contact not stored before; a repeat fails on the unique (channel, external id)
    with IntegrityError, and the caller's transaction is then unusable."""
    stored = await store_new(work, inbound, region)
    await stored.finish(work, router)
    return stored.result


async def store_new(work: Work, inbound: Inbound, region: str) -> Stored:
    """`ingest_new` up to its routing and events (`Stored.finish`)."""
    sender = normalise_identity(inbound.sender_kind, inbound.sender, region)
    return await _store(work, inbound, sender)


def check_inbound(inbound: Inbound) -> None:
    if not inbound.external_id or len(inbound.external_id) > MAX_EXTERNAL_ID:
        raise InvalidInputError("external_id must be 1 to 500 characters", field="external_id")
    if inbound.subject is not None and len(inbound.subject) > MAX_SUBJECT:
        raise InvalidInputError("subject is longer than 500 characters", field="subject")
    if inbound.received_at.tzinfo is None:
        raise InvalidInputError("received time must carry a time zone", field="received_at")


async def find_ingested(work: Work, channel: str, external_id: str) -> IngestResult | None:
    statement = select(Interaction).where(
        Interaction.channel == channel, Interaction.external_id == external_id
    )
    interaction = (await work.session.scalars(statement)).first()
    if interaction is None:
        return None
    return IngestResult(
        customer_id=interaction.customer_id,
        conversation_id=interaction.conversation_id,
        interaction_id=interaction.id,
        complaint_id=interaction.meta.get("complaint_id"),
        duplicate=True,
    )


@dataclass(frozen=True, slots=True)
class Stored:
    """A contact written (flushed), its routing and events still to come."""

    inbound: Inbound
    customer: Customer
    conversation: Conversation | None
    interaction: Interaction
    complaint: Complaint | None
    is_new_customer: bool
    is_new_conversation: bool

    @property
    def result(self) -> IngestResult:
        conversation, complaint = self.conversation, self.complaint
        return IngestResult(
            self.customer.id,
            conversation.id if conversation else None,
            self.interaction.id,
            complaint.id if complaint else None,
        )

    async def finish(self, work: Work, router: Router) -> None:
        """Route (a new conversation, or a new complaint on one) and emit the events.

        Routing takes the routing lock (on PostgreSQL), held until the commit, so
        whatever else the transaction does belongs before this."""
        conversation = self.conversation
        if conversation is not None and (self.is_new_conversation or self.complaint is not None):
            # A customer created just now has no complaint but the one just opened, if any.
            known = self.complaint is not None if self.is_new_customer else None
            await route(work, router, conversation, self.customer, open_complaint=known)
        _emit(work, self)


async def _store(work: Work, inbound: Inbound, sender: str) -> Stored:
    customer, is_new_customer = await resolve_customer(
        work.session, inbound.sender_kind, sender, inbound.sender_name
    )
    conversation, is_new_conversation = await _thread(work, customer, inbound, is_new_customer)
    complaint = await _open_complaint(work, customer, conversation, inbound)
    interaction = _interaction(customer, conversation, inbound, sender, complaint)
    work.session.add(interaction)
    await work.session.flush()
    _store_attachments(work, interaction, inbound)
    return Stored(
        inbound,
        customer,
        conversation,
        interaction,
        complaint,
        is_new_customer,
        is_new_conversation,
    )


async def _thread(
    work: Work, customer: Customer, inbound: Inbound, is_new_customer: bool
) -> tuple[Conversation | None, bool]:
    """The conversation the inbound joins, or a new one; automatic mail never starts one.
    A customer created just now has no conversation to look for."""
    conversation = None
    if not is_new_customer:
        conversation = await find_open_conversation(work, customer.id, inbound)
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
    await work.session.flush()
    return conversation, True


def _open_of(customer_id: int) -> Select[tuple[Conversation]]:
    return select(Conversation).where(
        Conversation.customer_id == customer_id, Conversation.status != "closed"
    )


async def _by_hint(work: Work, customer_id: int, inbound: Inbound) -> Conversation | None:
    if not inbound.conversation_hints:
        return None
    return await _newest(
        work, _open_of(customer_id).where(Conversation.id.in_(inbound.conversation_hints))
    )


async def _by_reference(work: Work, customer_id: int, inbound: Inbound) -> Conversation | None:
    if not inbound.references:
        return None
    return await _newest(
        work,
        _open_of(customer_id)
        .join(Interaction, Interaction.conversation_id == Conversation.id)
        .where(
            Interaction.channel == inbound.channel, Interaction.external_id.in_(inbound.references)
        ),
    )


async def _by_thread_key(work: Work, customer_id: int, inbound: Inbound) -> Conversation | None:
    if inbound.thread_key is None:
        return None
    return await _newest(
        work, _open_of(customer_id).where(Conversation.thread_key == inbound.thread_key)
    )


async def _by_channel(work: Work, customer_id: int, inbound: Inbound) -> Conversation | None:
    if inbound.thread_key is not None or inbound.automatic:
        return None
    return await _newest(work, _open_of(customer_id).where(Conversation.channel == inbound.channel))


async def _newest(work: Work, statement: Select[tuple[Conversation]]) -> Conversation | None:
    return (await work.session.scalars(statement.order_by(Conversation.id.desc()).limit(1))).first()


# Threading, in order; the first rule that finds an open conversation of the
# sender's own customer wins (a thread never crosses customers).
THREADING_RULES = (_by_hint, _by_reference, _by_thread_key, _by_channel)


async def find_open_conversation(
    work: Work, customer_id: int, inbound: Inbound
) -> Conversation | None:
    """The customer's open conversation this inbound belongs to, if any."""
    for rule in THREADING_RULES:
        conversation = await rule(work, customer_id, inbound)
        if conversation is not None:
            return conversation
    return None


async def _open_complaint(
    work: Work, customer: Customer, conversation: Conversation | None, inbound: Inbound
) -> Complaint | None:
    if not inbound.is_complaint or conversation is None:
        return None
    subject = inbound.subject or (inbound.text or "").strip().split("\n")[0][:120] or "Complaint"
    complaint = Complaint(
        customer_id=customer.id,
        subject=subject,
        description=inbound.text,
        opened_at=inbound.received_at,
    )
    work.session.add(complaint)
    await work.session.flush()
    work.session.add(
        ComplaintConversation(complaint_id=complaint.id, conversation_id=conversation.id)
    )
    return complaint


def _interaction(
    customer: Customer,
    conversation: Conversation | None,
    inbound: Inbound,
    sender: str,
    complaint: Complaint | None,
) -> Interaction:
    meta = dict(inbound.metadata)
    if inbound.automatic:
        meta["automatic"] = inbound.automatic
    if complaint is not None:
        meta["complaint_id"] = complaint.id
    return Interaction(
        customer_id=customer.id,
        conversation_id=conversation.id if conversation else None,
        channel=inbound.channel,
        direction=inbound.direction,
        kind=inbound.kind,
        subject=inbound.subject,
        text=inbound.text,
        html=inbound.html,
        external_id=inbound.external_id,
        sender=sender,
        meta=meta,
        occurred_at=inbound.received_at,
    )


def _store_attachments(work: Work, interaction: Interaction, inbound: Inbound) -> None:
    for attachment in inbound.attachments:
        work.session.add(
            Attachment(
                interaction_id=interaction.id,
                filename=attachment.filename[:255],
                content_type=attachment.content_type[:255],
                size=attachment.byte_size,
                content=attachment.content,
            )
        )


async def has_open_complaint(work: Work, customer_id: int) -> bool:
    statement = select(
        exists().where(Complaint.customer_id == customer_id, Complaint.status != "resolved")
    )
    return bool(await work.session.scalar(statement))


async def route(
    work: Work,
    router: Router,
    conversation: Conversation,
    customer: Customer,
    open_complaint: bool | None = None,
) -> None:
    """Ask the router who takes the conversation, and record why; `open_complaint` when
    the caller knows it, else it is looked up."""
    if open_complaint is None:
        open_complaint = await has_open_complaint(work, customer.id)
    decision = await router.assign(work.session, conversation, customer, open_complaint)
    conversation.queue = decision.queue
    conversation.assignee_id = decision.assignee_id
    conversation.priority = decision.priority
    conversation.routing_reason = decision.reason
    conversation.sla_due_at = decision.sla_due_at
    work.emit(
        "conversation.assigned",
        conversation_id=conversation.id,
        customer_id=customer.id,
        queue=decision.queue,
        assignee_id=decision.assignee_id,
        reason=decision.reason,
    )


def _emit(work: Work, stored: Stored) -> None:
    customer, conversation, inbound = stored.customer, stored.conversation, stored.inbound
    if stored.is_new_customer:
        work.emit("customer.created", customer_id=customer.id)
    if stored.is_new_conversation and conversation is not None:
        work.emit(
            "conversation.created",
            conversation_id=conversation.id,
            customer_id=customer.id,
            channel=inbound.channel,
        )
    if stored.complaint is not None:
        work.emit("complaint.opened", complaint_id=stored.complaint.id, customer_id=customer.id)
    work.emit(
        "message.received",
        interaction_id=stored.interaction.id,
        conversation_id=conversation.id if conversation else None,
        customer_id=customer.id,
        channel=inbound.channel,
        direction=inbound.direction,
    )
