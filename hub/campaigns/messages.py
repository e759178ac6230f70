"""A campaign's messages as rows: the outbox row, the history entry, the outbound.

One outbox row per recipient under the key `campaign:<id>:<customer id>`,
rendered from the campaign's compiled content in the customer's language. An
e-mail carries its signed one-click unsubscribe link (`unsubscribe`), an SMS
says how to opt out. A message that cannot be rendered is a `failed` row with
the error, never a blank message. The history entry is written with the row
(one per message, unique per channel and key); it holds the address, as the
outbox row does, so that the GDPR erasure finds both.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hub.campaigns.content import CompiledContent, customer_context
from hub.campaigns.segments import Member
from hub.campaigns.unsubscribe import list_unsubscribe_headers, make_token, unsubscribe_url
from hub.errors import InvalidInputError
from hub.models import Campaign, Interaction
from hub.settings import Settings
from hub.values import Outbound

SMS_OPT_OUT = "STOP: Abmelden / opt out"


def campaign_key(campaign_id: int, customer_id: int) -> str:
    return f"campaign:{campaign_id}:{customer_id}"


def build_row(
    settings: Settings, campaign: Campaign, content: CompiledContent, member: Member, now: datetime
) -> dict[str, Any]:
    """The member's outbox row, `queued` (the caller applies the gate's decision)."""
    address = member.address or ""
    url = None
    if campaign.channel == "email":
        token = make_token(settings.secret_key or "", "email", address, campaign.id)
        url = unsubscribe_url(settings.public_url, token)
    row: dict[str, Any] = {
        "idempotency_key": campaign_key(campaign.id, member.customer_id),
        "channel": campaign.channel,
        "purpose": "marketing",
        "recipient": address,
        "customer_id": member.customer_id,
        "campaign_id": campaign.id,
        "status": "queued",
        "attempts": 0,
        "blocked_reasons": [],
        "next_attempt_at": now,
        "created_at": now,
    }
    context = customer_context(
        member.customer_id, member.name, member.company, member.tier, member.language
    )
    try:
        rendered = content.render(context, url)
    except InvalidInputError as error:
        return {**row, "status": "failed", "last_error": error.message, "payload": {}}
    payload: dict[str, Any] = {"text": rendered.text}
    if campaign.channel == "sms" and "STOP" not in rendered.text.upper():
        payload["text"] = f"{rendered.text}\n{SMS_OPT_OUT}"
    if rendered.subject is not None:
        payload["subject"] = rendered.subject
    if rendered.html is not None:
        payload["html"] = rendered.html
    if url is not None:
        payload["headers"] = list_unsubscribe_headers(url)
    return {**row, "payload": payload}


def build_entry(
    campaign: Campaign, member: Member, row: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """The message's entry in the customer's history, written with its outbox row."""
    status = row["status"]
    text = f"Campaign «{campaign.name}» to {member.address}"
    if status == "blocked":
        text += " not sent: " + ", ".join(row["blocked_reasons"])
    elif status == "failed":
        text += f" not sent: {row.get('last_error')}"
    key = row["idempotency_key"]
    return {
        "customer_id": member.customer_id,
        "conversation_id": None,
        "channel": campaign.channel,
        "direction": "outbound",
        "kind": "campaign",
        "subject": row.get("payload", {}).get("subject"),
        "text": text,
        "external_id": key,
        "meta": {"campaign_id": campaign.id, "outbox_key": key, "status": status},
        "occurred_at": now,
        "created_at": now,
    }


def outbound_of(row: dict[str, Any]) -> Outbound:
    payload = row["payload"]
    return Outbound(
        channel=row["channel"],
        recipient=row["recipient"],
        text=payload.get("text", ""),
        subject=payload.get("subject"),
        html=payload.get("html"),
        headers=payload.get("headers", {}),
        idempotency_key=row["idempotency_key"],
        metadata={
            "outbox_id": row["id"],
            "purpose": "marketing",
            "customer_id": row["customer_id"],
        },
    )


def outcome_entry(
    customer_id: int, channel: str, recipient: str, campaign_id: int | None, summary: str
) -> Interaction:
    """A history entry for an outcome other than `sent` (failed, unknown, blocked at send)."""
    return Interaction(
        customer_id=customer_id,
        channel=channel,
        direction="outbound",
        kind="delivery",
        text=f"marketing message to {recipient} {summary}",
        meta={"campaign_id": campaign_id} if campaign_id else {},
    )
