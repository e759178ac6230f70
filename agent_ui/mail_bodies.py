"""Showing what customers sent without letting it act: e-mail HTML and attachments.

E-mail HTML was sanitised with nh3 when it was stored; it is cleaned again on
the way out (a stored row may predate a rule) and served as a document of its
own, for an iframe sandboxed without `allow-same-origin` or scripts. Its
Content-Security-Policy allows no script, no frame, no form, and no image from
the network until the agent asks for them (`images=1`): a tracking pixel
learns nothing by the agent merely opening the mail.

Attachments are always downloads: `Content-Disposition: attachment`, the
neutral `application/octet-stream`, `X-Content-Type-Options: nosniff` and a
sandboxing CSP, so an HTML or SVG file a customer sent never runs in the
hub's origin.
"""

from __future__ import annotations

from urllib.parse import quote

import nh3
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from agent_ui.console import check_customer_visible
from hub.api.deps import current_agent, get_hub
from hub.context import Hub
from hub.errors import NotFoundError
from hub.models import Agent, Attachment, Conversation, Interaction
from hub.visibility import may_see

router = APIRouter(prefix="/console", include_in_schema=False)

URL_SCHEMES = nh3.ALLOWED_URL_SCHEMES | {"cid"}
IMAGES_OFF = "data:"
IMAGES_ON = "data: https: http:"
FRAME_HEAD = (
    '<!doctype html><html><head><meta charset="utf-8">'
    '<meta name="referrer" content="no-referrer"><base target="_blank">'
    "<style>body{font:14px/1.45 system-ui,sans-serif;margin:.5rem;color:#1d2430;"
    "overflow-wrap:anywhere}img{max-width:100%;height:auto}</style></head><body>"
)


def body_policy(images: bool) -> str:
    return (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"img-src {IMAGES_ON if images else IMAGES_OFF}; "
        "form-action 'none'; frame-ancestors 'self'; base-uri 'none'; sandbox allow-popups"
    )


def safe_headers(policy: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "private, no-store",
    }


async def _check_visible(session: object, agent: Agent, interaction: Interaction) -> None:
    conversation = await session.get(Conversation, interaction.conversation_id or 0)  # type: ignore[attr-defined]
    if conversation is not None:
        if not may_see(agent, conversation):
            raise NotFoundError(f"no message {interaction.id}")
        return
    await check_customer_visible(session, agent, interaction.customer_id)  # type: ignore[arg-type]


@router.get("/interactions/{interaction_id}/body")
async def mail_body(
    interaction_id: int,
    images: bool = Query(default=False),
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> Response:
    async with hub.sessions() as session:
        interaction = await session.get(Interaction, interaction_id)
        if interaction is None or not interaction.html:
            raise NotFoundError(f"no e-mail body for {interaction_id}")
        await _check_visible(session, agent, interaction)
        cleaned = nh3.clean(interaction.html, url_schemes=URL_SCHEMES)
    return Response(
        FRAME_HEAD + cleaned + "</body></html>",
        media_type="text/html; charset=utf-8",
        headers=safe_headers(body_policy(images)),
    )


def content_disposition(filename: str) -> str:
    """RFC 6266: an ASCII fallback and the exact name in RFC 8187 encoding."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\;' else "_" for c in filename
    )
    return (
        f"attachment; filename=\"{fallback or 'attachment'}\"; filename*=UTF-8''{quote(filename)}"
    )


@router.get("/attachments/{attachment_id}")
async def attachment(
    attachment_id: int, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> Response:
    async with hub.sessions() as session:
        found = await session.get(Attachment, attachment_id)
        if found is None or found.content is None:
            raise NotFoundError(f"no stored attachment {attachment_id}")
        interaction = await session.get(Interaction, found.interaction_id)
        assert interaction is not None
        await _check_visible(session, agent, interaction)
    headers = safe_headers("default-src 'none'; sandbox")
    headers["Content-Disposition"] = content_disposition(found.filename)
    return Response(found.content, media_type="application/octet-stream", headers=headers)
