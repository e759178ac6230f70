"""The IMAP intake under faults that really happen (issue 11), on PostgreSQL and Dovecot.

- The database goes away between the FETCH and the commit of the raw mail, and
  again between parsing a message and committing its contact: when it comes back,
  every message is on the history once, and none was flagged \\Seen before the
  hub committed it.
- The IMAP connection drops in the middle of a large FETCH: the intake
  reconnects and loses or doubles nothing.
- The folder's UIDVALIDITY changes on the server (the folder is deleted and
  made again with the same mail in it): nothing is stored twice.

The database and Dovecot are each reached through a TCP proxy the test can cut
(`tests.test_faults_database.CuttableProxy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from imapclient import IMAPClient
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

import channels.email.imap_intake
import hub.mailboxes as hub_mailboxes
from channels.email.imap_intake import ImapConfig, ImapIntake
from hub.context import Hub, Work
from hub.intake import IngestResult
from hub.models import Interaction, RawMessage
from hub.settings import Settings
from hub.values import Inbound
from tests.peers.dovecot import Dovecot
from tests.test_email_intake import mail
from tests.test_faults_database import CuttableProxy

SEEN = b"\\Seen"


class ByteCutProxy(CuttableProxy):
    """A CuttableProxy that cuts itself once `cut_after` bytes came from upstream."""

    def __init__(self, host: str, port: int, cut_after: int) -> None:
        super().__init__(host, port)
        self.cut_after = cut_after
        self.forwarded = 0
        self.cuts = 0

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while (data := await source.read(16384)) and not sink.is_closing():
                sink.write(data)
                await sink.drain()
                self.forwarded += len(data)
                if self.cuts == 0 and self.forwarded >= self.cut_after:
                    self.cuts += 1
                    self.cut()
                    self.restore()  # the next connection gets through
        finally:
            self.writers.discard(sink)
            sink.close()


@pytest.fixture
def on_postgres(database_url: str) -> None:
    if not make_url(database_url).drivername.startswith("postgresql"):
        pytest.skip("the intake's faults are tested on PostgreSQL (issue 11)")


@pytest.fixture
async def database_proxy(database_url: str, on_postgres: None) -> AsyncIterator[CuttableProxy]:
    url = make_url(database_url)
    running = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def proxied_hub(settings: Settings, database_proxy: CuttableProxy) -> AsyncIterator[Hub]:
    url = make_url(settings.database_url).set(host="127.0.0.1", port=database_proxy.port)
    through = settings.model_copy(update={"database_url": url.render_as_string(False)})
    running = Hub.create(through)
    yield running
    with contextlib.suppress(Exception):
        await running.close()


def config(host: str, port: int, user: str, password: str) -> ImapConfig:
    return ImapConfig(
        host=host, port=port, user=user, password=password, tls=False, poll_seconds=0.2
    )


def unseen_and_seen(dovecot: Dovecot, user: str, folder: str = "INBOX") -> tuple[int, int]:
    client: IMAPClient = dovecot.client(user)
    try:
        client.select_folder(folder, readonly=True)
        fetched = client.fetch(client.search(), ["FLAGS"])
        seen = sum(SEEN in data[b"FLAGS"] for data in fetched.values())
        return len(fetched) - seen, seen
    finally:
        client.logout()


async def stored_texts(hub: Hub) -> list[str]:
    async with hub.sessions() as session:
        texts = await session.scalars(select(Interaction.text).order_by(Interaction.id))
        return sorted((text or "").strip() for text in texts)


async def run_until(
    intake: ImapIntake, done: Callable[[], Awaitable[bool]], seconds: float = 20
) -> None:
    """Run the intake's two loops until `done()` holds, then stop them."""
    stop = asyncio.Event()
    task = asyncio.create_task(intake.run(stop))
    try:
        deadline = time.monotonic() + seconds
        while not await done():
            assert not task.done(), f"the intake stopped: {task.exception()!r}"
            assert time.monotonic() < deadline, "the intake did not finish in time"
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def append_numbered(dovecot: Dovecot, user: str, count: int, folder: str = "INBOX") -> None:
    for n in range(count):
        await asyncio.to_thread(dovecot.append, user, mail(body=f"Nachricht {n}"), folder)


def all_taken_and_flagged(hub: Hub, dovecot: Dovecot, user: str, count: int):
    async def done() -> bool:
        flagged = await asyncio.to_thread(unseen_and_seen, dovecot, user)
        return len(await stored_texts(hub)) >= count and flagged == (0, count)

    return done


async def test_the_database_going_away_between_fetch_and_commit_loses_and_doubles_nothing(
    hub: Hub,
    proxied_hub: Hub,
    database_proxy: CuttableProxy,
    dovecot: Dovecot,
    monkeypatch: pytest.MonkeyPatch,
):
    user = dovecot.new_user()
    await append_numbered(dovecot, user, 6)
    flags_at_cuts: list[tuple[int, int]] = []

    async def cut(seconds: float) -> None:
        flags_at_cuts.append(await asyncio.to_thread(unseen_and_seen, dovecot, user))
        database_proxy.cut()
        asyncio.get_running_loop().call_later(seconds, database_proxy.restore)

    keep = channels.email.imap_intake.keep_raw_batch

    async def keep_after_a_cut(*args, **kwargs) -> None:
        if not flags_at_cuts:  # fetched, not yet committed: the database goes for a second
            await cut(1.0)
        await keep(*args, **kwargs)

    ingest = hub_mailboxes.ingest
    ingested: list[str] = []

    async def ingest_then_cut(work: Work, inbound: Inbound, *args, **kwargs) -> IngestResult:
        result = await ingest(work, inbound, *args, **kwargs)
        ingested.append(inbound.external_id)
        if len(ingested) == 3:  # stored, not yet committed: the database restarts
            await cut(0.0)
        return result

    monkeypatch.setattr(channels.email.imap_intake, "keep_raw_batch", keep_after_a_cut)
    monkeypatch.setattr(hub_mailboxes, "ingest", ingest_then_cut)
    intake = ImapIntake(proxied_hub, config(dovecot.host, dovecot.port, user, dovecot.password))

    await run_until(intake, all_taken_and_flagged(hub, dovecot, user, 6))  # hub: not proxied

    assert flags_at_cuts == [(6, 0), (6, 0)], "nothing is flagged before its commit"
    assert len(ingested) == 7, "the third message was stored again after its rollback"
    assert database_proxy.refused >= 1, "the hub really met the database away"
    assert await stored_texts(hub) == [f"Nachricht {n}" for n in range(6)]
    async with hub.sessions() as session:
        raw = (await session.execute(select(RawMessage.status, RawMessage.attempts))).all()
    assert sorted(raw) == [("ingested", 0)] * 6, "an outage is not the message's failure"


async def test_the_imap_connection_dropping_mid_fetch_loses_and_doubles_nothing(
    on_postgres: None, hub: Hub, dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
):
    user = dovecot.new_user()
    body = "Zeile mit etwas Text, damit der FETCH groß wird.\n" * 500  # ~25 kB a message
    raws = [mail(body=f"Nachricht {n}\n{body}") for n in range(60)]
    client = await asyncio.to_thread(dovecot.client, user)
    try:
        await asyncio.to_thread(client.multiappend, "INBOX", raws)
    finally:
        await asyncio.to_thread(client.logout)
    monkeypatch.setattr(channels.email.imap_intake, "FETCH_BATCH", 20)  # ~500 kB a FETCH
    # Cut once 800 kB of FETCH responses went through: inside the second FETCH.
    proxy = ByteCutProxy(dovecot.host, dovecot.port, cut_after=800_000)
    await proxy.start()
    try:
        source = config("127.0.0.1", proxy.port, user, dovecot.password)
        await run_until(ImapIntake(hub, source), all_taken_and_flagged(hub, dovecot, user, 60))
    finally:
        await proxy.stop()

    assert proxy.cuts == 1
    texts = await stored_texts(hub)
    assert sorted(text.split("\n")[0] for text in texts) == sorted(
        f"Nachricht {n}" for n in range(60)
    )
    async with hub.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(RawMessage)) == 60


async def test_a_folder_made_again_with_a_new_uidvalidity_stores_nothing_twice(
    on_postgres: None, hub: Hub, dovecot: Dovecot
):
    user = dovecot.new_user()
    raws = [mail(body=f"Nachricht {n}") for n in range(3)]
    client = await asyncio.to_thread(dovecot.client, user)
    try:
        await asyncio.to_thread(client.create_folder, "Support")
        await asyncio.to_thread(client.multiappend, "Support", raws)
    finally:
        await asyncio.to_thread(client.logout)
    source = ImapConfig(
        host=dovecot.host,
        port=dovecot.port,
        user=user,
        password=dovecot.password,
        tls=False,
        folder="Support",
    )
    first = await sync(hub, dovecot, user, source)

    def make_folder_again() -> int:
        client = dovecot.client(user)
        try:
            client.delete_folder("Support")
            client.create_folder("Support")
            client.multiappend("Support", [*raws, mail(body="Nachricht 3")])
            return int(client.select_folder("Support")[b"UIDVALIDITY"])
        finally:
            client.logout()

    uidvalidity = await asyncio.to_thread(make_folder_again)
    second = await sync(hub, dovecot, user, source)

    assert uidvalidity != first.uidvalidity, "Dovecot gave the new folder a new UIDVALIDITY"
    assert (first.read, second.read) == (3, 4), "the resync read the whole folder again"
    assert await stored_texts(hub) == [f"Nachricht {n}" for n in range(4)]
    assert await asyncio.to_thread(unseen_and_seen, dovecot, user, "Support") == (0, 4)


class Synced:
    def __init__(self, read: int, uidvalidity: int) -> None:
        self.read, self.uidvalidity = read, uidvalidity


async def sync(hub: Hub, dovecot: Dovecot, user: str, source: ImapConfig) -> Synced:
    intake = ImapIntake(hub, source)
    client = await asyncio.to_thread(dovecot.client, user)
    try:
        read = await intake.sync(client)
        selected = await asyncio.to_thread(client.select_folder, source.folder)
        return Synced(read, int(selected[b"UIDVALIDITY"]))
    finally:
        await asyncio.to_thread(client.logout)
