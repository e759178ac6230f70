"""Rendering the console: one Jinja2 environment, autoescaped, and what every page needs.

Every page and fragment gets the agent, their labels (`t`), their language and
the session's CSRF token. Customer-supplied text only ever reaches a template
as data, and autoescaping keeps it text: nothing a customer wrote is markup.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from agent_ui.i18n import labels, language_of
from hub.csrf import session_token
from hub.models import Agent
from templates import TEMPLATE_DIR

CHANNEL_ICONS = {
    "email": "✉",
    "sms": "✆",
    "voice": "☎",
    "phone": "☎",
    "chat": "❝",
    "webform": "☰",
    "visit": "⌂",
    "letter": "✍",
    "other": "•",
}

pages = Jinja2Templates(directory=str(TEMPLATE_DIR))
pages.env.globals["channel_icons"] = CHANNEL_ICONS


def iso(moment: datetime | date | None) -> str:
    return moment.isoformat() if moment is not None else ""


def short_time(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else ""


pages.env.filters["iso"] = iso
pages.env.filters["short_time"] = short_time

# No inline script runs on a console page: a customer's text that slipped past
# escaping still could not execute. Sockets and frames stay on our own origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def render(
    request: Request,
    name: str,
    agent: Agent | None,
    status_code: int = 200,
    language: str | None = None,
    new_token: bool = True,
    **context: Any,
) -> HTMLResponse:
    """`new_token=False` renders without starting a session (a refused sign-in sets no cookie)."""
    chosen = language_of(language or (agent.language if agent else None))
    csrf = session_token(request) if new_token else request.session.get("csrf", "")
    return pages.TemplateResponse(
        request,
        name,
        {
            "agent": agent,
            "t": labels(chosen),
            "lang": chosen,
            "csrf": csrf,
            **context,
        },
        status_code=status_code,
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )
