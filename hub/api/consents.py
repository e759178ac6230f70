"""Consents: `/api/customers/{id}/consents`, and the customer's confirmation page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from hub.api.deps import current_agent, get_hub
from hub.api.schemas import ConsentIn
from hub.consents import (
    consent_view,
    do_confirm,
    do_set_consent,
    find_pending_consent,
    list_consents,
)
from hub.context import Hub
from hub.customers import get_customer
from hub.errors import HubError
from hub.models import Agent
from templates import TEMPLATE_DIR

router = APIRouter(prefix="/api/customers", tags=["blocks and consents"])
public = APIRouter(prefix="/consents", tags=["public pages"])
pages = Jinja2Templates(directory=str(TEMPLATE_DIR))


@router.get("/{customer_id}/consents")
async def consents(
    customer_id: int, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> list[dict[str, Any]]:
    async with hub.sessions() as session:
        await get_customer(session, customer_id)
        return [consent_view(c) for c in await list_consents(session, customer_id)]


@router.put("/{customer_id}/consents")
async def set_consent(
    customer_id: int,
    body: ConsentIn,
    request: Request,
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> dict[str, Any]:
    """Record a consent. Granting marketing e-mail sends a double opt-in confirmation
    and answers `pending_confirmation` until the customer clicks its link."""
    async with hub.work() as work:
        customer = await get_customer(work.session, customer_id)
        consent = await do_set_consent(
            hub,
            work,
            agent.id,
            customer,
            body.channel,
            body.purpose,
            body.state,
            body.source,
            body.text_shown,
            request.client.host if request.client else None,
        )
        return consent_view(consent)


@public.get("/confirm/{token}", response_class=HTMLResponse)
async def confirmation_page(token: str, request: Request, hub: Hub = Depends(get_hub)) -> Any:
    """Shows a button; only its POST confirms, so a link scanner confirms nothing."""
    async with hub.sessions() as session:
        try:
            consent = await find_pending_consent(hub, session, token)
        except HubError as error:
            return _page(request, error.message, error.status_code)
    done = consent.state == "granted"
    return pages.TemplateResponse(request, "consent_confirm.html", {"token": token, "done": done})


@public.post("/confirm/{token}", response_class=HTMLResponse)
async def confirm(token: str, request: Request, hub: Hub = Depends(get_hub)) -> Any:
    try:
        async with hub.work() as work:
            await do_confirm(
                hub,
                work,
                token,
                request.client.host if request.client else None,
                request.headers.get("user-agent"),
            )
    except HubError as error:
        return _page(request, error.message, error.status_code)
    return pages.TemplateResponse(request, "consent_confirm.html", {"token": token, "done": True})


def _page(request: Request, message: str, status: int) -> Any:
    return pages.TemplateResponse(
        request, "consent_confirm.html", {"error": message}, status_code=status
    )
