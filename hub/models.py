"""The hub's tables, as SQLAlchemy 2 declarative models.

One schema for SQLite and PostgreSQL. Times are stored and returned as aware
UTC datetimes. Every column the console or the API filters or sorts by has an
index; the history is keyset-paged on (customer_id, occurred_at, id).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# SQLite only auto-increments an INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer, "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every engine (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; the hub stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar = {datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8), default="en")
    languages: Mapped[list[str]] = mapped_column(default=list)
    teams: Mapped[list[str]] = mapped_column(default=list)
    presence: Mapped[str] = mapped_column(String(10), default="offline")
    presence_changed_at: Mapped[datetime | None]
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Raised when the password changes or the agent is deactivated: a session
    # cookie carries the epoch it was signed in under (hub.session_guard).
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    agent: Mapped[Agent] = relationship(lazy="joined")


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    company: Mapped[str | None] = mapped_column(String(200))
    tier: Mapped[str | None] = mapped_column(String(1), index=True)
    tier_manual: Mapped[bool] = mapped_column(Boolean, default=False)
    key_account_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), index=True
    )
    language: Mapped[str | None] = mapped_column(String(8))
    birthday: Mapped[date | None] = mapped_column(Date)
    revenue: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    is_prospect: Mapped[bool] = mapped_column(Boolean, default=False)
    tags: Mapped[list[str]] = mapped_column(default=list)
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    identities: Mapped[list[Identity]] = relationship(
        back_populates="customer", order_by="Identity.id"
    )


class Identity(Base):
    """An address a customer is reached at: e-mail, phone (E.164) or chat id."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="identities")


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


class Consent(Base):
    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("customer_id", "channel", "purpose"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(10))
    purpose: Mapped[str] = mapped_column(String(12))
    state: Mapped[str] = mapped_column(String(24))
    source: Mapped[str | None] = mapped_column(String(100))
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Block(Base):
    """A reason never to contact an address, a number or a whole customer."""

    __tablename__ = "blocks"
    __table_args__ = (
        Index(None, "kind", "value", "lifted_at"),
        Index(None, "customer_id", "lifted_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(String(320))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(20))
    scope: Mapped[str] = mapped_column(String(10), default="all")
    note: Mapped[str | None] = mapped_column(String(500))
    created_by_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    lifted_at: Mapped[datetime | None]
    lifted_by_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )


class OutboxMessage(Base):
    """One message to send; see `hub.outbox` for its states."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index(None, "status", "next_attempt_at"),
        Index(None, "status", "lease_until"),
        Index(None, "customer_id", "purpose", "status", "sent_at"),
        Index(None, "provider_id"),
        Index(None, "campaign_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(20))
    purpose: Mapped[str] = mapped_column(String(12), default="service")
    recipient: Mapped[str] = mapped_column(String(320))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    interaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("interactions.id", ondelete="SET NULL")
    )
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(10), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(Text)
    blocked_reasons: Mapped[list[str]] = mapped_column(default=list)
    provider_id: Mapped[str | None] = mapped_column(String(200))
    provider_status: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    # A campaign's rows are sent by its campaign sender, never by the dispatcher.
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))


class CustomerMerge(Base):
    """What a merge moved, row by row, so that it can be undone exactly."""

    __tablename__ = "customer_merges"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    survivor_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    merged_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    moved: Mapped[dict[str, Any]] = mapped_column(default=dict)
    merged_by_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    merged_at: Mapped[datetime] = mapped_column(default=utcnow)
    undone_at: Mapped[datetime | None]
    undone_by_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "entity", "entity_id", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(50))
    entity: Mapped[str] = mapped_column(String(30))
    entity_id: Mapped[int | None] = mapped_column(BigInteger)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


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


class AgentRouting(Base):
    """What routing knows of an agent beyond the core's columns.

    `tiers`: the customer tiers the agent serves (empty: all); `capacity`:
    conversations at once per channel, over the rules file's defaults; `deputy`:
    who stands in for the agent's key accounts. No row means all defaults.
    """

    __tablename__ = "agent_routing"

    agent_id: Mapped[int] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    tiers: Mapped[list[str]] = mapped_column(default=list)
    capacity: Mapped[dict[str, Any]] = mapped_column(default=dict)
    deputy_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    last_assigned_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


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


class Suppression(Base):
    """An erased address, kept only as a keyed hash, so it is never marketed to again.

    `digest`: HMAC-SHA256 of `kind:normalised address` under a key derived from
    SECRET_KEY; `key_id` names that key, so entries made under an earlier
    SECRET_KEY can be told apart (they no longer match).
    """

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    key_id: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Erasure(Base):
    """That a customer's personal data was erased, when and by whom, and how much."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), unique=True
    )
    erased_at: Mapped[datetime] = mapped_column(default=utcnow)
    erased_by_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)


# --- Campaigns (`hub.campaigns`): saved segments and outbound campaigns ---
# No personal data here: recipients are customer ids, and the addresses live in
# the outbox rows and history entries, which the GDPR erasure covers.


class Segment(Base):
    """A saved filter over customers (see `hub.campaigns.segments` for its fields)."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    filter: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Campaign(Base):
    """An outbound campaign; its states are drawn in `hub.campaigns.approval`."""

    __tablename__ = "campaigns"
    __table_args__ = (Index(None, "status", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20), default="draft")
    segment: Mapped[dict[str, Any]] = mapped_column(default=dict)
    template: Mapped[dict[str, Any]] = mapped_column(default=dict)
    scheduled_at: Mapped[datetime | None]
    created_by_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    preview: Mapped[dict[str, Any]] = mapped_column(default=dict)
    approved_by_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    approved_at: Mapped[datetime | None]
    approval_expires_at: Mapped[datetime | None]
    approved_digest: Mapped[str | None] = mapped_column(String(64))
    holder: Mapped[str | None] = mapped_column(String(100))
    holder_until: Mapped[datetime | None]
    enqueued_through: Mapped[int] = mapped_column(BigInteger, default=0)
    enqueue_done: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- Leases (hub/leases.py): background work that runs once across processes ---


class Lease(Base):
    """Who runs the background work `name`, until when (renewed while it runs)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime]


# --- Figures (`hub.kpis`): the presence log, and the indexes the dashboard's aggregates use ---


class PresenceChange(Base):
    """An agent's presence from `at` on, one row per change (presence time is summed from it)."""

    __tablename__ = "presence_changes"
    __table_args__ = (Index(None, "agent_id", "at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(10))
    at: Mapped[datetime] = mapped_column(default=utcnow)


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


class KpiCustomer(Base):
    """A counted customer (not merged away, not erased) as the data-quality figures see them.

    A rollup kept by database triggers (migration 0012) in the transaction of every change
    to a customer, their identities or an erasure, so the figures read one narrow row per
    customer instead of joining the identities; `hub.kpis.rollup` recomputes it from the
    raw tables, and the tests prove the two equal.
    """

    __tablename__ = "kpi_customers"
    __table_args__ = (
        Index(None, "name_key", "company_key", "tier", "id"),
        Index(None, "marked_email", "id"),
    )

    # The customer's own id: the rollup extends the customer's row, one to one.
    id: Mapped[int] = mapped_column(
        Id, ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    tier: Mapped[str | None] = mapped_column(String(1))
    has_email: Mapped[bool] = mapped_column(Boolean)
    has_phone: Mapped[bool] = mapped_column(Boolean)
    # An e-mail address with a dot or a +tag in its local part, or a capital: one that may
    # reach the same mailbox as another customer's (`hub.kpis.quality`).
    marked_email: Mapped[bool] = mapped_column(Boolean)
    name_key: Mapped[str] = mapped_column(String(200))  # lower(trim(name))
    company_key: Mapped[str] = mapped_column(String(200))  # lower(trim(company)), or ''
