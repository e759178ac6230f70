"""Jinja2 templates: console pages, the web form, the chat widget, message templates.

They ship inside the wheel; code finds them through `TEMPLATE_DIR`. Message
templates (`messages/NAME.LANG.txt`, first line `Subject: …`) are rendered in a
sandbox where an undefined field is an error, never a blank in a sent message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

TEMPLATE_DIR = Path(__file__).parent
MESSAGE_DIR = TEMPLATE_DIR / "messages"
FALLBACK_LANGUAGE = "en"

_messages = SandboxedEnvironment(
    loader=FileSystemLoader(MESSAGE_DIR),
    undefined=StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)


_html = SandboxedEnvironment(
    loader=FileSystemLoader(MESSAGE_DIR),
    undefined=StrictUndefined,
    autoescape=True,
)


def render_html(name: str, context: dict[str, Any]) -> str:
    """An HTML message part (`messages/NAME.html`), autoescaped."""
    return _html.get_template(f"{name}.html").render(context)


def render_message(name: str, language: str | None, context: dict[str, Any]) -> tuple[str, str]:
    """(subject, text) of a message template in the customer's language, or English."""
    wanted = (language or FALLBACK_LANGUAGE).lower()[:2]
    chosen = wanted if (MESSAGE_DIR / f"{name}.{wanted}.txt").exists() else FALLBACK_LANGUAGE
    rendered = _messages.get_template(f"{name}.{chosen}.txt").render(context)
    first, _, body = rendered.partition("\n")
    return first.removeprefix("Subject:").strip(), body.lstrip("\n")
