"""Erasure (GDPR Art. 17): the person's data out of every table, the figures kept.

One transaction, so an erasure is complete or did not happen. Row by row, for
the customer and every record merged into it (`hub.privacy.subject`):

    table            kept                                   removed
    customers        the row, tier, revenue, language,      name, company, birthday, tags
                     dates (ids stay valid for figures)
    identities       -                                      every row
    interactions     channel, direction, kind, times,       subject, text, html, sender,
                     conversation, meta codes and counts    external id, the rest of meta
    attachments      count, content type, size              file name, content
    raw_messages     the row (it stops a re-import)         the raw bytes, the error
    conversations    channel, status, queue, times          subject, thread key, routing reason
    complaints       status, severity, times                subject, description
    consents         channel, purpose (now revoked)         source, evidence
    blocks           kind, reason, scope, times             address, note
    outbox           channel, purpose, status, attempts,    recipient, content, error
                     times (queued rows become blocked)
    chat sessions    -                                      sessions and their frames
    customer_merges  -                                      the rows (undo is moot)
    audit_log        every entry                            the person's values in it

Every other table, and the audit log again, is swept for the person's terms
(`hub.privacy.sweep`). Each e-mail address and phone number is kept as a keyed
hash (`hub.privacy.suppression`) so it is never marketed to again. The
erasure itself is recorded (`erasures`) and audited with counts only.

Not covered: a person named in another customer's messages; words of a
message body copied into a table outside the core (the sweep looks for full
names, addresses, numbers and chat ids, not for message words, and not into
binary columns of such tables); copies outside the database (the mail
server's folders, backups, logs). A message a dispatcher is sending at that
very moment may still go out, and a contact already matched to her while the
erasure ran is stored on the erased record once it commits. An address block
(a hard bounce) loses its address, so it no longer stops service mail to that
address; the suppression still stops marketing.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import bindparam, delete, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import record
from hub.context import Work
from hub.errors import ConflictError
from hub.models import (
    Attachment,
    AuditEntry,
    Base,
    Block,
    ChatSession,
    Complaint,
    Consent,
    Conversation,
    Customer,
    CustomerMerge,
    Erasure,
    Identity,
    Interaction,
    OutboxMessage,
    RawMessage,
    utcnow,
)
from hub.privacy.subject import ERASED, Subject, find_subject, mentions, scrub
from hub.privacy.suppression import KINDS, do_suppress
from hub.privacy.sweep import sweep_table

# Tables erased row by row above, and the agents' own tables (an agent may
# share a name with a customer; their records are not the customer's).
KNOWN_TABLES = frozenset(
    {
        "customers",
        "identities",
        "conversations",
        "interactions",
        "attachments",
        "complaints",
        "complaint_conversations",
        "consents",
        "blocks",
        "outbox",
        "customer_merges",
        "raw_messages",
        "chat_sessions",
        "chat_frames",
        "suppressions",
        "erasures",
        "agents",
        "api_tokens",
        "mailbox_states",
    }
)
# Interaction metadata that is a code or a count, never a person's value.
SAFE_META = frozenset(
    {
        "complaint_id",
        "outbox_id",
        "status",
        "reasons",
        "automatic",
        "topic",
        "language",
        "keyword",
        "num_segments",
        "num_media",
        "call_status",
        "duration_seconds",
        "left_in_chat",
        "logged_by_agent_id",
        "twilio_direction",
        "contact_verified",
    }
)
RAW_DEAD = ("failed", "quarantined")


async def do_erase(work: Work, actor_id: int | None, customer_id: int, key: bytes) -> Erasure:
    """Erase a customer's personal data; erasing again returns the first erasure."""
    session = work.session
    earlier = await find_erasure(session, customer_id)
    if earlier is not None:
        return earlier
    subject = await find_subject(session, customer_id)
    customer = await session.get(Customer, customer_id)
    if customer is not None and customer.merged_into_id is not None:
        raise ConflictError(
            f"customer {customer_id} was merged into {customer.merged_into_id}; "
            f"erase {customer.merged_into_id}, which holds its data"
        )
    counts = await _erase_rows(session, subject, key)
    erasure = Erasure(customer_id=customer_id, erased_by_agent_id=actor_id, counts=counts)
    session.add(erasure)
    await session.flush()
    record(session, actor_id, "customer.erased", "customer", customer_id, counts=counts)
    work.emit("customer.erased", customer_id=customer_id)
    return erasure


async def find_erasure(session: AsyncSession, customer_id: int) -> Erasure | None:
    statement = select(Erasure).where(Erasure.customer_id == customer_id)
    return (await session.scalars(statement)).first()


async def _erase_rows(session: AsyncSession, subject: Subject, key: bytes) -> dict[str, Any]:
    """Each step in turn; the counts say what each found (figures only, no values)."""
    ids = subject.customer_ids
    # On PostgreSQL, a contact being stored for her right now holds a key-share lock
    # on her customer row (its foreign key): this waits for it, so it is erased too,
    # and one stored later waits for the erasure. SQLite's writers queue anyway.
    await session.execute(select(Customer.id).where(Customer.id.in_(ids)).with_for_update())
    counts: dict[str, Any] = {"records": len(ids)}
    counts["suppressed"] = await _suppress(session, subject, key)
    counts["interactions_by_channel"] = await _erase_interactions(session, ids)
    counts["attachments"] = await _erase_attachments(session, ids)
    counts["raw_messages"] = await _erase_raw_messages(session, subject)
    counts["conversations"] = await _erase_conversations(session, ids)
    counts["complaints"] = await _erase_complaints(session, ids)
    counts["consents"] = await _erase_consents(session, ids)
    counts["blocks"] = await _erase_blocks(session, subject)
    counts["outbox"] = await _erase_outbox(session, subject)
    counts["chat_sessions"] = await _erase_chat(session, subject)
    counts["identities"] = await _delete(session, Identity, Identity.customer_id.in_(ids))
    counts["merges"] = await _delete(
        session,
        CustomerMerge,
        or_(CustomerMerge.survivor_id.in_(ids), CustomerMerge.merged_id.in_(ids)),
    )
    _erase_profiles(await session.scalars(select(Customer).where(Customer.id.in_(ids))))
    counts["audit_entries"] = await _erase_own_audit(session, subject)
    counts["swept"] = await _sweep(session, subject)
    await session.flush()
    return counts


async def _suppress(session: AsyncSession, subject: Subject, key: bytes) -> int:
    kept = [(kind, value) for kind, value in sorted(subject.addresses) if kind in KINDS]
    for kind, value in kept:
        await do_suppress(session, key, kind, value)
    return len(kept)


async def _erase_interactions(session: AsyncSession, ids: tuple[int, ...]) -> dict[str, int]:
    """The bodies in one UPDATE; the metadata row by row, only where it held more."""
    table = Interaction.__table__
    rows = (
        await session.execute(
            select(table.c.id, table.c.channel, table.c.meta).where(table.c.customer_id.in_(ids))
        )
    ).all()
    await session.execute(
        update(table)
        .where(table.c.customer_id.in_(ids))
        .values(subject=None, text=None, html=None, sender=None, external_id=None)
    )
    changed = [
        {"row_id": row.id, "safe": safe_meta(row.meta)}
        for row in rows
        if safe_meta(row.meta) != row.meta
    ]
    if changed:
        # A Core executemany: the ORM's bulk UPDATE costs ~30 µs of Python a row.
        await session.execute(
            update(table).where(table.c.id == bindparam("row_id")).values(meta=bindparam("safe")),
            changed,
        )
    return dict(Counter(row.channel for row in rows))


def safe_meta(meta: Any) -> dict[str, Any]:
    """Only the metadata that is a code or a count (see SAFE_META)."""
    if not isinstance(meta, dict):
        return {}
    return {key: value for key, value in meta.items() if key in SAFE_META}


def _of_customers(ids: tuple[int, ...]) -> Any:
    return select(Interaction.id).where(Interaction.customer_id.in_(ids))


async def _erase_attachments(session: AsyncSession, ids: tuple[int, ...]) -> int:
    result = await session.execute(
        update(Attachment)
        .where(Attachment.interaction_id.in_(_of_customers(ids)))
        .values(filename=ERASED, content=None)
    )
    return int(result.rowcount or 0)


async def _erase_raw_messages(session: AsyncSession, subject: Subject) -> int:
    """Raw mail of the history, and dead letters (never linked) that name the person."""
    linked = await session.execute(
        update(RawMessage)
        .where(RawMessage.interaction_id.in_(_of_customers(subject.customer_ids)))
        .values(content=b"", error=None)
    )
    dead = await find_dead_letters_naming(session, subject)
    if dead:
        await session.execute(
            update(RawMessage)
            .where(RawMessage.id.in_(dead))
            # Still a settled dead letter to the IMAP intake (so the source is told),
            # and the dead-letter view says why it is empty.
            .values(content=b"", error="erased on request", status="quarantined")
        )
    return int(linked.rowcount or 0) + len(dead)


async def find_dead_letters_naming(session: AsyncSession, subject: Subject) -> list[int]:
    """Dead letters are few: their bytes are searched here, not in SQL."""
    needles = [term.casefold().encode() for term in subject.terms]
    rows = await session.execute(
        select(RawMessage.id, RawMessage.content, RawMessage.error).where(
            RawMessage.interaction_id.is_(None), RawMessage.status.in_(RAW_DEAD)
        )
    )
    found = []
    for raw_id, content, error in rows:
        haystack = bytes(content or b"").lower() + (error or "").casefold().encode()
        if any(needle in haystack for needle in needles):
            found.append(raw_id)
    return found


async def _erase_conversations(session: AsyncSession, ids: tuple[int, ...]) -> int:
    result = await session.execute(
        update(Conversation)
        .where(Conversation.customer_id.in_(ids))
        .values(subject=None, thread_key=None, routing_reason=None)
    )
    return int(result.rowcount or 0)


async def _erase_complaints(session: AsyncSession, ids: tuple[int, ...]) -> int:
    result = await session.execute(
        update(Complaint)
        .where(Complaint.customer_id.in_(ids))
        .values(subject=ERASED, description=None)
    )
    return int(result.rowcount or 0)


async def _erase_consents(session: AsyncSession, ids: tuple[int, ...]) -> int:
    """Revoked, so nothing is ever sent on them again; the evidence named the person."""
    result = await session.execute(
        update(Consent)
        .where(Consent.customer_id.in_(ids))
        .values(state="revoked", source="erasure", evidence={"erased_at": utcnow().isoformat()})
    )
    return int(result.rowcount or 0)


async def _erase_blocks(session: AsyncSession, subject: Subject) -> int:
    """Blocks stay on record (how many bounced, who objected), without the address."""
    on_customer = await session.execute(
        update(Block).where(Block.customer_id.in_(subject.customer_ids)).values(note=None)
    )
    on_address = 0
    pairs = [(kind, value) for kind, value in subject.addresses if kind in KINDS]
    if pairs:
        result = await session.execute(
            update(Block)
            .where(tuple_(Block.kind, Block.value).in_(pairs))
            .values(value=ERASED, note=None)
        )
        on_address = int(result.rowcount or 0)
    return int(on_customer.rowcount or 0) + on_address


async def _erase_outbox(session: AsyncSession, subject: Subject) -> dict[str, int]:
    """Rows keep their status (the figures); a row still queued will never go out."""
    mine = or_(
        OutboxMessage.customer_id.in_(subject.customer_ids),
        OutboxMessage.recipient.in_(subject.address_values or [""]),
    )
    rows = (
        await session.execute(
            select(
                OutboxMessage.id,
                OutboxMessage.status,
                OutboxMessage.idempotency_key,
                OutboxMessage.blocked_reasons,
            ).where(mine)
        )
    ).all()
    if rows:
        await session.execute(update(OutboxMessage), [_erased_outbox(row, subject) for row in rows])
    return dict(Counter(row.status for row in rows))


def _erased_outbox(row: Any, subject: Subject) -> dict[str, Any]:
    values: dict[str, Any] = {"id": row.id, "recipient": ERASED, "payload": {}, "last_error": None}
    if mentions(row.idempotency_key, subject.terms):
        values["idempotency_key"] = f"erased:{row.id}"
    if row.status == "queued":
        values["status"] = "blocked"
        values["blocked_reasons"] = [*row.blocked_reasons, "erased"]
    return values


async def _erase_chat(session: AsyncSession, subject: Subject) -> int:
    """The chat log only serves reconnecting sockets; its frames go with the session."""
    chat_ids = subject.chat_ids
    if not chat_ids:
        return 0
    return await _delete(
        session,
        ChatSession,
        or_(ChatSession.session.in_(chat_ids), ChatSession.chat_id.in_(chat_ids)),
    )


async def _delete(session: AsyncSession, model: Any, where: Any) -> int:
    result = await session.execute(delete(model).where(where))
    return int(result.rowcount or 0)


def _erase_profiles(customers: Any) -> None:
    for customer in customers:
        customer.name, customer.company, customer.birthday, customer.tags = "", None, None, []


async def _erase_own_audit(session: AsyncSession, subject: Subject) -> int:
    """Entries about the customer may hold values only its records had (an IP address)."""
    entries = await session.scalars(
        select(AuditEntry).where(
            AuditEntry.entity == "customer", AuditEntry.entity_id.in_(subject.customer_ids)
        )
    )
    changed = 0
    for entry in entries:
        if mentions(entry.details, subject.private_terms):
            entry.details = scrub(entry.details, subject.private_terms)
            changed += 1
    await session.flush()
    return changed


async def _sweep(session: AsyncSession, subject: Subject) -> dict[str, int]:
    swept = {}
    for table in Base.metadata.sorted_tables:
        if table.name not in KNOWN_TABLES:
            changed = await sweep_table(session, table, subject.terms)
            if changed:
                swept[table.name] = changed
    return swept
