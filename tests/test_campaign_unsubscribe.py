"""One-click unsubscribe (RFC 8058), the unsubscribe page, and `omnihub campaign send`."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, select

from channels.email.bulk import BulkSmtpSender
from hub.campaigns.sending import CampaignSender
from hub.campaigns.unsubscribe import make_token
from hub.context import Hub
from hub.delivery import RecordingSender
from hub.models import Block
from tests.campaign_steps import add_customer, approved, outbox, start
from tests.conftest import SECRET, SignedIn
from tests.peers.smtp import SmtpServer

ROOT = Path(__file__).resolve().parent.parent
OMNIHUB = shutil.which("omnihub", path=str(Path(sys.executable).parent))


async def send_through(hub: Hub, campaign_id: int, server: SmtpServer) -> None:
    sender = BulkSmtpSender(
        server.host, server.port, mail_from="news@omnihub.test", secret_key=SECRET, tls="plain"
    )
    try:
        await CampaignSender(hub, [sender]).run(campaign_id)
    finally:
        await sender.close()


async def blocks(hub: Hub) -> int:
    async with hub.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Block)))


async def test_a_one_click_post_as_a_mailbox_provider_sends_it_excludes_the_address_next_time(
    hub: Hub,
    client: httpx.AsyncClient,
    agent: SignedIn,
    supervisor: SignedIn,
    smtp_server: SmtpServer,
):
    await add_customer(hub, "Anna", "anna@example.com")
    await add_customer(hub, "Bert", "bert@example.com")
    first = await approved(client, agent, supervisor)
    await start(client, first["id"], agent)
    await send_through(hub, first["id"], smtp_server)
    mail = next(m.message for m in smtp_server.messages if m.rcpt_tos == ("anna@example.com",))
    url = mail["List-Unsubscribe"].strip("<>")

    # As Gmail and others do: a bare POST, no cookie, no sign-in, this body.
    answer = await client.post(
        urlsplit(url).path,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    second = await approved(client, agent, supervisor, name="Summer news")
    await start(client, second["id"], agent)
    recording = RecordingSender()
    await CampaignSender(hub, [recording]).run(second["id"])

    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert answer.status_code == 200
    assert "unsubscribed" in answer.text
    assert second["preview"]["excluded_by_reason"] == {"unsubscribed": 1}
    assert [o.recipient for o in recording.sent] == ["bert@example.com"]
    rows = {r.recipient: r for r in await outbox(hub, second["id"])}
    assert rows["anna@example.com"].blocked_reasons == ["block:unsubscribe"]


async def test_opening_the_link_shows_a_button_and_unsubscribes_nobody(
    hub: Hub, client: httpx.AsyncClient
):
    token = make_token(SECRET, "email", "anna@example.com", 1)

    page = await client.get(f"/unsubscribe/{token}")

    assert page.status_code == 200
    assert f'action="/unsubscribe/{token}"' in page.text
    assert await blocks(hub) == 0


async def test_an_unsubscription_can_be_taken_back(hub: Hub, client: httpx.AsyncClient):
    token = make_token(SECRET, "email", "anna@example.com", 1)
    await client.post(f"/unsubscribe/{token}")

    again = await client.get(f"/unsubscribe/{token}")
    undone = await client.post(f"/unsubscribe/{token}/undo")

    assert f'action="/unsubscribe/{token}/undo"' in again.text
    assert undone.status_code == 200
    async with hub.sessions() as session:
        (block,) = await session.scalars(select(Block))
    assert (block.reason, block.scope) == ("unsubscribe", "marketing")
    assert block.lifted_at is not None


async def test_unsubscribing_twice_makes_one_block(hub: Hub, client: httpx.AsyncClient):
    token = make_token(SECRET, "email", "anna@example.com", 1)

    first = await client.post(f"/unsubscribe/{token}")
    second = await client.post(f"/unsubscribe/{token}")

    assert (first.status_code, second.status_code) == (200, 200)
    assert await blocks(hub) == 1


async def test_a_forged_or_malformed_token_gets_a_plain_error_page_and_changes_nothing(
    hub: Hub, client: httpx.AsyncClient
):
    forged = make_token("another-secret-that-is-long-enough-000000", "email", "x@example.com", 1)
    genuine = make_token(SECRET, "email", "anna@example.com", 1)
    tampered = genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB")

    answers = [
        await client.post(f"/unsubscribe/{token}")
        for token in (forged, tampered, "not-a-token", "e30")
    ]
    page = await client.get(f"/unsubscribe/{forged}")

    assert [a.status_code for a in answers] == [400, 400, 400, 400]
    assert page.status_code == 400
    assert "not valid" in answers[0].text
    assert await blocks(hub) == 0


async def test_omnihub_campaign_send_sends_an_approved_campaign_with_a_progress_bar(
    hub: Hub,
    client: httpx.AsyncClient,
    agent: SignedIn,
    supervisor: SignedIn,
    smtp_server: SmtpServer,
):
    for n in range(3):
        await add_customer(hub, f"Customer {n}", f"c{n}@example.com")
    await add_customer(hub, "No Consent", "none@example.com", consent=None)
    campaign = await approved(client, agent, supervisor)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    env.update(
        OMNIHUB_DATABASE_URL=hub.settings.database_url,
        OMNIHUB_SECRET_KEY=SECRET,
        OMNIHUB_SMTP_HOST=smtp_server.host,
        OMNIHUB_SMTP_PORT=str(smtp_server.port),
        OMNIHUB_SMTP_TLS="false",
        OMNIHUB_MAIL_FROM="news@omnihub.test",
    )

    done = await asyncio.to_thread(
        subprocess.run,
        [OMNIHUB or "omnihub", "campaign", "send", str(campaign["id"])],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    again = await asyncio.to_thread(
        subprocess.run,
        [OMNIHUB or "omnihub", "campaign", "send", str(campaign["id"])],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "3 sent, 1 blocked" in done.stdout
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [
        "c0@example.com",
        "c1@example.com",
        "c2@example.com",
    ]
    assert again.returncode == 2
    assert "only an approved campaign can be sent; this one is done" in again.stderr
