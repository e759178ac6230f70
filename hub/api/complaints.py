"""`/api/complaints`: open, list, read and move complaints."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from hub.api.deps import current_agent, get_hub
from hub.api.schemas import ComplaintIn, ComplaintPatch
from hub.complaints import (
    complaint_view,
    do_open_complaint,
    do_update_complaint,
    get_complaint,
    linked_conversations,
    list_complaints,
)
from hub.context import Hub
from hub.models import Agent, Complaint

router = APIRouter(prefix="/api/complaints", tags=["complaints"])


async def _full_view(session: Any, complaint: Complaint) -> dict[str, Any]:
    return {
        **complaint_view(complaint),
        "conversation_ids": await linked_conversations(session, complaint.id),
    }


@router.get("")
async def complaints_page(
    status: str | None = Query(default=None),
    customer_id: int | None = None,
    before: int | None = None,
    limit: int = Query(default=50, ge=1, le=500),
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> dict[str, Any]:
    """Complaints, newest first, keyset-paged by id (`next` goes back as `before`)."""
    async with hub.sessions() as session:
        rows, after = await list_complaints(
            session, limit, before, status, customer_id, seen_by=agent
        )
    return {"complaints": [complaint_view(c) for c in rows], "next": after}


@router.post("", status_code=201)
async def open_complaint(
    body: ComplaintIn, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> dict[str, Any]:
    async with hub.work() as work:
        complaint = await do_open_complaint(
            work,
            agent.id,
            body.customer_id,
            body.subject,
            body.description,
            body.severity,
            body.due_at,
            tuple(body.conversation_ids),
        )
        await work.session.flush()
        return await _full_view(work.session, complaint)


@router.get("/{complaint_id}")
async def read_complaint(
    complaint_id: int, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> dict[str, Any]:
    async with hub.sessions() as session:
        return await _full_view(session, await get_complaint(session, complaint_id))


@router.patch("/{complaint_id}")
async def update_complaint(
    complaint_id: int,
    body: ComplaintPatch,
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> dict[str, Any]:
    async with hub.work() as work:
        complaint = await get_complaint(work.session, complaint_id)
        changes = body.model_dump(exclude_unset=True)
        await do_update_complaint(work, agent.id, complaint, changes)
        await work.session.flush()
        return await _full_view(work.session, complaint)
