"""Access (GDPR Art. 15): everything the hub holds about a customer, as one JSON document.

The document is machine-readable: each section is a list of rows with every
column of its table (times in ISO 8601 UTC, amounts as strings, bytes as
`{"base64": ...}`), so nothing is summarised away. It covers the customer and
every record merged into it (`hub.privacy.subject`):

    customers, erasure, identities, conversations, history (interactions),
    attachments (with content), raw_messages (the mail as received), complaints,
    complaint_conversations, consents (with evidence), blocks (on the customer
    and on its addresses), outbox (replies and campaign sends, as rendered),
    chat_sessions, chat_frames, merges, audit_log (entries about these rows)

and, under `other`, the rows of every further table that refers to the
customer, its conversations, history, complaints or outbox by foreign key, so
a table a later feature adds (campaign recipients, routing state) is exported
without this module knowing it.
"""

from __future__ import annotations

import base64
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from hub.models import (
    Attachment,
    AuditEntry,
    Base,
    Block,
    ChatFrame,
    ChatSession,
    Complaint,
    ComplaintConversation,
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
from hub.privacy.erasure import KNOWN_TABLES, find_dead_letters_naming
from hub.privacy.subject import Subject, find_subject, mentions
from hub.privacy.suppression import KINDS
from hub.privacy.sweep import mentioning

FORMAT = "omnihub.export/1"


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode()}
    return value


def rows_of(table: Table, rows: Any) -> list[dict[str, Any]]:
    names = [column.key for column in table.columns]
    return [{name: jsonable(row[name]) for name in names} for row in rows]


async def _rows(session: AsyncSession, model: Any, *where: Any) -> list[dict[str, Any]]:
    table = model.__table__
    key = list(table.primary_key.columns)
    result = await session.execute(select(table).where(*where).order_by(*key))
    return rows_of(table, result.mappings())


async def build_export(session: AsyncSession, customer_id: int) -> dict[str, Any]:
    subject = await find_subject(session, customer_id)
    ids = subject.customer_ids
    interactions = select(Interaction.id).where(Interaction.customer_id.in_(ids))
    conversations = select(Conversation.id).where(Conversation.customer_id.in_(ids))
    complaints = select(Complaint.id).where(Complaint.customer_id.in_(ids))
    outbox = select(OutboxMessage.id).where(_outbox_of(subject))
    blocks = await _rows(session, Block, _blocks_of(subject))
    sections: dict[str, Any] = {
        "format": FORMAT,
        "exported_at": utcnow().isoformat(),
        "customer_id": customer_id,
        "customers": await _rows(session, Customer, Customer.id.in_(ids)),
        "erasure": await _rows(session, Erasure, Erasure.customer_id.in_(ids)),
        "identities": await _rows(session, Identity, Identity.customer_id.in_(ids)),
        "conversations": await _rows(session, Conversation, Conversation.customer_id.in_(ids)),
        "history": await _rows(session, Interaction, Interaction.customer_id.in_(ids)),
        "attachments": await _rows(
            session, Attachment, Attachment.interaction_id.in_(interactions)
        ),
        "raw_messages": await _rows(
            session,
            RawMessage,
            or_(
                RawMessage.interaction_id.in_(interactions),
                RawMessage.id.in_(await find_dead_letters_naming(session, subject)),
            ),
        ),
        "complaints": await _rows(session, Complaint, Complaint.customer_id.in_(ids)),
        "complaint_conversations": await _rows(
            session, ComplaintConversation, ComplaintConversation.complaint_id.in_(complaints)
        ),
        "consents": await _rows(session, Consent, Consent.customer_id.in_(ids)),
        "blocks": blocks,
        "outbox": await _rows(session, OutboxMessage, _outbox_of(subject)),
        "chat_sessions": await _rows(session, ChatSession, _chat_of(subject)),
        "chat_frames": await _rows(
            session,
            ChatFrame,
            ChatFrame.session.in_(select(ChatSession.session).where(_chat_of(subject))),
        ),
        "merges": await _rows(
            session,
            CustomerMerge,
            or_(CustomerMerge.survivor_id.in_(ids), CustomerMerge.merged_id.in_(ids)),
        ),
    }
    entities = {
        "customer": list(ids),
        "block": [row["id"] for row in blocks],
        "complaint": [row["id"] for row in sections["complaints"]],
        "conversation": [row["id"] for row in sections["conversations"]],
    }
    sections["audit_log"] = await _linked_or_naming(
        session, AuditEntry.__table__, _audit_of(entities), subject.terms
    )
    linked = {
        "customers": list(ids),
        "conversations": conversations,
        "interactions": interactions,
        "complaints": complaints,
        "outbox": outbox,
    }
    sections["other"] = await _other_tables(session, linked, subject.terms)
    return sections


def _outbox_of(subject: Subject) -> Any:
    return or_(
        OutboxMessage.customer_id.in_(subject.customer_ids),
        OutboxMessage.recipient.in_(subject.address_values or [""]),
    )


def _blocks_of(subject: Subject) -> Any:
    pairs = [(kind, value) for kind, value in subject.addresses if kind in KINDS]
    on_customer = Block.customer_id.in_(subject.customer_ids)
    return or_(on_customer, tuple_(Block.kind, Block.value).in_(pairs)) if pairs else on_customer


def _chat_of(subject: Subject) -> Any:
    chat_ids = subject.chat_ids or [""]
    return or_(ChatSession.session.in_(chat_ids), ChatSession.chat_id.in_(chat_ids))


def _audit_of(entities: dict[str, list[int]]) -> Any:
    return or_(
        *(
            (AuditEntry.entity == entity) & AuditEntry.entity_id.in_(entity_ids)
            for entity, entity_ids in entities.items()
            if entity_ids
        )
    )


async def _other_tables(
    session: AsyncSession, linked: dict[str, Any], terms: frozenset[str]
) -> dict[str, Any]:
    """Rows of tables this module does not know: by foreign key, or naming the person."""
    other: dict[str, Any] = {}
    for table in Base.metadata.sorted_tables:
        if table.name in KNOWN_TABLES or table.name == "audit_log":
            continue
        conditions = [
            key.parent.in_(linked[key.column.table.name])
            for key in table.foreign_keys
            if key.column.table.name in linked and key.column.name == "id"
        ]
        rows = await _linked_or_naming(
            session, table, or_(*conditions) if conditions else None, terms
        )
        if rows:
            other[table.name] = rows
    return other


async def _linked_or_naming(
    session: AsyncSession, table: Table, linked: Any, terms: frozenset[str]
) -> list[dict[str, Any]]:
    """Rows linked to the person, and rows naming them as a whole word: SQL's LIKE also
    finds a term inside a longer one (someone else's address), which must not leak."""
    keys = list(table.primary_key.columns)
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    if linked is not None:
        for row in rows_of(table, await _select(session, table, linked)):
            found[tuple(row[key.key] for key in keys)] = row
    named = mentioning(table, terms)
    if named is not None:
        for row in rows_of(table, await _select(session, table, named)):
            if any(mentions(value, terms) for value in row.values()):
                found.setdefault(tuple(row[key.key] for key in keys), row)
    return [found[key] for key in sorted(found)]


async def _select(session: AsyncSession, table: Table, where: Any) -> Any:
    return (await session.execute(select(table).where(where))).mappings()
