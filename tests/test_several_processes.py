"""Two hub processes on one PostgreSQL and one Redis, as a call center that outgrew one."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from hub.context import Hub
from hub.models import Campaign, Interaction, OutboxMessage
from tests.campaign_steps import add_customer, approved, start
from tests.conftest import SECRET, SignedIn
from tests.console_client import console_socket, next_of_type
from tests.peers.hub_processes import HubProcess, hub_environment, hub_processes
from tests.peers.smtp import SmtpServer


@pytest.fixture
def two_hubs(
    hub: Hub, redis_url: str, redis_stream: str, tmp_path: Path
) -> Iterator[list[HubProcess]]:
    if hub.settings.is_sqlite:
        pytest.skip("several processes share PostgreSQL (one SQLite file is one process's)")
    env = hub_environment(
        database_url=hub.settings.database_url,
        redis_url=redis_url,
        redis_stream=redis_stream,
        secret_key=SECRET,
    )
    with hub_processes(env, 2, tmp_path) as hubs:
        yield hubs


async def test_a_web_form_contact_posted_to_one_process_shows_live_on_an_agent_of_the_other(
    hub: Hub, two_hubs: list[HubProcess], supervisor: SignedIn
):
    first, second = two_hubs
    ws = await console_socket(second.base, supervisor.email)
    try:
        async with httpx.AsyncClient(base_url=first.base) as client:
            posted = await client.post(
                "/channels/webform",
                json={
                    "name": "Anna Schmidt",
                    "email": "anna@example.com",
                    "subject": "Lieferung",
                    "message": "Wo bleibt meine Bestellung?",
                    "topic": "inquiry",
                },
            )
        frame = await next_of_type(ws, "message.received")
    finally:
        await ws.close()

    assert posted.status_code == 201
    async with hub.sessions() as session:
        stored = (await session.scalars(select(Interaction))).one()
    assert frame["data"]["interaction_id"] == stored.id
    assert stored.text == "Wo bleibt meine Bestellung?"


CUSTOMERS = 300


@pytest.fixture
def two_sending_hubs(
    hub: Hub, redis_url: str, redis_stream: str, smtp_server: SmtpServer, tmp_path: Path
) -> Iterator[list[HubProcess]]:
    if hub.settings.is_sqlite:
        pytest.skip("several processes share PostgreSQL (one SQLite file is one process's)")
    env = hub_environment(
        database_url=hub.settings.database_url,
        redis_url=redis_url,
        redis_stream=redis_stream,
        secret_key=SECRET,
        smtp_host=smtp_server.host,
        smtp_port=str(smtp_server.port),
        smtp_tls="false",
        mail_from="news@omnihub.test",
        # A short hold, so that the survivor takes over soon after the kill.
        outbox_lease_seconds="2",
        campaign_rate="200",
    )
    with hub_processes(env, 2, tmp_path) as hubs:
        yield hubs


async def test_a_campaign_sent_by_two_processes_reaches_everyone_once_though_one_is_killed(
    hub: Hub,
    two_sending_hubs: list[HubProcess],
    agent: SignedIn,
    supervisor: SignedIn,
    smtp_server: SmtpServer,
):
    addresses = {f"kunde{n}@example.com" for n in range(CUSTOMERS)}
    for address in sorted(addresses):
        await add_customer(hub, address.split("@")[0], address)
    async with httpx.AsyncClient(base_url=two_sending_hubs[0].base) as client:
        campaign = await approved(client, agent, supervisor)
        assert (await start(client, campaign["id"], supervisor)).status_code == 202

    killed = await kill_the_holder_midway(hub, campaign["id"], two_sending_hubs, smtp_server)
    status = await wait_for_status(hub, campaign["id"], "done")

    received = Counter(address for m in smtp_server.messages for address in m.rcpt_tos)
    async with hub.sessions() as session:
        unknown = set(
            await session.scalars(
                select(OutboxMessage.recipient).where(
                    OutboxMessage.campaign_id == campaign["id"], OutboxMessage.status == "unknown"
                )
            )
        )
    missing = addresses - set(received)
    assert 0 < killed < CUSTOMERS
    assert status == "done"
    assert [address for address, count in received.items() if count > 1] == []
    # A message cut off before its end of data was dropped by the server and sent again,
    # once; one whose hand-off was on its way to the database at the kill is `unknown`,
    # never sent twice: at most one per SMTP connection of the killed process.
    cut_off = {address for d in smtp_server.discarded for address in d.rcpt_tos}
    assert {received[address] for address in cut_off - missing} <= {1}
    assert missing <= unknown
    assert len(missing) <= 2


async def kill_the_holder_midway(
    hub: Hub, campaign_id: int, hubs: list[HubProcess], sink: SmtpServer
) -> int:
    """SIGKILL the process sending the campaign once it is on its way; how many had arrived."""
    await sink.until_received(CUSTOMERS // 3)
    async with hub.sessions() as session:
        holder = (await session.get(Campaign, campaign_id)).holder or ""
    pid = int(holder.split(":")[1])
    (holding,) = [h for h in hubs if h.process.pid == pid]
    holding.kill()
    return len(sink.messages)


async def wait_for_status(hub: Hub, campaign_id: int, wanted: str, seconds: float = 90) -> str:
    status = ""
    async with asyncio.timeout(seconds):
        while status != wanted:
            await asyncio.sleep(0.2)
            async with hub.sessions() as session:
                status = (await session.get(Campaign, campaign_id)).status
    return status
