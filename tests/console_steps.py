"""Console steps the tests share: an agent signed in with the cookie (the CSRF token), an
inquiry by e-mail, an agent's teams set, and hostile mail received through the intake."""

from __future__ import annotations

import re
from email.message import EmailMessage

import httpx

from channels.email.inbound import take_message
from hub.context import Hub
from hub.intake import accept_inbound
from hub.mailboxes import keep_raw
from hub.models import Agent
from hub.values import Inbound
from tests.conftest import SignedIn
from tests.console_client import PASSWORD


async def sign_in(client: httpx.AsyncClient, agent: SignedIn) -> str:
    """Sign in with the cookie; the console's CSRF token."""
    await client.post("/login", data={"email": agent.email, "password": PASSWORD})
    page = await client.get("/console")
    assert page.status_code == 200
    return re.search(r'data-csrf="([^"]+)"', page.text).group(1)


async def an_inquiry(
    hub: Hub, sender: str = "anna@example.com", external_id: str = "<q-1@example.com>", **extra
) -> tuple[int, int]:
    result = await accept_inbound(
        hub,
        Inbound(
            channel="email",
            sender_kind="email",
            sender=sender,
            sender_name="Anna Schmidt",
            external_id=external_id,
            subject="Lieferzeit",
            text="Wann kommt meine Bestellung?",
            **extra,
        ),
    )
    return result.customer_id, result.conversation_id


async def set_teams(hub: Hub, agent: SignedIn, teams: list[str]) -> None:
    async with hub.work() as work:
        row = await work.session.get(Agent, agent.id)
        row.teams = teams


HOSTILE_HTML = """<html><body><p>Hallo!</p>
<script>parent.document.title = 'pwned'</script>
<img src="x" onerror="parent.document.title = 'pwned'">
<img src="http://tracker.example/pixel.png" alt="pixel">
<a href="javascript:alert(1)">klick</a></body></html>"""


def hostile_mail(extra_parts: bool = True) -> bytes:
    mail = EmailMessage()
    mail["From"] = "Mallory <mallory@example.com>"
    mail["To"] = "service@omnihub.test"
    mail["Subject"] = "Rechnung"
    mail["Message-ID"] = "<hostile-1@example.com>"
    mail.set_content("Hallo!")
    mail.add_alternative(HOSTILE_HTML, subtype="html")
    if extra_parts:
        mail.add_attachment(
            b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>",
            maintype="image",
            subtype="svg+xml",
            filename="bild.svg",
        )
    return bytes(mail)


async def receive_mail(hub: Hub, content: bytes, uid: int = 1) -> int:
    raw = await keep_raw(hub, "email", "test:INBOX", 1, uid, content)
    outcome = await take_message(hub, raw, 10_000_000)
    assert outcome.interaction_id is not None
    return outcome.interaction_id
