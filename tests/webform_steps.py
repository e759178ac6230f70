"""Web-form steps the tests share: a form token as the page would hold it, Anna's fields,
a post, and what the hub stored, queued and counted."""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from channels.webform.tokens import sign_form_token
from hub.context import Hub
from hub.models import Interaction, OutboxMessage

FORM = "/channels/webform"
SCREENSHOT = Path(tempfile.gettempdir()) / "webform.png"  # to look at after a run


def form_token(hub: Hub, age: float = 10.0) -> str:
    """A genuine form token, as if the form had been served `age` seconds ago."""
    return sign_form_token(hub.settings.secret_key or "", time.time() - age)


def anna(hub: Hub, **changes: Any) -> dict[str, Any]:
    fields = {
        "name": "Anna Berger",
        "email": "anna@example.com",
        "phone": "",
        "subject": "Lieferung",
        "message": "Wo bleibt meine Bestellung 4711?",
        "topic": "order",
        "form_token": form_token(hub),
    }
    return {**fields, **changes}


async def post_form(client: httpx.AsyncClient, fields: dict[str, Any], **extra: Any) -> Any:
    return await client.post(FORM, data=fields, **extra)


async def stored(hub: Hub) -> list[Interaction]:
    async with hub.sessions() as session:
        statement = select(Interaction).where(Interaction.channel == "webform")
        return list(await session.scalars(statement.order_by(Interaction.id)))


async def confirmations(hub: Hub) -> list[OutboxMessage]:
    async with hub.sessions() as session:
        statement = select(OutboxMessage).where(
            OutboxMessage.idempotency_key.startswith("webform-confirmation:")
        )
        return list(await session.scalars(statement.order_by(OutboxMessage.id)))


async def count(hub: Hub, model: type) -> int:
    async with hub.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)))


async def reference_on(client: httpx.AsyncClient, answer: httpx.Response) -> str:
    thanks = await client.get(answer.headers["location"])
    found = re.search(r'<strong id="reference">([^<]+)</strong>', thanks.text)
    assert found, thanks.text
    return found.group(1)


async def rejected_count(client: httpx.AsyncClient, reason: str) -> float:
    metrics = (await client.get("/metrics")).text
    found = re.search(rf'omnihub_webform_rejected_total\{{reason="{reason}"\}} (\S+)', metrics)
    return float(found.group(1)) if found else 0.0


def input_tag(page: str, name: str) -> str:
    found = re.search(rf'<(?:input|textarea|select)[^>]*id="field-{name}"[^>]*>', page)
    assert found, f"no control for {name}"
    return found.group(0)
