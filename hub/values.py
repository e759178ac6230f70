"""The values that cross the hub's edges: what comes in, and what goes out.

Every channel adapter turns its wire traffic into one `Inbound` and hands it to
`hub.intake.ingest()`; every send is an `Outbound` taken from the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

Channel = Literal["email", "sms", "voice", "webform", "chat", "visit", "letter", "phone", "other"]
CHANNELS: tuple[str, ...] = Channel.__args__  # type: ignore[attr-defined]
IdentityKind = Literal["email", "phone", "chat"]
Direction = Literal["inbound", "outbound"]


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes | None
    size: int | None = None

    @property
    def byte_size(self) -> int:
        return self.size if self.size is not None else len(self.content or b"")


@dataclass(frozen=True, slots=True)
class Inbound:
    """One contact as a channel saw it, before the hub knows whom it belongs to.

    `external_id` is the idempotency key within the channel (the Message-ID or
    a hash of the raw mail, MessageSid, the chat client's message id, ...).
    Threading, always within the sender's own customer, tries in order:
    `conversation_hints` (conversations the channel verified the message
    refers to, e.g. by the HMAC in the hub's own Message-IDs), `references`
    (external ids of earlier messages on the channel), `thread_key` (the
    thread's name on the channel: a chat session, an e-mail's own Message-ID),
    and without a thread key the customer's open conversation on the channel.
    `automatic` (the reason, e.g. an auto-reply) stores the message without
    ever starting a conversation for an agent.
    """

    channel: Channel
    sender_kind: IdentityKind
    sender: str
    external_id: str
    text: str | None = None
    subject: str | None = None
    html: str | None = None
    thread_key: str | None = None
    references: tuple[str, ...] = ()
    conversation_hints: tuple[int, ...] = ()
    automatic: str | None = None
    sender_name: str | None = None
    direction: Direction = "inbound"
    kind: str = "message"
    is_complaint: bool = False
    attachments: tuple[Attachment, ...] = ()
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outbound:
    """One message for a channel sender to deliver, taken from the outbox."""

    channel: Channel
    recipient: str
    text: str
    idempotency_key: str
    subject: str | None = None
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
