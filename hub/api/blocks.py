"""`/api/blocks`: add, list and lift blocks on addresses, numbers and customers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from hub.api.deps import current_agent, get_hub, require
from hub.api.schemas import BlockIn
from hub.blocks import block_view, do_add_block, do_lift_block, list_blocks
from hub.context import Hub
from hub.identity import normalise_identity
from hub.models import Agent

router = APIRouter(prefix="/api/blocks", tags=["blocks and consents"])


@router.get("")
async def blocks(
    email: str | None = Query(default=None, max_length=320),
    phone: str | None = Query(default=None, max_length=50),
    customer_id: int | None = None,
    active: bool = True,
    before: int | None = None,
    limit: int = Query(default=50, ge=1, le=500),
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> dict[str, Any]:
    """Blocks, newest first, filtered by address, number or customer; `next` pages on."""
    kind, value = None, None
    if email is not None or phone is not None:
        kind = "email" if email is not None else "phone"
        value = normalise_identity(kind, email or phone or "", hub.settings.default_region)
    async with hub.sessions() as session:
        rows, after = await list_blocks(session, limit, before, kind, value, customer_id, active)
    return {"blocks": [block_view(b) for b in rows], "next": after}


@router.post("", status_code=201)
async def add_block(
    body: BlockIn, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> dict[str, Any]:
    async with hub.work() as work:
        block = await do_add_block(
            work,
            agent.id,
            body.kind,
            body.value,
            body.reason,
            hub.settings.default_region,
            body.scope,
            body.note,
        )
        return block_view(block)


@router.delete("/{block_id}")
async def lift_block(
    block_id: int, hub: Hub = Depends(get_hub), agent: Agent = Depends(require("supervisor"))
) -> dict[str, Any]:
    """Lift a block (it stays on record, with who lifted it and when)."""
    async with hub.work() as work:
        return block_view(await do_lift_block(work, agent.id, block_id))
