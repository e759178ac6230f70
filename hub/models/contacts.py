"""Contacts: conversations and their interactions (the history), attachments,
complaints, routing state, chat sessions and the e-mail intake's bookkeeping."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from hub.models.base import Base, Id, utcnow


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index(None, "customer_id", "status", "channel"),
        Index(None, "customer_id", "thread_key"),
        Index(None, "status", "assignee_id", "id"),
        Index(None, "status", "queue", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12), default="open")
    subject: Mapped[str | None] = mapped_column(String(500))
    thread_key: Mapped[str | None] = mapped_column(String(500))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    queue: Mapped[str | None] = mapped_column(String(50))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    routing_reason: Mapped[str | None] = mapped_column(String(500))
    sla_due_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_message_at: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]


class Interaction(Base):
    """One entry of a customer's history: a message, call, note or status change."""

    __tablename__ = "interactions"
    __table_args__ = (
        UniqueConstraint("channel", "external_id"),
        Index(None, "customer_id", "occurred_at", "id"),
        Index(None, "conversation_id", "occurred_at", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    channel: Mapped[str] = mapped_column(String(20))
    direction: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(20), default="message")
    subject: Mapped[str | None] = mapped_column(String(500))
    text: Mapped[str | None] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(500))
    sender: Mapped[str | None] = mapped_column(String(320))
    author_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    interaction_id: Mapped[int] = mapped_column(
        ForeignKey("interactions.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    content: Mapped[bytes | None] = mapped_column(LargeBinary)


class Complaint(Base):
    __tablename__ = "complaints"
    __table_args__ = (
        Index(None, "customer_id", "status"),
        Index(None, "status", "id"),
        Index(None, "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="open")
    severity: Mapped[str] = mapped_column(String(10), default="normal")
    due_at: Mapped[datetime | None]
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    created_by_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ComplaintConversation(Base):
    __tablename__ = "complaint_conversations"

    complaint_id: Mapped[int] = mapped_column(
        ForeignKey("complaints.id", ondelete="CASCADE"), primary_key=True
    )
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class RoutingState(Base):
    """Where a conversation stands in routing: the rule that decided, why, and its wait.

    `waiting` while nobody has it; then the key account (`reserved_agent_id`),
    their deputy (`deputy_agent_id`) and, with `team_open`, anyone of the
    `queue`'s team may take it. `widen_at` is when the next step of the rule
    opens; `sla_breached_at` is set once, when the first response came too late.
    """

    __tablename__ = "routing_states"
    __table_args__ = (
        Index(None, "waiting", "queue", "priority", "waiting_since"),
        Index(None, "waiting", "widen_at"),
        Index(None, "sla_breached_at", "sla_due_at"),
    )

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    rule: Mapped[str] = mapped_column(String(50))
    explanation: Mapped[list[str]] = mapped_column(default=list)
    waiting: Mapped[bool] = mapped_column(Boolean, default=True)
    queue: Mapped[str | None] = mapped_column(String(50))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    channel: Mapped[str] = mapped_column(String(20))
    tier: Mapped[str] = mapped_column(String(1))
    language: Mapped[str | None] = mapped_column(String(8))
    step: Mapped[int] = mapped_column(Integer, default=0)
    reserved_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), index=True
    )
    deputy_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), index=True
    )
    team_open: Mapped[bool] = mapped_column(Boolean, default=False)
    widen_at: Mapped[datetime | None]
    waiting_since: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
    sla_due_at: Mapped[datetime | None]
    sla_breached_at: Mapped[datetime | None]


# --- Privacy (`hub.privacy`): erasures done, and addresses suppressed from marketing ---


class ChatSession(Base):
    """A live chat session: its chat id and the newest seq of its log (`head`)."""

    __tablename__ = "chat_sessions"

    session: Mapped[str] = mapped_column(String(64), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(200))
    head: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ChatFrame(Base):
    """One logged frame of a chat session (`ack`, agent `message`), numbered by `seq`.

    An ack is logged once per client id, an agent's message once per outbox key.
    """

    __tablename__ = "chat_frames"
    __table_args__ = (
        UniqueConstraint("session", "seq"),
        UniqueConstraint("session", "client_id"),
        UniqueConstraint("session", "outbox_key"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    session: Mapped[str] = mapped_column(ForeignKey("chat_sessions.session", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    client_id: Mapped[str | None] = mapped_column(String(64))
    outbox_key: Mapped[str | None] = mapped_column(String(200))
    frame: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- Routing (the `routing` package): agents' routing profiles, conversations' routing state ---


class MailboxState(Base):
    """Where the IMAP intake stands in a folder: its UIDVALIDITY and the last UID taken."""

    __tablename__ = "mailbox_states"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(300), unique=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RawMessage(Base):
    """An inbound message's raw bytes, kept before parsing, and what became of them.

    `status`: received → ingested | failed (parse error; retried) → quarantined
    (after three failures: the dead-letter view lists it, replay re-ingests it).
    `acknowledged`: the source was told (flagged \\Seen, or moved) what became of
    it; until then the intake finds the row by the (source, acknowledged) index.
    """

    __tablename__ = "raw_messages"
    __table_args__ = (
        UniqueConstraint("source", "uidvalidity", "uid"),
        Index(None, "status", "id"),
        Index(None, "source", "acknowledged", "status"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(300))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(12), default="received")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    interaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("interactions.id", ondelete="SET NULL")
    )
    acknowledged: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# A period's conversations, complaints and inbound contacts are range scans on these;
# the contacts index covers the per-customer count, so it never reads the history rows.
Index("ix_conversations_created_at", Conversation.created_at)
Index("ix_conversations_closed_at", Conversation.closed_at)
Index("ix_complaints_opened_at", Complaint.opened_at)
Index("ix_complaints_resolved_at", Complaint.resolved_at)
Index(
    "ix_interactions_direction_occurred_at_channel_customer_id",
    Interaction.direction,
    Interaction.occurred_at,
    Interaction.channel,
    Interaction.customer_id,
)
