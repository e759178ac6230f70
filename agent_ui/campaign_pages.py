"""The console's campaign pages: the list, and one campaign's live progress bar.

Both need a signed-in agent (the session cookie); the progress page reads
`GET /api/campaigns/{id}` every two seconds with that cookie and moves its bar.
A supervisor also sees the recipients whose delivery a crash left unknown, to
reconcile by hand (the first UNKNOWN_SHOWN; the API pages through the rest).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from hub.agents import has_role
from hub.api.campaigns import campaign_view
from hub.api.deps import get_hub
from hub.campaigns.progress import campaign_messages
from hub.context import Hub
from hub.models import Agent, Campaign
from templates import TEMPLATE_DIR

router = APIRouter(include_in_schema=False)
pages = Jinja2Templates(directory=str(TEMPLATE_DIR))
PAGE = 50
UNKNOWN_SHOWN = 100


@router.get("/console/campaigns")
async def campaign_list(
    request: Request, before: int | None = None, hub: Hub = Depends(get_hub)
) -> Response:
    agent_id = request.session.get("agent_id")
    statement = select(Campaign).order_by(Campaign.id.desc()).limit(PAGE + 1)
    if before is not None:
        statement = statement.where(Campaign.id < before)
    async with hub.sessions() as session:
        agent = await session.get(Agent, agent_id) if isinstance(agent_id, int) else None
        if agent is None:
            return RedirectResponse("/", status_code=303)
        rows = list(await session.scalars(statement))
        views = [await campaign_view(session, c) for c in rows[:PAGE]]
    after = rows[PAGE - 1].id if len(rows) > PAGE else None
    return pages.TemplateResponse(
        request, "campaign_list.html", {"agent": agent, "campaigns": views, "next": after}
    )


@router.get("/console/campaigns/{campaign_id}")
async def campaign_page(
    campaign_id: int, request: Request, hub: Hub = Depends(get_hub)
) -> Response:
    agent_id = request.session.get("agent_id")
    async with hub.sessions() as session:
        agent = await session.get(Agent, agent_id) if isinstance(agent_id, int) else None
        if agent is None:
            return RedirectResponse("/", status_code=303)
        campaign = await session.get(Campaign, campaign_id)
        if campaign is None:
            return pages.TemplateResponse(
                request, "campaign_detail.html", {"agent": agent, "campaign": None}, status_code=404
            )
        view = await campaign_view(session, campaign)
        unknown, more = [], None
        if has_role(agent, "supervisor") and view["progress"]["unknown"]:
            unknown, more = await campaign_messages(
                session, campaign_id, "unknown", limit=UNKNOWN_SHOWN
            )
    context = {"agent": agent, "campaign": view, "unknown": unknown, "more_unknown": more}
    return pages.TemplateResponse(request, "campaign_detail.html", context)
