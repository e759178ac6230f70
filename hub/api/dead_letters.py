"""`/api/dead-letters`: inbound messages the hub could not take, and their replay."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from hub.api.deps import current_agent, get_hub, require
from hub.context import Hub
from hub.errors import ConflictError, NotFoundError
from hub.mailboxes import dead_letter_view, list_dead_letters, mark_done
from hub.models import Agent, RawMessage

router = APIRouter(prefix="/api/dead-letters", tags=["operations"])


@router.get("")
async def dead_letters(
    before: int | None = None,
    limit: int = Query(default=50, ge=1, le=500),
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> dict[str, Any]:
    """Failed and quarantined inbound messages, newest first; their raw bytes are kept."""
    async with hub.sessions() as session:
        rows, after = await list_dead_letters(session, limit, before)
    return {"dead_letters": [dead_letter_view(raw) for raw in rows], "next": after}


@router.post("/{raw_id}/replay")
async def replay(
    raw_id: int, hub: Hub = Depends(get_hub), agent: Agent = Depends(require("supervisor"))
) -> dict[str, Any]:
    """Hand the stored message to its channel again (e.g. after a parser fix)."""
    async with hub.sessions() as session:
        raw = await session.get(RawMessage, raw_id)
    if raw is None:
        raise NotFoundError(f"no dead letter {raw_id}")
    if raw.status not in ("failed", "quarantined"):
        raise ConflictError(f"message {raw_id} is {raw.status}, not a dead letter")
    replayer = hub.replayers.get(raw.channel)
    if replayer is None:
        raise ConflictError(f"the {raw.channel} channel is not configured here")
    try:
        interaction_id = await replayer(hub, raw)
    except Exception as error:
        raise ConflictError(f"replay failed again: {type(error).__name__}: {error}") from None
    await mark_done(hub, raw.id, "ingested", interaction_id)
    return {"id": raw.id, "status": "ingested", "interaction_id": interaction_id}
