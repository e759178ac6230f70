"""`/api/customers`: lookup, create, update, the card, the history, merge and undo."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from hub.agents import has_role
from hub.api.deps import current_agent, get_hub, require
from hub.api.schemas import CustomerIn, MergeIn
from hub.context import Hub
from hub.customers import (
    create_customer,
    get_card,
    get_customer,
    lookup_customer,
    profile,
    update_customer,
)
from hub.errors import ForbiddenError
from hub.history import get_history
from hub.merge import do_merge, do_undo_merge
from hub.models import Agent

router = APIRouter(prefix="/api/customers", tags=["customers"])


def _split(body: CustomerIn) -> tuple[dict[str, Any], list[str], list[str]]:
    fields = body.model_dump(exclude_unset=True, exclude={"emails", "phones"})
    return fields, body.emails, body.phones


@router.get("/lookup")
async def lookup(
    email: str | None = Query(default=None, max_length=320),
    phone: str | None = Query(default=None, max_length=50),
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> dict[str, Any]:
    """The customer owning that e-mail address or phone number (any notation), or 404."""
    async with hub.sessions() as session:
        customer = await lookup_customer(
            session, hub.settings.default_region, email, phone, seen_by=agent
        )
        return await get_card(session, customer.id, hub.settings.card_history_size)


@router.post("", status_code=201)
async def create(
    body: CustomerIn, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> dict[str, Any]:
    fields, emails, phones = _split(body)
    async with hub.work() as work:
        customer = await create_customer(
            work.session, agent.id, hub.settings.default_region, fields, emails, phones
        )
        work.emit("customer.created", customer_id=customer.id)
        return profile(customer)


@router.patch("/{customer_id}")
async def patch(
    customer_id: int,
    body: CustomerIn,
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> dict[str, Any]:
    fields, emails, phones = _split(body)
    if "key_account_agent_id" in fields and not has_role(agent, "supervisor"):
        # The key account owns the customer's conversations (routing): not self-service.
        raise ForbiddenError("changing a customer's key account needs the supervisor role")
    async with hub.work() as work:
        customer = await get_customer(work.session, customer_id)
        await update_customer(
            work.session, agent.id, hub.settings.default_region, customer, fields, emails, phones
        )
        work.emit("customer.updated", customer_id=customer.id)
        return profile(customer)


@router.get("/{customer_id}")
async def card(
    customer_id: int, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> dict[str, Any]:
    """The customer card: profile, identities, consents and blocks, open complaints, history."""
    async with hub.sessions() as session:
        return await get_card(session, customer_id, hub.settings.card_history_size)


@router.get("/{customer_id}/history")
async def history(
    customer_id: int,
    before: str | None = Query(default=None, max_length=200),
    limit: int | None = Query(default=None, ge=1, le=500),
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> dict[str, Any]:
    """The whole cross-channel history, newest first; pass `next` back as `before`."""
    async with hub.sessions() as session:
        await get_customer(session, customer_id)
        page = await get_history(
            session, customer_id, limit or hub.settings.history_page_size, before
        )
        return {"entries": page.entries, "next": page.next}


@router.post("/{customer_id}/merge")
async def merge(
    customer_id: int,
    body: MergeIn,
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(require("supervisor")),
) -> dict[str, Any]:
    """Move everything of `other_id` onto this customer; undo with the returned merge id."""
    async with hub.work() as work:
        done = await do_merge(work, agent.id, customer_id, body.other_id)
        return {
            "merge_id": done.id,
            "customer_id": customer_id,
            "other_id": body.other_id,
            "moved": {k: len(v) for k, v in done.moved.items() if isinstance(v, list)},
        }


@router.post("/merges/{merge_id}/undo")
async def undo_merge(
    merge_id: int, hub: Hub = Depends(get_hub), agent: Agent = Depends(require("supervisor"))
) -> dict[str, Any]:
    async with hub.work() as work:
        done = await do_undo_merge(work, agent.id, merge_id)
        return {
            "merge_id": done.id,
            "customer_id": done.survivor_id,
            "other_id": done.merged_id,
            "undone_at": done.undone_at,
        }
