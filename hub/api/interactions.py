"""`POST /api/interactions`: log a contact from any touchpoint, through the same intake."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Response

from hub.api.deps import current_agent, get_hub
from hub.api.schemas import InteractionIn
from hub.context import Hub
from hub.intake import accept_inbound
from hub.models import Agent
from hub.values import Inbound

router = APIRouter(prefix="/api/interactions", tags=["interactions"])


def to_inbound(body: InteractionIn, agent: Agent) -> Inbound:
    kind, sender = ("email", body.email) if body.email else ("phone", body.phone)
    return Inbound(
        channel=body.channel,
        sender_kind=kind,
        sender=sender or "",
        sender_name=body.name,
        external_id=body.external_id,
        subject=body.subject,
        text=body.text,
        direction=body.direction,
        kind="call" if body.channel in ("phone", "voice") else "message",
        is_complaint=body.complaint,
        received_at=body.occurred_at or datetime.now(UTC),
        metadata={"logged_by_agent_id": agent.id},
    )


@router.post("", status_code=201)
async def log_interaction(
    body: InteractionIn,
    response: Response,
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> dict[str, Any]:
    """Idempotent by `external_id`: a repeat answers 200 with the first result."""
    result = await accept_inbound(hub, to_inbound(body, agent))
    if result.duplicate:
        response.status_code = 200
    return {
        "customer_id": result.customer_id,
        "conversation_id": result.conversation_id,
        "interaction_id": result.interaction_id,
        "complaint_id": result.complaint_id,
        "duplicate": result.duplicate,
    }
