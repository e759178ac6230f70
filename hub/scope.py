"""Ids in API paths are not a way into another team's data.

Every route of the JSON API passes these checks before its own code runs (it is
a dependency of every router in `hub.api.ROUTERS`, added in `hub.app`), so a
route added later is covered without remembering to. It looks at the path's
ids and asks `hub.visibility`, the rule the console uses too:

    path parameter     the agent may go on when
    conversation_id    they may see that conversation
    customer_id        they may see some conversation of that customer
    complaint_id       they may see some conversation of the complaint's customer

Any `…_id` in a path too large for a BIGINT is 404 at once (the drivers
would fail with a 500). An id the agent may not see is answered exactly like
an id that does not exist: both are 404 naming the id, here, before the route
validates its body, so guessing ids tells nothing. Supervisors, admins and agents in no team see
everything; for them the route answers its own 404 for a missing id.
"""

from __future__ import annotations

from fastapi import Request
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.api.deps import current_agent, hub_of
from hub.errors import NotFoundError
from hub.models import Agent, Complaint, Conversation
from hub.visibility import may_see, sees_everything, visible_to

SCOPED_PARAMETERS = ("conversation_id", "customer_id", "complaint_id")
LARGEST = 2**63 - 1  # BIGINT; SQLite's INTEGER holds the same


async def check_scope(request: Request) -> None:
    """Refuse (404) a path id the signed-in agent may not see; no-op on routes without one."""
    given = request.path_params
    check_id_range(given)
    ids = {name: given[name] for name in SCOPED_PARAMETERS if name in given}
    if not ids:
        return
    agent = await current_agent(request)
    if sees_everything(agent):
        return
    async with hub_of(request).sessions() as session:
        for name, raw in ids.items():
            if not str(raw).isdigit():
                continue  # the route's own validation answers 422
            await CHECKS[name](session, agent, int(raw))


def check_id_range(path_params: dict[str, object]) -> None:
    """An id past what the database's BIGINT holds names nothing: 404, not a driver's 500."""
    for name, raw in path_params.items():
        text = str(raw)
        if name.endswith("_id") and text.lstrip("-").isdigit() and abs(int(text)) > LARGEST:
            raise NotFoundError(f"no {name.removesuffix('_id').replace('_', ' ')} {text}")


async def _check_conversation(session: AsyncSession, agent: Agent, conversation_id: int) -> None:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or not may_see(agent, conversation):
        raise NotFoundError(f"no conversation {conversation_id}")


async def _check_customer(session: AsyncSession, agent: Agent, customer_id: int) -> None:
    seen = exists().where(Conversation.customer_id == customer_id, visible_to(agent))
    if not await session.scalar(select(seen)):
        raise NotFoundError(f"no customer {customer_id}")


async def _check_complaint(session: AsyncSession, agent: Agent, complaint_id: int) -> None:
    complaint = await session.get(Complaint, complaint_id)
    if complaint is None:
        raise NotFoundError(f"no complaint {complaint_id}")
    seen = exists().where(Conversation.customer_id == complaint.customer_id, visible_to(agent))
    if not await session.scalar(select(seen)):
        raise NotFoundError(f"no complaint {complaint_id}")


CHECKS = {
    "conversation_id": _check_conversation,
    "customer_id": _check_customer,
    "complaint_id": _check_complaint,
}
