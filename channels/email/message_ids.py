"""The hub's own Message-IDs and reply addresses: they name the conversation, with an HMAC.

    <c{conversation}.o{outbox}.{random}.{mac}@{domain}>     Message-ID
    {mailbox}+c{conversation}.{mac}@{domain}                 Reply-To

A customer's mail client that drops In-Reply-To and References still answers
to the reply address, so the answer finds its conversation either way.

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


_REPLY_ADDRESS = re.compile(
    r"^(?P<mailbox>[^@\s+]+)\+c(?P<conversation>\d{1,12})\.(?P<mac>[0-9a-f]{16})@(?P<domain>[^@\s]+)$"
)


def _reply_mac(secret: str, conversation_id: int) -> str:
    # "reply:" keeps these MACs apart from the Message-IDs' ones.
    message = f"reply:{conversation_id}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:MAC_CHARS]


def make_reply_address(secret: str, mailbox: str, domain: str, conversation_id: int) -> str:
    """The hub's address (`mailbox@domain`) with the conversation as its +detail."""
    return f"{mailbox}+c{conversation_id}.{_reply_mac(secret, conversation_id)}@{domain}"


def parse_reply_address(secret: str, address: str) -> int | None:
    """The conversation a reply address of ours names, or None (not ours, or forged)."""
    match = _REPLY_ADDRESS.match(address.strip().lower())
    if match is None:
        return None
    conversation = int(match["conversation"])
    if not hmac.compare_digest(_reply_mac(secret, conversation), match["mac"]):
        return None
    return conversation
