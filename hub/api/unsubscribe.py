"""`/unsubscribe/{token}`: the recipient's own page, and RFC 8058 one-click unsubscribe.

No sign-in and no cookie: the signed token is the only credential, as mailbox
providers send the one-click POST without either. `GET` never changes
anything (link scanners fetch every URL in a message); it shows a button for
the same POST. `POST` answers 200 with a page, never a redirect. A malformed
or forged token gets a plain error page (400) and changes nothing.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from hub.api.deps import get_hub
from hub.campaigns.unsubscribe import (
    Unsubscription,
    do_resubscribe,
    do_unsubscribe,
    is_unsubscribed,
    read_token,
)
from hub.context import Hub
from hub.errors import HubError
from templates import TEMPLATE_DIR

router = APIRouter(prefix="/unsubscribe", tags=["public pages"])
pages = Jinja2Templates(directory=str(TEMPLATE_DIR))


@router.get("/{token}", response_class=HTMLResponse)
async def unsubscribe_page(token: str, request: Request, hub: Hub = Depends(get_hub)) -> Any:
    """A page with the button; it unsubscribes nobody by itself."""
    try:
        unsubscription = read_token(hub, token)
    except HubError as error:
        return _error(request, error)
    async with hub.work() as work:
        done = await is_unsubscribed(hub, work, unsubscription)
    return _page(request, token, unsubscription, "unsubscribed" if done else "ask")


@router.post("/{token}", response_class=HTMLResponse)
async def unsubscribe(token: str, request: Request, hub: Hub = Depends(get_hub)) -> Any:
    """One-click unsubscribe (RFC 8058): marketing to the address stops at once."""
    try:
        unsubscription = read_token(hub, token)
    except HubError as error:
        return _error(request, error)
    async with hub.work() as work:
        await do_unsubscribe(hub, work, unsubscription)
    return _page(request, token, unsubscription, "unsubscribed")


@router.post("/{token}/undo", response_class=HTMLResponse)
async def resubscribe(token: str, request: Request, hub: Hub = Depends(get_hub)) -> Any:
    """Take the unsubscription back."""
    try:
        unsubscription = read_token(hub, token)
    except HubError as error:
        return _error(request, error)
    async with hub.work() as work:
        await do_resubscribe(hub, work, unsubscription)
    return _page(request, token, unsubscription, "resubscribed")


def _page(request: Request, token: str, unsubscription: Unsubscription, state: str) -> Any:
    return pages.TemplateResponse(
        request,
        "unsubscribe.html",
        {"token": token, "address": unsubscription.address, "state": state},
    )


def _error(request: Request, error: HubError) -> Any:
    return pages.TemplateResponse(
        request, "unsubscribe.html", {"error": error.message}, status_code=400
    )
