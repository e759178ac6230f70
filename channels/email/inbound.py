"""From a raw mail to the hub: parse it, and hand it to intake or to the bounce handler.

Threading hints come from what the hub can verify: its own HMAC'd Message-IDs
among In-Reply-To/References (they name the conversation), its HMAC'd reply
addresses among To and Cc, and a `[#123]` conversation reference in the
subject; all only ever thread into a conversation of the sender's own customer
(the hub checks). A mail whose own
Message-ID is one of ours is our own mail coming back: stored as automatic,
never answered. HTML is stored sanitised for display; the original stays in
the raw message, which the hub marks ingested in the same transaction that
stores the contact (or the bounce), so nothing is acknowledged half done.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from channels.email.message_ids import parse_hub_message_id, parse_reply_address
from channels.email.parsing import ParsedMail, fold_quote, parse_mail
from hub.bounces import DeliveryReport
from hub.context import Hub
from hub.mailboxes import accept_raw_bounces, ingest_raw
from hub.models import RawMessage
from hub.values import Inbound

SUBJECT_REFERENCE = re.compile(r"\[#(\d{1,12})\]")


class UnreadableSenderError(Exception):
    """Not even the sender of the mail can be read: nobody to file it under."""


@dataclass(frozen=True, slots=True)
class IntakeOutcome:
    interaction_id: int | None


async def take_message(hub: Hub, raw: RawMessage, max_attachment_bytes: int) -> IntakeOutcome:
    """Parse a stored raw mail and hand it to the hub; raises when it cannot be taken.

    When this returns, the hub has committed the contact (or the delivery
    report) together with the raw message's status `ingested`.
    """
    parsed = parse_mail(raw.content, max_attachment_bytes)
    if parsed.bounce is not None:
        secret = hub.settings.secret_key or ""
        await accept_raw_bounces(hub, raw.id, delivery_reports(parsed, secret))
        return IntakeOutcome(None)
    if parsed.sender_address is None:
        raise UnreadableSenderError("the sender of this mail cannot be read")
    inbound = to_inbound(parsed, raw, hub.settings.secret_key or "")
    result = await ingest_raw(hub, raw.id, inbound)
    return IntakeOutcome(result.interaction_id)


def to_inbound(parsed: ParsedMail, raw: RawMessage, secret: str) -> Inbound:
    visible, quoted = fold_quote(parsed.text or "")
    return Inbound(
        channel="email",
        sender_kind="email",
        sender=parsed.sender_address or "",
        sender_name=parsed.sender_name,
        external_id=parsed.idempotency_key,
        thread_key=parsed.message_id or parsed.idempotency_key,
        references=tuple(dict.fromkeys((*parsed.in_reply_to, *parsed.references))),
        conversation_hints=conversation_hints(parsed, secret),
        automatic=automatic_reason(parsed, secret),
        subject=parsed.subject or None,
        text=visible if parsed.text is not None else None,
        html=parsed.html_safe,
        attachments=parsed.attachments,
        received_at=_received_at(parsed),
        metadata={
            "message_id": parsed.message_id,
            "raw_message_id": raw.id,
            "to": list(parsed.to),
            "quoted_text": quoted or None,
            "warnings": list(parsed.warnings),
        },
    )


def conversation_hints(parsed: ParsedMail, secret: str) -> tuple[int, ...]:
    ours = [parse_hub_message_id(secret, ref) for ref in (*parsed.in_reply_to, *parsed.references)]
    hints = [found.conversation_id for found in ours if found is not None]
    addressed = (parse_reply_address(secret, to) for to in (*parsed.to, *parsed.cc))
    hints += [conversation for conversation in addressed if conversation is not None]
    hints += [int(number) for number in SUBJECT_REFERENCE.findall(parsed.subject or "")]
    return tuple(dict.fromkeys(hints))


def automatic_reason(parsed: ParsedMail, secret: str) -> str | None:
    if parsed.message_id and parse_hub_message_id(secret, parsed.message_id):
        return "loop: the hub's own Message-ID"
    return parsed.automatic


def _received_at(parsed: ParsedMail) -> datetime:
    now = datetime.now(UTC)
    # A Date header in the future (or absent) is not trusted for the history's order.
    return parsed.date if parsed.date is not None and parsed.date <= now else now


def delivery_reports(parsed: ParsedMail, secret: str) -> list[DeliveryReport]:
    """One report per recipient of a bounce, each under its own idempotency key."""
    bounce = parsed.bounce
    assert bounce is not None
    ours = parse_hub_message_id(secret, bounce.original_message_id or "")
    return [
        DeliveryReport(
            external_id=f"{parsed.idempotency_key}:{recipient.final_recipient}",
            recipient=recipient.final_recipient,
            status=recipient.status,
            is_permanent=recipient.is_permanent,
            received_at=_received_at(parsed),
            original_message_id=bounce.original_message_id,
            outbox_id=ours.outbox_id if ours else None,
            diagnostic=recipient.diagnostic,
        )
        for recipient in bounce.recipients
    ]
