"""GDPR: the export holds everything; after erasure no personal value is left anywhere.

The fixture puts one person into every table that can hold personal data, by
the hub's own paths: two records (e-mail and a merged second address), mail
kept as raw bytes with an attachment, a dead letter, SMS with a complaint, a
call, a web form, a chat with its session log, consents with evidence (a
confirmed double opt-in), blocks, replies and a campaign message in the
outbox, and the audit entries all of that wrote. The scan afterwards reads
every column of every table the database has (found by reflection, so tables
added later are covered) for each personal value.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import (
    JSON,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    func,
    inspect,
    select,
    update,
)

from channels.email.wiring import replay
from hub.blocks import do_add_block
from hub.chat_log import append_frame
from hub.consents import confirmation_signer, do_confirm, do_set_consent
from hub.context import Hub
from hub.gate import Recipient, check
from hub.identity import do_attach_identity
from hub.importer import import_customers
from hub.intake import accept_inbound
from hub.models import (
    AuditEntry,
    Block,
    Complaint,
    Consent,
    Customer,
    Interaction,
    OutboxMessage,
    RawMessage,
    Suppression,
    utcnow,
)
from hub.outbox import Message, enqueue
from hub.privacy.retention import purge_history, retention_job
from hub.privacy.suppression import count_unmatchable, derive_key, do_suppress, is_suppressed
from hub.privacy.sweep import sweep_table
from hub.settings import load_settings
from hub.values import Inbound
from tests.conftest import MakeAgent, SignedIn
from tests.test_cli import OMNIHUB

NAME = "Erika Mustermann"
OTHER_NAME = "Erika M. Mustermann"
COMPANY = "Feinkost Sonnenhof"
EMAIL = "erika.mustermann@example.org"
OTHER_EMAIL = "e.mustermann@beispiel.de"
PHONE = "+4915123456789"
CHAT_ID = "chat-session-7f3a9c"
IP = "203.0.113.77"
USER_AGENT = "ErikasBrowser/7.1"
BIRTHDAY = "1984-03-07"
# Words of the message bodies, subjects, file names and attachments.
WORDS = (
    "Kaffeevollautomat",
    "Milchaufschaeumer",
    "rechnung_sonnenhof.pdf",
    "Rosenweg",
    "Wasserfilter",
    "Entkalkungstermin",
    "Ersatzteilpaket",
    "Herbstangebot",
    "Bohnenmischung",
    "Quarantaenepost",
)
PERSONAL = (
    NAME,
    OTHER_NAME,
    "Mustermann",
    COMPANY,
    EMAIL,
    OTHER_EMAIL,
    PHONE,
    PHONE.lstrip("+"),
    CHAT_ID,
    IP,
    USER_AGENT,
    BIRTHDAY,
    *WORDS,
)
SOURCE = "imap://mail.test/INBOX"


@dataclass
class Person:
    customer_id: int
    merged_id: int
    conversation_id: int


def mail(sender: str, subject: str, body: str, attachment: bytes | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = f"{NAME} <{sender}>"
    message["To"] = "service@omnihub.test"
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '.')}@example.org>"
    message.set_content(body)
    if attachment is not None:
        message.add_attachment(
            attachment,
            maintype="application",
            subtype="pdf",
            filename="rechnung_sonnenhof.pdf",
        )
    return bytes(message)


async def a_person_in_every_table(
    hub: Hub, client: httpx.AsyncClient, supervisor: SignedIn
) -> Person:
    created = await client.post(
        "/api/customers",
        json={
            "name": NAME,
            "company": COMPANY,
            "birthday": BIRTHDAY,
            "emails": [EMAIL],
        },
        headers=supervisor.headers,
    )
    assert created.status_code == 201, created.text
    customer_id = created.json()["id"]
    patched = await client.patch(
        f"/api/customers/{customer_id}",
        json={"phones": ["0151 23456789"]},
        headers=supervisor.headers,
    )
    assert patched.status_code == 200, patched.text

    # E-mail, kept raw first, with an attachment; and a dead letter naming her.
    message = mail(
        EMAIL, "Kaffeevollautomat defekt", "Der Kaffeevollautomat tropft.", b"Milchaufschaeumer"
    )
    dead_letter = b"From: " + EMAIL.encode() + b"\r\n\r\nQuarantaenepost"
    async with hub.work() as work:
        raw = RawMessage(channel="email", source=SOURCE, uidvalidity=1, uid=1, content=message)
        dead = RawMessage(
            channel="email",
            source=SOURCE,
            uidvalidity=1,
            uid=2,
            content=dead_letter,
            status="quarantined",
            attempts=3,
            error=f"cannot parse mail from {EMAIL}",
        )
        work.session.add_all([raw, dead])
    await replay(hub, raw)

    # SMS with a complaint, a call, a web form, all on the same person.
    await accept_inbound(
        hub,
        Inbound(
            channel="sms",
            sender_kind="phone",
            sender="0151 23456789",
            external_id="SM-erika-1",
            text="Lieferung an Rosenweg 5 kam kaputt an",
            is_complaint=True,
        ),
    )
    await accept_inbound(
        hub,
        Inbound(
            channel="voice",
            sender_kind="phone",
            sender=PHONE,
            external_id="CA-erika-1",
            kind="call",
            text=f"Call from {PHONE}",
            metadata={"status": "completed", "to": "+4930123456"},
        ),
    )
    await accept_inbound(
        hub,
        Inbound(
            channel="webform",
            sender_kind="email",
            sender=EMAIL,
            sender_name=NAME,
            external_id="form-erika-1",
            subject="Entkalkungstermin",
            text="Bitte einen Entkalkungstermin.",
            metadata={"name": NAME, "email": EMAIL, "ip": IP, "user_agent": USER_AGENT},
        ),
    )

    # Chat: the session's chat id joins her record, a message, and its session log.
    assert await do_attach_identity(hub, "email", EMAIL, NAME, "chat", CHAT_ID) == customer_id
    chat = await accept_inbound(
        hub,
        Inbound(
            channel="chat",
            sender_kind="chat",
            sender=CHAT_ID,
            external_id=f"{CHAT_ID}:c1",
            thread_key=CHAT_ID,
            text="Wo bekomme ich einen Wasserfilter?",
            metadata={"chat_session": CHAT_ID, "contact": {"name": NAME, "email": EMAIL}},
        ),
    )
    await append_frame(hub, CHAT_ID, {"type": "ack", "client_id": "c1"}, client_id="c1")
    await append_frame(
        hub,
        CHAT_ID,
        {"type": "message", "from": "agent", "text": "Das Ersatzteilpaket kommt, Frau Mustermann."},
        outbox_key="reply:chat:1",
    )

    # An agent's reply, queued in the outbox (no dispatcher runs here).
    replied = await client.post(
        f"/api/conversations/{chat.conversation_id}/reply",
        json={"text": "Das Ersatzteilpaket ist unterwegs, Frau Mustermann."},
        headers=supervisor.headers,
    )
    assert replied.status_code == 202, replied.text

    # A second record of her, merged into the first.
    other = await accept_inbound(
        hub,
        Inbound(
            channel="email",
            sender_kind="email",
            sender=OTHER_EMAIL,
            sender_name=OTHER_NAME,
            external_id="<bohnen@beispiel.de>",
            subject="Bohnenmischung",
            text="Welche Bohnenmischung empfehlen Sie?",
        ),
    )
    # Her SMS consent, granted on one record and revoked on the other: the merge keeps
    # the stricter and records the replaced evidence, for an undo.
    async with hub.work() as work:
        for record_id, state, text in (
            (customer_id, "granted", "Ja, Erika Mustermann möchte SMS-Angebote."),
            (other.customer_id, "revoked", None),
        ):
            record = await work.session.get(Customer, record_id)
            assert record is not None
            await do_set_consent(
                hub, work, supervisor.id, record, "sms", "marketing", state, "phone call", text, IP
            )
    merged = await client.post(
        f"/api/customers/{customer_id}/merge",
        json={"other_id": other.customer_id},
        headers=supervisor.headers,
    )
    assert merged.status_code == 200, merged.text

    async with hub.work() as work:
        customer = await work.session.get(Customer, customer_id)
        assert customer is not None
        # E-mail marketing by double opt-in, confirmed from her browser.
        email_consent = await do_set_consent(
            hub, work, supervisor.id, customer, "email", "marketing", "granted", "webform",
            "Newsletter", IP,
        )  # fmt: skip
        token = confirmation_signer(hub).dumps(
            {"consent": email_consent.id, "at": email_consent.evidence["requested_at"]}
        )
    async with hub.work() as work:
        await do_confirm(hub, work, token, IP, USER_AGENT)
    async with hub.work() as work:
        region = hub.settings.default_region
        await do_add_block(work, supervisor.id, "phone", PHONE, "sms_stop", region, "marketing")
        await do_add_block(work, supervisor.id, "email", OTHER_EMAIL, "hard_bounce", region)
        await do_add_block(
            work, supervisor.id, "customer", str(customer_id), "manual", region,
            note="Frau Mustermann wünscht keine Anrufe",
        )  # fmt: skip
        campaign = await enqueue(
            work,
            Message(
                idempotency_key=f"campaign:1:{EMAIL}",
                channel="email",
                recipient=EMAIL,
                purpose="marketing",
                subject="Herbstangebot",
                text=f"Hallo {NAME}, unser Herbstangebot.",
                customer_id=customer_id,
            ),
            hub.policy,
        )
        # As if the dispatcher had sent it.
        await work.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == campaign.id)
            .values(status="sent", sent_at=utcnow(), provider_id="<sent-1@omnihub.test>")
        )
    return Person(customer_id, other.customer_id, chat.conversation_id or 0)


# -- scanning the whole database ---------------------------------------------


def _texts(value: Any) -> list[str]:
    """A column's value as the texts a person's data could hide in."""
    if value is None or isinstance(value, bool | int | float):
        return []
    if isinstance(value, bytes | memoryview):
        return [bytes(value).decode("utf-8", "replace"), bytes(value).decode("latin-1")]
    if isinstance(value, dict | list):
        return [json.dumps(value, ensure_ascii=False)]
    text = str(value)
    texts = [text]
    if text[:1] in ("{", "["):
        with contextlib.suppress(ValueError):
            texts.append(json.dumps(json.loads(text), ensure_ascii=False))
    return texts


async def scan_database(hub: Hub, values: tuple[str, ...]) -> dict[str, set[tuple[str, str]]]:
    """Every (table, row key) holding each value, in every column of every table."""

    def tables(connection: Any) -> list[tuple[str, list[str]]]:
        inspector = inspect(connection)
        return [
            (name, inspector.get_pk_constraint(name)["constrained_columns"])
            for name in inspector.get_table_names()
        ]

    found: dict[str, set[tuple[str, str]]] = {value: set() for value in values}
    async with hub.engine.connect() as connection:
        for table, keys in await connection.run_sync(tables):
            result = await connection.exec_driver_sql(f'SELECT * FROM "{table}"')  # noqa: S608 - names from the schema
            for row in result.mappings():
                key = "/".join(str(row[column]) for column in keys)
                haystack = "\n".join(text for value in row.values() for text in _texts(value))
                folded = haystack.casefold()
                for value in values:
                    if value.casefold() in folded:
                        found[value].add((table, key))
    return found


SECTIONS = {
    "customers": "customers",
    "identities": "identities",
    "conversations": "conversations",
    "interactions": "history",
    "attachments": "attachments",
    "raw_messages": "raw_messages",
    "complaints": "complaints",
    "consents": "consents",
    "blocks": "blocks",
    "outbox": "outbox",
    "chat_sessions": "chat_sessions",
    "chat_frames": "chat_frames",
    "customer_merges": "merges",
    "audit_log": "audit_log",
}


def exported_keys(document: dict[str, Any]) -> set[tuple[str, str]]:
    keys = set()
    for table, section in SECTIONS.items():
        for row in document[section]:
            keys.add((table, str(row.get("id", row.get("session")))))
    for table, rows in document["other"].items():
        keys |= {(table, str(row.get("id"))) for row in rows}
    return keys


def exported_text(document: Any) -> str:
    """The export as text, with every base64 payload decoded."""
    if isinstance(document, dict):
        if set(document) == {"base64"}:
            return base64.b64decode(document["base64"]).decode("utf-8", "replace")
        return "\n".join(f"{key}: {exported_text(value)}" for key, value in document.items())
    if isinstance(document, list):
        return "\n".join(exported_text(item) for item in document)
    return str(document)


async def figures(hub: Hub, customer_id: int) -> dict[str, Any]:
    async with hub.sessions() as session:
        by_channel = dict(
            (
                await session.execute(
                    select(Interaction.channel, func.count())
                    .where(Interaction.customer_id == customer_id)
                    .group_by(Interaction.channel)
                )
            ).all()
        )
        times = sorted(
            await session.scalars(
                select(Interaction.occurred_at).where(Interaction.customer_id == customer_id)
            )
        )
        complaints = await session.scalar(
            select(func.count()).where(Complaint.customer_id == customer_id)
        )
        outbox = dict(
            (
                await session.execute(
                    select(OutboxMessage.id, OutboxMessage.status).where(
                        OutboxMessage.customer_id == customer_id
                    )
                )
            ).all()
        )
    return {"by_channel": by_channel, "times": times, "complaints": complaints, "outbox": outbox}


# -- the tests -----------------------------------------------------------------


@pytest.fixture
async def admin(make_agent: MakeAgent) -> SignedIn:
    return await make_agent("admin")


@pytest.fixture
async def person(hub: Hub, client: httpx.AsyncClient, supervisor: SignedIn) -> Person:
    return await a_person_in_every_table(hub, client, supervisor)


async def test_the_fixture_puts_every_personal_value_into_the_database(hub: Hub, person: Person):
    found = await scan_database(hub, PERSONAL)

    assert [value for value, places in found.items() if not places] == []
    tables = {table for places in found.values() for table, _ in places}
    assert set(SECTIONS) <= tables


async def test_the_export_holds_every_row_and_every_value_the_database_holds_about_her(
    hub: Hub, client: httpx.AsyncClient, person: Person, supervisor: SignedIn
):
    found = await scan_database(hub, PERSONAL)
    async with hub.work() as work:
        # Someone else's address that merely contains hers: not hers to see.
        stranger = AuditEntry(action="block.added", entity="block", details={"value": f"x{EMAIL}"})
        work.session.add(stranger)

    answer = await client.get(
        f"/api/customers/{person.customer_id}/export", headers=supervisor.headers
    )

    assert answer.status_code == 200, answer.text
    assert "attachment" in answer.headers["content-disposition"]
    document = answer.json()
    missing = {place for places in found.values() for place in places} - exported_keys(document)
    assert missing == set()
    text = exported_text(document).casefold()
    assert [value for value in PERSONAL if value.casefold() not in text] == []
    assert {row["id"] for row in document["customers"]} == {person.customer_id, person.merged_id}
    evidence = {c["channel"]: c["evidence"] for c in document["consents"]}
    assert evidence["email"]["confirmed_ip"] == IP
    assert evidence["email"]["confirmed_user_agent"] == USER_AGENT
    assert evidence["sms"]["source"] == "phone call"
    assert {row["purpose"] for row in document["outbox"]} == {"service", "marketing"}
    assert stranger.id not in {row["id"] for row in document["audit_log"]}


async def test_after_erasure_no_personal_value_is_left_in_any_table(
    hub: Hub, client: httpx.AsyncClient, person: Person, admin: SignedIn
):
    answer = await client.post(f"/api/customers/{person.customer_id}/erase", headers=admin.headers)

    assert answer.status_code == 200, answer.text
    found = await scan_database(hub, PERSONAL)
    assert {value: sorted(places) for value, places in found.items() if places} == {}


async def test_erasure_keeps_the_figures_counts_per_channel_times_complaints_and_statuses(
    hub: Hub, client: httpx.AsyncClient, person: Person, admin: SignedIn
):
    before = await figures(hub, person.customer_id)

    answer = await client.post(f"/api/customers/{person.customer_id}/erase", headers=admin.headers)

    after = await figures(hub, person.customer_id)
    assert after["by_channel"] == before["by_channel"]
    assert set(before["by_channel"]) >= {"email", "sms", "voice", "webform", "chat"}
    assert after["times"] == before["times"]
    assert after["complaints"] == before["complaints"] == 1
    # What was still queued will never go out now; every other status is kept.
    assert after["outbox"] == {
        key: "blocked" if status == "queued" else status for key, status in before["outbox"].items()
    }
    assert "sent" in after["outbox"].values()
    counts = answer.json()["counts"]
    assert counts["interactions_by_channel"] == before["by_channel"]
    async with hub.sessions() as session:
        customer = await session.get(Customer, person.customer_id)
        assert customer is not None and customer.name == "" and customer.birthday is None


async def test_erasure_is_audited_without_personal_values_and_the_export_is_audited_too(
    hub: Hub, client: httpx.AsyncClient, person: Person, admin: SignedIn, supervisor: SignedIn
):
    await client.get(f"/api/customers/{person.customer_id}/export", headers=supervisor.headers)
    await client.post(f"/api/customers/{person.customer_id}/erase", headers=admin.headers)

    async with hub.sessions() as session:
        entries = list(
            await session.scalars(
                select(AuditEntry).where(
                    AuditEntry.entity == "customer", AuditEntry.entity_id == person.customer_id
                )
            )
        )
    actions = [(entry.action, entry.actor_agent_id) for entry in entries]
    assert ("customer.exported", supervisor.id) in actions
    assert ("customer.erased", admin.id) in actions
    # Consent changes were audited when they happened (and kept, without the IP).
    assert {"consent.set", "consent.confirmed"} <= {action for action, _ in actions}
    erased = next(entry for entry in entries if entry.action == "customer.erased")
    assert erased.details["counts"]["identities"] == 4
    assert "Mustermann" not in json.dumps(erased.details, ensure_ascii=False)


async def test_an_erased_address_is_suppressed_from_marketing_but_a_service_reply_may_go(
    hub: Hub, client: httpx.AsyncClient, person: Person, admin: SignedIn
):
    await client.post(f"/api/customers/{person.customer_id}/erase", headers=admin.headers)
    key = hub.policy.suppression_key or b""

    async with hub.sessions() as session:
        assert await is_suppressed(session, EMAIL, key=key)
        assert await is_suppressed(session, EMAIL.upper(), key=key)
        assert await is_suppressed(session, PHONE, key=key)
        assert await is_suppressed(session, OTHER_EMAIL, key=key)
        assert not await is_suppressed(session, "someone.else@example.org", key=key)
        marketing = await check(session, Recipient(None, "email", EMAIL), "marketing", hub.policy)
        service = await check(session, Recipient(None, "email", EMAIL), "service", hub.policy)
        digests = list(await session.scalars(select(Suppression.digest)))
    assert "suppressed" in marketing.reasons
    assert service.allowed
    assert len(digests) == 3 and all(len(digest) == 64 for digest in digests)


async def test_a_re_imported_erased_address_is_imported_with_marketing_blocked(
    hub: Hub, client: httpx.AsyncClient, person: Person, admin: SignedIn, tmp_path: Path
):
    await client.post(f"/api/customers/{person.customer_id}/erase", headers=admin.headers)
    path = tmp_path / "customers.csv"
    path.write_text(f"name,email\n{NAME},{EMAIL.upper()}\nMax Muster,max@example.org\n")

    report = await import_customers(hub, path, lambda done, total: None)

    assert (report.created, report.rejected, report.suppressed) == (2, [], [2])
    async with hub.sessions() as session:
        blocks = list(
            await session.scalars(
                select(Block).where(Block.value == EMAIL, Block.lifted_at.is_(None))
            )
        )
        consents = await session.scalar(select(func.count()).where(Consent.state == "granted"))
        other = await session.scalar(select(func.count()).where(Block.value == "max@example.org"))
    assert [(b.kind, b.reason, b.scope) for b in blocks] == [("email", "legal", "marketing")]
    assert consents == 0
    assert other == 0


async def test_erasing_twice_answers_the_first_erasure(
    hub: Hub, client: httpx.AsyncClient, person: Person, admin: SignedIn
):
    first = await client.post(f"/api/customers/{person.customer_id}/erase", headers=admin.headers)
    again = await client.post(f"/api/customers/{person.customer_id}/erase", headers=admin.headers)

    assert again.status_code == 200
    assert again.json()["already_erased"] is True
    assert again.json()["erased_at"] == first.json()["erased_at"]


async def test_a_record_merged_into_another_is_erased_through_the_one_that_holds_it(
    hub: Hub, client: httpx.AsyncClient, person: Person, admin: SignedIn
):
    answer = await client.post(f"/api/customers/{person.merged_id}/erase", headers=admin.headers)

    assert answer.status_code == 409
    assert str(person.customer_id) in answer.json()["detail"]


async def test_export_needs_a_supervisor_and_erasure_an_admin(
    client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    export = await client.get("/api/customers/1/export", headers=agent.headers)
    erase = await client.post("/api/customers/1/erase", headers=supervisor.headers)
    missing = await client.get("/api/customers/999/export", headers=supervisor.headers)

    assert (export.status_code, erase.status_code, missing.status_code) == (403, 403, 404)


async def test_retention_purges_history_older_than_the_setting_and_keeps_newer(
    hub: Hub, person: Person
):
    async with hub.work() as work:
        newest = await work.session.scalar(select(func.max(Interaction.id)))
        await work.session.execute(
            update(Interaction)
            .where(Interaction.id != newest)
            .values(occurred_at=utcnow() - timedelta(days=400))
        )
        await work.session.execute(
            update(RawMessage).values(created_at=utcnow() - timedelta(days=400))
        )

    counts = await purge_history(hub, 365)

    async with hub.sessions() as session:
        left = list(await session.scalars(select(Interaction.id)))
        raw = await session.scalar(select(func.count()).select_from(RawMessage))
        audited = await session.scalar(
            select(func.count()).where(AuditEntry.action == "retention.purged")
        )
    assert left == [newest]
    assert counts["interactions"] > 0 and counts["raw_messages"] == 2
    assert raw == 0 and audited == 1


def test_retention_is_read_from_omnihub_retention_days_and_unset_keeps_forever(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("OMNIHUB_RETENTION_DAYS", "730")
    assert load_settings(_env_file=None).retention_days == 730
    monkeypatch.delenv("OMNIHUB_RETENTION_DAYS")
    assert load_settings(_env_file=None).retention_days is None


async def test_suppressions_made_under_another_secret_key_are_counted_as_unmatchable(
    hub: Hub, client: httpx.AsyncClient, person: Person, admin: SignedIn
):
    await client.post(f"/api/customers/{person.customer_id}/erase", headers=admin.headers)

    async with hub.sessions() as session:
        same = await count_unmatchable(session, hub.policy.suppression_key or b"")
        other = await count_unmatchable(session, derive_key("another-secret-key-" + "x" * 20))
        found = await is_suppressed(session, EMAIL, key=derive_key("another-secret-" + "y" * 20))
    assert (same, other, found) == (0, 3, False)


async def test_the_privacy_job_purges_once_a_day_when_retention_is_set(hub: Hub, person: Person):
    async with hub.work() as work:
        await work.session.execute(
            update(Interaction).values(occurred_at=utcnow() - timedelta(days=40))
        )
    hub.settings.retention_days = 30
    stop = asyncio.Event()

    async with hub.bus.subscribe() as events:
        task = asyncio.create_task(retention_job(hub)(stop))
        purged = await asyncio.wait_for(events.get(), 30)
        stop.set()
        await task

    assert purged.type == "retention.purged"
    assert purged.data["counts"]["interactions"] > 0

    async with hub.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Interaction)) == 0


async def test_the_sweep_blanks_her_values_in_a_table_a_later_feature_adds(hub: Hub):
    later = Table(
        "later_feature_notes",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("note", String(200)),
        Column("data", JSON),
        Column("status", String(20)),
    )
    async with hub.engine.begin() as connection:
        await connection.run_sync(later.create)
        await connection.execute(
            later.insert(),
            [
                {"id": 1, "note": f"For {NAME.upper()}", "data": {"to": [EMAIL]}, "status": "sent"},
                {
                    "id": 2,
                    "note": "Frau Müller-Lüdenscheidt",
                    "data": {"n": "Müller-Lüdenscheidt"},
                    "status": None,
                },
                {"id": 3, "note": "nothing personal", "data": {}, "status": "draft"},
                {"id": 4, "note": f"{NAME}sdorf", "data": {"n": f"x{EMAIL}"}, "status": None},
            ],
        )
    terms = frozenset({NAME, EMAIL, "Müller-Lüdenscheidt"})

    async with hub.work() as work:
        changed = await sweep_table(work.session, later, terms)

    async with hub.engine.connect() as connection:
        rows = [tuple(row) for row in await connection.execute(select(later).order_by(later.c.id))]
    assert changed == 2
    assert rows == [
        (1, "For [erased]", {"to": ["[erased]"]}, "sent"),
        (2, "Frau [erased]", {"n": "[erased]"}, None),
        (3, "nothing personal", {}, "draft"),
        # Inside a longer word or address it is someone else's: left alone.
        (4, f"{NAME}sdorf", {"n": f"x{EMAIL}"}, None),
    ]


def _omnihub(args: list[str], tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    assert OMNIHUB is not None, "the omnihub console script is not installed beside python"
    env = {name: value for name, value in os.environ.items() if not name.startswith("OMNIHUB_")}
    env["OMNIHUB_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    env.update(variables)
    return subprocess.run(
        [OMNIHUB, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


def test_omnihub_retention_purge_runs_with_days_and_refuses_without_any(tmp_path: Path):
    assert _omnihub(["migrate"], tmp_path).returncode == 0

    refused = _omnihub(["retention", "purge"], tmp_path)
    by_option = _omnihub(["retention", "purge", "--days", "30"], tmp_path)
    by_setting = _omnihub(["retention", "purge"], tmp_path, OMNIHUB_RETENTION_DAYS="90")

    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "omnihub: give --days N or set OMNIHUB_RETENTION_DAYS; nothing was purged"
    )
    assert by_option.returncode == 0, by_option.stderr
    assert by_option.stdout.splitlines()[0] == "purged history older than 30 days:"
    assert "  interactions: 0" in by_option.stdout.splitlines()
    assert by_setting.stdout.splitlines()[0] == "purged history older than 90 days:"


async def test_an_admin_lifts_a_suppression_when_she_asks_for_marketing_again(
    hub: Hub, client: httpx.AsyncClient, person: Person, admin: SignedIn, supervisor: SignedIn
):
    await client.post(f"/api/customers/{person.customer_id}/erase", headers=admin.headers)
    asked = {"address": "ERIKA.Mustermann@Example.org"}

    before = await client.post("/api/suppressions/check", json=asked, headers=supervisor.headers)
    refused = await client.post("/api/suppressions/lift", json=asked, headers=supervisor.headers)
    lifted = await client.post("/api/suppressions/lift", json=asked, headers=admin.headers)
    after = await client.post("/api/suppressions/check", json=asked, headers=supervisor.headers)
    phone = await client.post(
        "/api/suppressions/check", json={"address": "0151 23456789"}, headers=supervisor.headers
    )

    assert before.json() == {"kind": "email", "suppressed": True}
    assert refused.status_code == 403
    assert lifted.json() == {"kind": "email", "lifted": True}
    assert after.json() == {"kind": "email", "suppressed": False}
    assert phone.json() == {"kind": "phone", "suppressed": True}
    async with hub.sessions() as session:
        decision = await check(session, Recipient(None, "email", EMAIL), "marketing", hub.policy)
        entry = (
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == "suppression.lifted")
            )
        ).one()
    assert "suppressed" not in decision.reasons
    assert (entry.actor_agent_id, entry.details) == (admin.id, {"kind": "email"})


async def test_the_hub_warns_at_start_about_suppressions_hashed_under_another_secret_key(
    hub: Hub, caplog: pytest.LogCaptureFixture
):
    async with hub.work() as work:
        await do_suppress(
            work.session, derive_key("an-earlier-secret-key-" + "z" * 20), "email", EMAIL
        )

    with caplog.at_level(logging.WARNING, logger="hub.privacy.retention"):
        await retention_job(hub)(asyncio.Event())

    assert [record.getMessage() for record in caplog.records] == [
        "1 suppressed addresses were hashed under another OMNIHUB_SECRET_KEY and no longer "
        "match: erased addresses they stand for may be marketed to again"
    ]
