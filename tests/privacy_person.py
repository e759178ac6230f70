"""One person in every table that can hold personal data, by the hub's own paths, and
the scan that reads every column of every table for her values (`tests/test_privacy.py`).

Two records (e-mail and a merged second address), mail kept as raw bytes with an
attachment, a dead letter, SMS with a complaint, a call, a web form, a chat with its
session log, consents with evidence (a confirmed double opt-in), blocks, replies and a
campaign message in the outbox, and the audit entries all of that wrote. The scan
finds the tables by reflection, so tables added later are covered.
"""

from __future__ import annotations

import base64
import contextlib
import json
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy import (
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
from hub.identity import do_attach_identity
from hub.intake import accept_inbound
from hub.models import (
    Complaint,
    Customer,
    Interaction,
    OutboxMessage,
    RawMessage,
    utcnow,
)
from hub.outbox import Message, enqueue
from hub.values import Inbound
from tests.conftest import SignedIn

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
