"""The console's pages: sign-in at `/`, sign-out, and `/console`.

Sign-in sets a signed, HttpOnly, SameSite=Lax session cookie holding the agent's
id. A wrong e-mail and a wrong password get the same answer in the same time.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import exists, select

from hub.agents import authenticate
from hub.api.deps import get_hub
from hub.context import Hub
from hub.conversations import list_conversations
from hub.models import Agent, Complaint, Customer
from templates import TEMPLATE_DIR

router = APIRouter(include_in_schema=False)
pages = Jinja2Templates(directory=str(TEMPLATE_DIR))


@router.get("/")
async def signin_page(request: Request) -> Response:
    if isinstance(request.session.get("agent_id"), int):
        return RedirectResponse("/console", status_code=303)
    return pages.TemplateResponse(request, "signin.html")


@router.post("/login")
async def login(request: Request, hub: Hub = Depends(get_hub)) -> Response:
    is_json = request.headers.get("content-type", "").startswith("application/json")
    credentials = await (request.json() if is_json else request.form())
    email, password = str(credentials.get("email", "")), str(credentials.get("password", ""))
    async with hub.sessions() as session:
        agent = await authenticate(session, email, password)
    if agent is None:
        if is_json:
            return JSONResponse({"detail": "wrong e-mail or password"}, status_code=401)
        return pages.TemplateResponse(
            request,
            "signin.html",
            {"error": "Wrong e-mail or password.", "email": email},
            status_code=401,
        )
    request.session.clear()
    request.session["agent_id"] = agent.id
    if is_json:
        return JSONResponse({"id": agent.id, "name": agent.name, "role": agent.role})
    return RedirectResponse("/console", status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/", status_code=303)


@router.get("/console")
async def console(
    request: Request, before: int | None = None, hub: Hub = Depends(get_hub)
) -> Response:
    agent_id = request.session.get("agent_id")
    async with hub.sessions() as session:
        agent = await session.get(Agent, agent_id) if isinstance(agent_id, int) else None
        if agent is None:
            return RedirectResponse("/", status_code=303)
        rows, after = await list_conversations(session, 50, before, "open")
        table = [await _row(session, row) for row in rows]
    return pages.TemplateResponse(
        request, "console.html", {"agent": agent, "conversations": table, "next": after}
    )


async def _row(session: Any, conversation: Any) -> dict[str, Any]:
    customer = await session.get(Customer, conversation.customer_id)
    complaint = await session.scalar(
        select(
            exists().where(
                Complaint.customer_id == conversation.customer_id, Complaint.status != "resolved"
            )
        )
    )
    return {
        "id": conversation.id,
        "channel": conversation.channel,
        "customer_id": conversation.customer_id,
        "customer_name": customer.name,
        "tier": customer.tier,
        "subject": conversation.subject,
        "queue": conversation.queue,
        "routing_reason": conversation.routing_reason,
        "complaint": complaint,
    }
