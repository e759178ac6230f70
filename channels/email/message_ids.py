"""The hub's own Message-IDs: they name the conversation, and carry an HMAC.

    <c{conversation}.o{outbox}.{random}.{mac}@{domain}>

A reply that refers to one of these can be threaded without trusting anything
else in its headers: a forged or altered id fails the HMAC and is ignored, and
even a genuine one only threads into a conversation of the sender's own
customer (the hub checks that). An inbound message that carries one of our ids
as its own Message-ID is our own mail coming back: a loop, never a new contact.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

MAC_CHARS = 16
_PATTERN = re.compile(
    r"^<?c(?P<conversation>\d+)\.o(?P<outbox>\d+)\.(?P<nonce>[0-9a-f]{8})\.(?P<mac>[0-9a-f]{16})"
    r"@(?P<domain>[^>@\s]+)>?$"
)


@dataclass(frozen=True, slots=True)
class HubMessageId:
    conversation_id: int
    outbox_id: int


def _mac(secret: str, conversation_id: int, outbox_id: int, nonce: str) -> str:
    message = f"{conversation_id}.{outbox_id}.{nonce}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:MAC_CHARS]


def make_message_id(secret: str, domain: str, conversation_id: int, outbox_id: int) -> str:
    nonce = secrets.token_hex(4)
    mac = _mac(secret, conversation_id, outbox_id, nonce)
    return f"<c{conversation_id}.o{outbox_id}.{nonce}.{mac}@{domain}>"


def parse_hub_message_id(secret: str, value: str) -> HubMessageId | None:
    """The conversation and outbox row an id of ours names, or None (not ours, or forged)."""
    match = _PATTERN.match(value.strip())
    if match is None:
        return None
    conversation, outbox = int(match["conversation"]), int(match["outbox"])
    expected = _mac(secret, conversation, outbox, match["nonce"])
    if not hmac.compare_digest(expected, match["mac"]):
        return None
    return HubMessageId(conversation, outbox)
