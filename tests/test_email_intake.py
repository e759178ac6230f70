"""The IMAP intake against a real Dovecot: every mail into the hub exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
from imapclient import IMAPClient
from sqlalchemy import func, select

from channels.email.imap_intake import ImapConfig, ImapIntake
from channels.email.inbound import take_message
from hub.app import create_app
from hub.context import Hub
from hub.mailboxes import save_mailbox_state
from hub.models import Customer, Identity, Interaction, RawMessage, utcnow
from tests.conftest import SECRET
from tests.peers.dovecot import Dovecot

ROOT = Path(__file__).resolve().parent.parent


def mail(
    sender: str = "anna@example.com",
    subject: str = "Lieferung",
    body: str = "Wo?",
    message_id: str | None = None,
    **headers: str,
) -> bytes:
    message = EmailMessage()
    message["From"] = f"Anna Schmidt <{sender}>"
    message["To"] = "service@hub.example"
    message["Subject"] = subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = message_id or make_msgid(domain="example.com")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return bytes(message)


def config(dovecot: Dovecot, user: str, **extra) -> ImapConfig:
    return ImapConfig(
        host=dovecot.host,
        port=dovecot.port,
        user=user,
        password=dovecot.password,
        tls=False,
        poll_seconds=0.2,
        **extra,
    )


async def sync_once(hub: Hub, dovecot: Dovecot, user: str, **extra) -> int:
    intake = ImapIntake(hub, config(dovecot, user, **extra))
    client = await asyncio.to_thread(dovecot.client, user)
    try:
        return await intake.sync(client)
    finally:
        await asyncio.to_thread(client.logout)


async def messages(hub: Hub) -> list[Interaction]:
    async with hub.sessions() as session:
        return list(await session.scalars(select(Interaction).order_by(Interaction.id)))


def flags(dovecot: Dovecot, user: str, folder: str = "INBOX") -> list[tuple[bytes, ...]]:
    client: IMAPClient = dovecot.client(user)
    try:
        client.select_folder(folder, readonly=True)
        fetched = client.fetch(client.search(), ["FLAGS"])
        return [fetched[uid][b"FLAGS"] for uid in sorted(fetched)]
    finally:
        client.logout()


@pytest.fixture
async def running_intake(hub: Hub, dovecot: Dovecot) -> AsyncIterator[str]:
    user = dovecot.new_user()
    stop = asyncio.Event()
    task = asyncio.create_task(ImapIntake(hub, config(dovecot, user)).run(stop))
    await asyncio.sleep(0.3)
    yield user
    stop.set()
    await asyncio.wait_for(task, 10)


async def wait_for_messages(hub: Hub, count: int, seconds: float = 10.0) -> float:
    started = time.monotonic()
    while len(await messages(hub)) < count:
        if time.monotonic() - started > seconds:
            pytest.fail(f"fewer than {count} messages arrived within {seconds} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_a_mail_appended_to_the_inbox_lands_on_the_senders_history_while_idling(
    hub: Hub, dovecot: Dovecot, running_intake: str
):
    await asyncio.to_thread(dovecot.append, running_intake, mail(body="Wo bleibt die Ware?"))

    await wait_for_messages(hub, 1)

    (stored,) = await messages(hub)
    assert (stored.channel, stored.sender, stored.subject) == (
        "email",
        "anna@example.com",
        "Lieferung",
    )
    assert stored.text.strip() == "Wo bleibt die Ware?"


async def test_a_mail_from_a_known_address_lands_on_that_customer(hub: Hub, dovecot: Dovecot):
    async with hub.work() as work:
        known = Customer(name="Anna Schmidt", tier="A")
        work.session.add(known)
        await work.session.flush()
        work.session.add(Identity(customer_id=known.id, kind="email", value="anna@example.com"))
    user = dovecot.new_user()
    await asyncio.to_thread(dovecot.append, user, mail(sender="Anna@Example.com"))

    await sync_once(hub, dovecot, user)

    (stored,) = await messages(hub)
    assert stored.customer_id == known.id


async def test_fetching_marks_nothing_and_the_mail_is_flagged_seen_only_after_commit(
    hub: Hub, dovecot: Dovecot
):
    user = dovecot.new_user()
    await asyncio.to_thread(dovecot.append, user, mail())
    flags_while_taking: list[list[tuple[bytes, ...]]] = []

    async def take_and_look(hub_: Hub, raw: RawMessage, limit: int):
        flags_while_taking.append(await asyncio.to_thread(flags, dovecot, user))
        return await take_message(hub_, raw, limit)

    intake = ImapIntake(hub, config(dovecot, user), take=take_and_look)
    client = await asyncio.to_thread(dovecot.client, user)
    try:
        await intake.sync(client)
    finally:
        await asyncio.to_thread(client.logout)

    assert flags_while_taking == [[()]]
    assert flags(dovecot, user) == [(b"\\Seen",)]


async def test_reading_keeps_the_raw_mail_and_flags_nothing_until_it_was_taken(
    hub: Hub, dovecot: Dovecot
):
    user = dovecot.new_user()
    for n in range(3):
        await asyncio.to_thread(dovecot.append, user, mail(body=f"Nachricht {n}"))
    intake = ImapIntake(hub, config(dovecot, user))
    client = await asyncio.to_thread(dovecot.client, user)
    try:
        read = await intake.read_new(client)
        kept_only = (await raw_statuses(hub), len(await messages(hub)), flags(dovecot, user))
        acknowledged_early = await intake.acknowledge(client)
        taken = await intake.take_waiting()
        acknowledged = await intake.acknowledge(client)
    finally:
        await asyncio.to_thread(client.logout)

    assert read == 3
    assert kept_only == (["received"] * 3, 0, [()] * 3)
    assert (acknowledged_early, taken, acknowledged) == (0, 3, 3)
    assert await raw_statuses(hub) == ["ingested"] * 3
    assert flags(dovecot, user) == [(b"\\Seen",)] * 3


async def test_mail_kept_before_a_restart_is_taken_and_flagged_by_the_next_run(
    hub: Hub, dovecot: Dovecot
):
    user = dovecot.new_user()
    await asyncio.to_thread(dovecot.append, user, mail(body="vor dem Neustart"))
    client = await asyncio.to_thread(dovecot.client, user)
    try:
        await ImapIntake(hub, config(dovecot, user)).read_new(client)
    finally:
        await asyncio.to_thread(client.logout)
    stop = asyncio.Event()
    task = asyncio.create_task(ImapIntake(hub, config(dovecot, user)).run(stop))
    try:
        await wait_for_messages(hub, 1)
        deadline = time.monotonic() + 10
        while flags(dovecot, user) != [(b"\\Seen",)]:
            assert time.monotonic() < deadline, "the taken mail was never flagged"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)

    (stored,) = await messages(hub)
    assert stored.text.strip() == "vor dem Neustart"


async def raw_statuses(hub: Hub) -> list[str]:
    async with hub.sessions() as session:
        return list(await session.scalars(select(RawMessage.status).order_by(RawMessage.uid)))


async def test_mail_a_person_already_read_elsewhere_is_still_taken(hub: Hub, dovecot: Dovecot):
    user = dovecot.new_user()
    await asyncio.to_thread(dovecot.append, user, mail(), "INBOX", (b"\\Seen",))

    taken = await sync_once(hub, dovecot, user)

    assert taken == 1 and len(await messages(hub)) == 1


async def test_syncing_again_takes_nothing_twice(hub: Hub, dovecot: Dovecot):
    user = dovecot.new_user()
    for n in range(3):
        await asyncio.to_thread(dovecot.append, user, mail(body=f"Nachricht {n}"))

    first = await sync_once(hub, dovecot, user)
    second = await sync_once(hub, dovecot, user)

    assert (first, second) == (3, 0)
    assert len(await messages(hub)) == 3


async def test_a_changed_uidvalidity_resyncs_without_storing_anything_twice(
    hub: Hub, dovecot: Dovecot
):
    user = dovecot.new_user()
    for n in range(3):
        await asyncio.to_thread(dovecot.append, user, mail(body=f"Nachricht {n}"))
    await sync_once(hub, dovecot, user)
    source = config(dovecot, user).source
    await save_mailbox_state(hub, source, uidvalidity=1, last_uid=3)

    resynced = await sync_once(hub, dovecot, user)

    assert resynced == 3
    assert len(await messages(hub)) == 3


async def test_a_mail_without_message_id_is_taken_once_by_the_hash_of_its_bytes(
    hub: Hub, dovecot: Dovecot
):
    user = dovecot.new_user()
    raw = b"From: anna@example.com\r\nSubject: ohne ID\r\n\r\nHallo\r\n"
    await asyncio.to_thread(dovecot.append, user, raw)
    await asyncio.to_thread(dovecot.append, user, raw)

    await sync_once(hub, dovecot, user)

    (stored,) = await messages(hub)
    assert stored.external_id.startswith("sha256:")


async def test_processed_mail_can_be_moved_to_a_folder_instead_of_flagged(
    hub: Hub, dovecot: Dovecot
):
    user = dovecot.new_user()
    await asyncio.to_thread(dovecot.append, user, mail())

    await sync_once(hub, dovecot, user, processed_folder="Processed")

    assert flags(dovecot, user) == []
    assert len(flags(dovecot, user, "Processed")) == 1


async def test_a_mail_whose_sender_cannot_be_read_is_quarantined_after_three_tries(
    hub: Hub, dovecot: Dovecot
):
    user = dovecot.new_user()
    await asyncio.to_thread(dovecot.append, user, b"From: \r\nSubject: ???\r\n\r\n\xff\xfe\r\n")
    await asyncio.to_thread(dovecot.append, user, mail(body="danach"))

    await sync_once(hub, dovecot, user)

    async with hub.sessions() as session:
        dead = (
            await session.scalars(select(RawMessage).where(RawMessage.status == "quarantined"))
        ).one()
    assert dead.attempts == 3 and "sender" in dead.error
    assert len(flags(dovecot, user, "Quarantine")) == 1
    assert [m.text.strip() for m in await messages(hub)] == ["danach"]


async def test_automatic_mail_is_stored_without_a_conversation(hub: Hub, dovecot: Dovecot):
    user = dovecot.new_user()
    await asyncio.to_thread(
        dovecot.append, user, mail(subject="Abwesenheitsnotiz", Auto_Submitted="auto-replied")
    )

    await sync_once(hub, dovecot, user)

    (stored,) = await messages(hub)
    assert stored.conversation_id is None
    assert "auto" in stored.meta["automatic"]
    async with hub.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(RawMessage)) == 1


async def test_a_hub_killed_between_fetch_and_commit_takes_every_message_exactly_once(
    hub: Hub, dovecot: Dovecot, tmp_path
):
    user = dovecot.new_user()
    for n in range(5):
        await asyncio.to_thread(dovecot.append, user, mail(body=f"Nachricht {n}"))
    marker = tmp_path / "fetched"
    process = start_hanging_intake(hub, dovecot, user, hang_at=3, marker=marker)
    try:
        await wait_for_marker(marker, process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        process.stdout.close()
    before_restart = len(await messages(hub))

    await sync_once(hub, dovecot, user)

    stored = await messages(hub)
    assert before_restart == 2
    assert sorted(m.text.strip() for m in stored) == [f"Nachricht {n}" for n in range(5)]
    assert flags(dovecot, user) == [(b"\\Seen",)] * 5


def start_hanging_intake(hub: Hub, dovecot: Dovecot, user: str, hang_at: int, marker: Path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")},
        "OMNIHUB_DATABASE_URL": hub.settings.database_url,
        "OMNIHUB_SECRET_KEY": SECRET,
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.peers.hanging_intake",
            dovecot.host,
            str(dovecot.port),
            user,
            dovecot.password,
            str(hang_at),
            str(marker),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def wait_for_marker(marker: Path, process, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not marker.exists():  # noqa: ASYNC240 - a cheap stat in a polling test
        if process.poll() is not None:
            pytest.fail(f"the intake process ended early: {process.stdout.read().decode()}")
        if time.monotonic() > deadline:
            pytest.fail("the intake process never reached the message")
        await asyncio.sleep(0.05)


async def test_every_message_of_the_corpus_is_ingested_or_quarantined_and_the_loop_survives(
    hub: Hub, dovecot: Dovecot
):
    corpus = sorted((ROOT / "tests" / "email_corpus").glob("*.eml"))
    user = dovecot.new_user()
    for path in corpus:
        await asyncio.to_thread(dovecot.append, user, path.read_bytes())
    await asyncio.to_thread(dovecot.append, user, mail(body="nach dem Korpus"))

    taken = await sync_once(hub, dovecot, user)

    async with hub.sessions() as session:
        statuses = list(await session.scalars(select(RawMessage.status)))
    assert taken == len(corpus) + 1
    assert len(statuses) == len(corpus) + 1
    assert set(statuses) <= {"ingested", "quarantined"}
    assert "nach dem Korpus" in [(m.text or "").strip() for m in await messages(hub)]


async def test_the_intake_reconnects_after_its_connection_was_dropped(
    hub: Hub, dovecot: Dovecot, running_intake: str
):
    await asyncio.to_thread(dovecot.append, running_intake, mail(body="vorher"))
    await wait_for_messages(hub, 1)

    await asyncio.to_thread(dovecot.kick, running_intake)
    await asyncio.to_thread(dovecot.append, running_intake, mail(body="nachher"))

    await wait_for_messages(hub, 2, seconds=20)
    assert [m.text.strip() for m in await messages(hub)] == ["vorher", "nachher"]


async def test_the_running_app_reads_the_mailbox_named_by_the_imap_settings(
    hub: Hub, dovecot: Dovecot
):
    user = dovecot.new_user()
    settings = hub.settings.model_copy(
        update={
            "imap_host": dovecot.host,
            "imap_port": dovecot.port,
            "imap_user": user,
            "imap_password": dovecot.password,
            "imap_tls": False,
        }
    )
    app = create_app(settings, Hub.create(settings))

    async with app.router.lifespan_context(app):
        await asyncio.to_thread(dovecot.append, user, mail(body="über den Dienst"))
        await wait_for_messages(hub, 1)

    assert [m.text.strip() for m in await messages(hub)] == ["über den Dienst"]
