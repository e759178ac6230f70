"""One way in: every contact, from every channel, is stored by `ingest()`.

The steps, in order: the same (channel, external id) seen before returns the
first result and stores nothing; otherwise resolve the customer from the
sender's identity (an unknown one becomes a prospect), thread into an open
conversation of that same customer or open a new one, store the interaction
and its attachments, open a complaint when the inbound is one, ask the router
who takes the conversation, and emit events (published after commit).

A thread never crosses customers: only the conversations of the customer the
sender resolved to are looked at, whatever the headers claim (`hub.threads`).

The channels' entry, `accept_inbound`, stores contacts that arrive while
another is being stored together, in one transaction (`hub.group_commit`),
with a few statements for the whole batch (`store_many`); each caller still
returns only once its own contact is committed. Under load that is what
keeps a process from spending its time on transactions: the fixed cost of
one (a connection, BEGIN, COMMIT, the routing lock) and of each statement is
shared by the batch.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hub.assignment import Router
from hub.context import Hub, Work
from hub.errors import InvalidInputError
from hub.identity import normalise_identity, resolve_customers
from hub.models import (
    Attachment,
    Complaint,
    ComplaintConversation,
    Conversation,
    Customer,
    Interaction,
)
from hub.threads import open_conversations_of, thread_into
from hub.values import Inbound

T = TypeVar("T")
log = logging.getLogger(__name__)
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
    """The entry every channel calls: ingest, then count it.

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

    Contacts that arrive while another is being stored are stored together,
    in one transaction (`hub.group_commit`); each caller returns once its own
    contact is committed, as alone.
    """
    started = perf_counter()
    check_inbound(inbound)
    result, done = await hub.intake.submit(
        _Pending(inbound, then), functools.partial(_store_batch, hub)
    )
    count_ingest(hub, inbound.channel, result, started)
    return result, done


@dataclass(frozen=True, slots=True)
class _Pending:
    inbound: Inbound
    then: Callable[[Work, IngestResult], Awaitable[Any]]


async def _store_batch(
    hub: Hub, batch: list[_Pending]
) -> list[tuple[IngestResult, Any] | Exception]:
    """Store a batch in one transaction; when the database or a check refuses any of
    it, the transaction is rolled back whole and each contact goes alone, meeting
    its own error, if any. A batch holding a reply by reference (which may refer to
    a message of the same batch, `store_many`) goes one contact at a time."""
    region = hub.settings.default_region
    if len(batch) > 1 and not any(pending.inbound.references for pending in batch):
        try:
            return list(await _store_together(hub, batch, region))
        except Exception as error:  # each alone finds whose it was
            log.info("a batch of %d contacts was refused (%s); each goes alone", len(batch), error)
    outcomes: list[tuple[IngestResult, Any] | Exception] = []
    for pending in batch:
        try:
            outcomes.append(await _store_alone(hub, pending, region))
        except Exception as error:  # its caller raises it
            outcomes.append(error)
    return outcomes


async def _store_together(
    hub: Hub, batch: list[_Pending], region: str
) -> list[tuple[IngestResult, Any]]:
    async with hub.work() as work:
        stored = await store_many(work, [pending.inbound for pending in batch], region)
        results = [each.result for each in stored]
        done = await _then_all(work, batch, results)
        for each in stored:
            await each.finish(work, hub.router)  # last: routing holds its lock to the commit
    return list(zip(results, done, strict=True))


async def _then_all(work: Work, batch: list[_Pending], results: list[IngestResult]) -> list[Any]:
    """Each contact's `then`, in the batch's transaction; those whose `then` has a
    `together` (a static method taking them all with their results, answering in
    order) are done together, once per kind."""
    done: list[Any] = [None] * len(batch)
    kinds: dict[Any, list[int]] = {}
    for index, (pending, result) in enumerate(zip(batch, results, strict=True)):
        together = getattr(pending.then, "together", None)
        if together is None:
            done[index] = await pending.then(work, result)
        else:
            kinds.setdefault(together, []).append(index)
    for together, indexes in kinds.items():
        answers = await together(work, [(batch[i].then, results[i]) for i in indexes])
        for index, answer in zip(indexes, answers, strict=True):
            done[index] = answer
    return done


async def _store_alone(hub: Hub, pending: _Pending, region: str) -> tuple[IngestResult, Any]:
    """One contact in a transaction of its own.

    The first try stores without looking for an earlier copy first: a repeat is
    rare, and the unique (channel, external id) refuses it anyway. When the
    database refuses something (that repeat, or a new sender's identity another
    request stored meanwhile), the transaction is rolled back whole, events
    included, and `ingest` runs again in a new one, where it finds the earlier
    copy or the identity and returns or uses it.
    """
    try:
        [outcome] = await _store_together(hub, [pending], region)
    except IntegrityError:
        async with hub.work() as work:
            result = await ingest(work, pending.inbound, hub.router, region)
            return result, await pending.then(work, result)
    return outcome


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
    return (await store_many(work, [inbound], region))[0]


async def store_many(work: Work, inbounds: list[Inbound], region: str) -> list[Stored]:
    """Write contacts not stored before, in order, as one after the other would be, with
    a few statements for all of them: the senders' customers found (or created) at
    once, their open conversations read at once, new conversations and interactions
    each written in one INSERT. Their routing and events follow (`Stored.finish`).

    Threading by reference (an e-mail reply) looks at what was stored before this
    call; so contacts with references are stored one at a time (`_store_batch`).
    """
    senders = [normalise_identity(i.sender_kind, i.sender, region) for i in inbounds]
    wanted = [
        (inbound.sender_kind, sender, inbound.sender_name)
        for inbound, sender in zip(inbounds, senders, strict=True)
    ]
    customers, created = await resolve_customers(work.session, wanted)
    open_of = await open_conversations_of(work, {c.id for c in customers} - created)
    threads: list[tuple[Conversation | None, bool, bool]] = []
    for inbound, customer in zip(inbounds, customers, strict=True):
        # A customer created just now has no conversation to look for; its first contact
        # is the one that created it.
        is_new_customer = customer.id in created and customer.id not in open_of
        conversations = open_of.setdefault(customer.id, [])
        conversation, is_new_conversation = await thread_into(
            work, conversations, customer, inbound
        )
        threads.append((conversation, is_new_customer, is_new_conversation))
    await work.session.flush()
    stored: list[Stored] = []
    for inbound, sender, customer, (conversation, is_new_customer, is_new_conversation) in zip(
        inbounds, senders, customers, threads, strict=True
    ):
        complaint = await _open_complaint(work, customer, conversation, inbound)
        interaction = _interaction(customer, conversation, inbound, sender, complaint)
        stored.append(
            Stored(
                inbound,
                customer,
                conversation,
                interaction,
                complaint,
                is_new_customer,
                is_new_conversation,
            )
        )
    work.session.add_all(each.interaction for each in stored)
    await work.session.flush()
    for each in stored:
        _store_attachments(work, each.interaction, each.inbound)
    complaining = await _complaining(work, stored, created)
    for each in stored:
        each.open_complaint = each.customer.id in complaining
    return stored


async def _complaining(work: Work, stored: list[Stored], created: set[int]) -> set[int]:
    """Of the customers whose contacts routing will see, those with an open complaint:
    for customers created just now, one opened in this batch; for the others, asked
    once for all."""
    routed = {each.customer.id for each in stored if each.routed}
    opened = {each.customer.id for each in stored if each.complaint is not None}
    ask = sorted(routed - created - opened)
    if not ask:
        return opened
    statement = select(Complaint.customer_id).where(
        Complaint.customer_id.in_(ask), Complaint.status != "resolved"
    )
    return opened | set(await work.session.scalars(statement.distinct()))


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


@dataclass(slots=True)
class Stored:
    """A contact written (flushed), its routing and events still to come."""

    inbound: Inbound
    customer: Customer
    conversation: Conversation | None
    interaction: Interaction
    complaint: Complaint | None
    is_new_customer: bool
    is_new_conversation: bool
    # Whether the customer has an open complaint, as routing is to see it (`store_many`).
    open_complaint: bool = False

    @property
    def routed(self) -> bool:
        """Routing decides on a new conversation, and again on a complaint opened on one."""
        return self.conversation is not None and (
            self.is_new_conversation or self.complaint is not None
        )

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
        if self.routed and self.conversation is not None:
            await route(
                work,
                router,
                self.conversation,
                self.customer,
                open_complaint=self.open_complaint,
                first=self.is_new_conversation,
            )
        _emit(work, self)


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


async def route(
    work: Work,
    router: Router,
    conversation: Conversation,
    customer: Customer,
    open_complaint: bool,
    first: bool = False,
) -> None:
    """Ask the router who takes the conversation, and record why; `first` when the
    conversation is new."""
    decision = await router.assign(
        work.session, conversation, customer, open_complaint, first=first
    )
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
