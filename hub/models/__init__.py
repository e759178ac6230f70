"""The hub's tables, as SQLAlchemy 2 declarative models.

One schema for SQLite and PostgreSQL. Times are stored and returned as aware
UTC datetimes. Every column the console or the API filters or sorts by has an
index; the history is keyset-paged on (customer_id, occurred_at, id).
"""

from __future__ import annotations

from hub.models.agents import Agent, AgentRouting, ApiToken, AuditEntry, Lease, PresenceChange
from hub.models.base import NAMING, Base, Id, UTCDateTime, utcnow
from hub.models.contacts import (
    Attachment,
    ChatFrame,
    ChatSession,
    Complaint,
    ComplaintConversation,
    Conversation,
    Interaction,
    MailboxState,
    RawMessage,
    RoutingState,
)
from hub.models.customers import (
    Block,
    Consent,
    Customer,
    CustomerMerge,
    Erasure,
    Identity,
    KpiCustomer,
    Suppression,
)
from hub.models.outbound import Campaign, OutboxMessage, Segment

__all__ = [
    "NAMING",
    "Agent",
    "AgentRouting",
    "ApiToken",
    "Attachment",
    "AuditEntry",
    "Base",
    "Block",
    "Campaign",
    "ChatFrame",
    "ChatSession",
    "Complaint",
    "ComplaintConversation",
    "Consent",
    "Conversation",
    "Customer",
    "CustomerMerge",
    "Erasure",
    "Id",
    "Identity",
    "Interaction",
    "KpiCustomer",
    "Lease",
    "MailboxState",
    "OutboxMessage",
    "PresenceChange",
    "RawMessage",
    "RoutingState",
    "Segment",
    "Suppression",
    "UTCDateTime",
    "utcnow",
]
