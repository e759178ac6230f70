"""E-mail end to end: Dovecot in, the agent's reply out through aiosmtpd, and back again."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.utils import format_datetime

import httpx
from sqlalchemy import select

from channels.email.imap_intake import ImapConfig, ImapIntake
from channels.email.message_ids import parse_hub_message_id
from channels.email.sending import SmtpSender
from hub.context import Hub
from hub.dispatcher import Dispatcher
from hub.models import Block, Interaction, OutboxMessage, utcnow
from tests.conftest import SignedIn
from tests.peers.dovecot import Dovecot
from tests.peers.smtp import SmtpServer


def customer_mail(subject: str, body: str, message_id: str, **headers: str) -> bytes:
    message = EmailMessage()
    message["From"] = "Anna Schmidt <anna@example.com>"
    message["To"] = "service@hub.example"
    message["Subject"] = subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = message_id
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return bytes(message)


def hard_bounce(original_message_id: str, recipient: str = "anna@example.com") -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        "To: service@hub.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn-1@mx.example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n'
        "\r\n--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        "--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {original_message_id}\r\nSubject: Re: Lieferung\r\n"
        "--b1--\r\n"
    ).encode()


async def take_inbox(hub: Hub, dovecot: Dovecot, user: str) -> None:
    config = ImapConfig(
        host=dovecot.host, port=dovecot.port, user=user, password=dovecot.password, tls=False
    )
    client = await asyncio.to_thread(dovecot.client, user)
    try:
        await ImapIntake(hub, config).sync(client)
    finally:
        await asyncio.to_thread(client.logout)


async def an_inquiry_taken_from_the_inbox(hub: Hub, dovecot: Dovecot) -> tuple[str, Interaction]:
    """Anna's first mail, appended to a fresh mailbox and taken into the hub."""
    user = dovecot.new_user()
    await asyncio.to_thread(
        dovecot.append, user, customer_mail("Lieferung", "Wo?", "<first@example.com>")
    )
    await take_inbox(hub, dovecot, user)
    async with hub.sessions() as session:
        return user, (await session.scalars(select(Interaction))).one()


async def our_reply_to_an_inquiry(
    hub: Hub,
    client: httpx.AsyncClient,
    agent: SignedIn,
    dovecot: Dovecot,
    smtp: SmtpServer,
) -> tuple[str, Interaction, EmailMessage]:
    """Anna's first mail taken in, and the agent's reply to it as the SMTP server got it."""
    user, first = await an_inquiry_taken_from_the_inbox(hub, dovecot)
    await client.post(
        f"/api/conversations/{first.conversation_id}/reply",
        headers=agent.headers,
        json={"text": "Morgen."},
    )
    await dispatch(hub, smtp)
    return user, first, smtp.messages[0].message


async def taken_mail(hub: Hub, message_id: str) -> Interaction:
    """The contact the hub stored for the mail with that Message-ID."""
    async with hub.sessions() as session:
        statement = select(Interaction).where(Interaction.external_id == message_id)
        return (await session.scalars(statement)).one()


async def dispatch(hub: Hub, smtp: SmtpServer) -> None:
    settings = hub.settings.model_copy(
        update={
            "smtp_host": smtp.host,
            "smtp_port": smtp.port,
            "smtp_tls": False,
            "mail_from": "Service <service@hub.example>",
        }
    )
    sender = SmtpSender.from_settings(settings)
    try:
        await Dispatcher(hub, {"email": sender}).dispatch_once()
    finally:
        await sender.close()


async def test_a_reply_arrives_threaded_and_the_customers_answer_joins_the_conversation(
    hub: Hub,
    client: httpx.AsyncClient,
    agent: SignedIn,
    dovecot: Dovecot,
    smtp_server: SmtpServer,
):
    user = dovecot.new_user()
    await asyncio.to_thread(
        dovecot.append,
        user,
        customer_mail("Lieferung", "Wo bleibt meine Bestellung?", "<first@example.com>"),
    )
    await take_inbox(hub, dovecot, user)
    async with hub.sessions() as session:
        first = (await session.scalars(select(Interaction))).one()

    await client.post(
        f"/api/conversations/{first.conversation_id}/reply",
        headers=agent.headers,
        json={"text": "Sie kommt morgen."},
    )
    await dispatch(hub, smtp_server)
    (arrived,) = smtp_server.messages
    reply = arrived.message
    our_id = reply["Message-ID"]
    await asyncio.to_thread(
        dovecot.append,
        user,
        customer_mail(
            "Re: " + reply["Subject"],
            "Danke!\n\n> Sie kommt morgen.",
            "<second@example.com>",
            In_Reply_To=our_id,
            References=f"<first@example.com> {our_id}",
        ),
    )
    await take_inbox(hub, dovecot, user)

    assert arrived.rcpt_tos == ("anna@example.com",)
    assert reply["In-Reply-To"] == "<first@example.com>"
    assert reply["References"] == "<first@example.com>"
    found = parse_hub_message_id(hub.settings.secret_key, our_id)
    assert found is not None and found.conversation_id == first.conversation_id
    answer = await taken_mail(hub, "<second@example.com>")
    async with hub.sessions() as session:
        row = (await session.scalars(select(OutboxMessage))).one()
    assert answer.conversation_id == first.conversation_id
    assert answer.text.strip() == "Danke!"
    assert (row.status, row.provider_id) == ("sent", our_id)


async def test_a_forged_reference_to_someone_elses_conversation_does_not_pull_mail_into_it(
    hub: Hub,
    client: httpx.AsyncClient,
    agent: SignedIn,
    dovecot: Dovecot,
    smtp_server: SmtpServer,
):
    user, first, ours = await our_reply_to_an_inquiry(hub, client, agent, dovecot, smtp_server)
    our_id = ours["Message-ID"]
    stranger = customer_mail(
        "Re: Lieferung", "Ich auch!", "<x@evil.example>", In_Reply_To=our_id
    ).replace(b"anna@example.com", b"mallory@evil.example")

    await asyncio.to_thread(dovecot.append, user, stranger)
    await take_inbox(hub, dovecot, user)

    forged = await taken_mail(hub, "<x@evil.example>")
    assert forged.conversation_id != first.conversation_id
    assert forged.customer_id != first.customer_id


async def test_a_hard_bounce_blocks_the_address_and_the_next_reply_never_reaches_smtp(
    hub: Hub,
    client: httpx.AsyncClient,
    agent: SignedIn,
    dovecot: Dovecot,
    smtp_server: SmtpServer,
):
    user, first = await an_inquiry_taken_from_the_inbox(hub, dovecot)
    path = f"/api/conversations/{first.conversation_id}/reply"
    await client.post(path, headers=agent.headers, json={"text": "Morgen."})
    await dispatch(hub, smtp_server)
    our_id = smtp_server.messages[0].message["Message-ID"]

    await asyncio.to_thread(dovecot.append, user, hard_bounce(our_id))
    await take_inbox(hub, dovecot, user)
    second = await client.post(path, headers=agent.headers, json={"text": "Noch da?"})
    await dispatch(hub, smtp_server)

    async with hub.sessions() as session:
        block = (await session.scalars(select(Block))).one()
        history = list(
            await session.scalars(
                select(Interaction.kind)
                .where(Interaction.customer_id == first.customer_id)
                .order_by(Interaction.id)
            )
        )
    assert (block.value, block.reason) == ("anna@example.com", "hard_bounce")
    assert second.json()["status"] == "blocked"
    assert second.json()["reasons"] == ["block:hard_bounce"]
    assert len(smtp_server.messages) == 1
    assert "bounce" in history


async def test_an_email_reply_goes_out_as_text_and_escaped_html(
    hub: Hub,
    client: httpx.AsyncClient,
    agent: SignedIn,
    dovecot: Dovecot,
    smtp_server: SmtpServer,
):
    _, first = await an_inquiry_taken_from_the_inbox(hub, dovecot)

    await client.post(
        f"/api/conversations/{first.conversation_id}/reply",
        headers=agent.headers,
        json={"text": "Guten Tag,\n\nmorgen <b>sicher</b>.\nGruß"},
    )
    await dispatch(hub, smtp_server)

    message = smtp_server.messages[0].message
    assert message.get_content_type() == "multipart/alternative"
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert "<p>morgen &lt;b&gt;sicher&lt;/b&gt;.<br>\nGruß</p>" in html
    assert "morgen <b>sicher</b>." in text


async def test_an_answer_to_the_reply_address_alone_joins_the_conversation(
    hub: Hub,
    client: httpx.AsyncClient,
    agent: SignedIn,
    dovecot: Dovecot,
    smtp_server: SmtpServer,
):
    user, first, ours = await our_reply_to_an_inquiry(hub, client, agent, dovecot, smtp_server)
    reply_to = ours["Reply-To"]
    # A client that keeps neither In-Reply-To, References nor the subject's tag.
    answer = customer_mail("Noch eine Frage", "Und die Rechnung?", "<third@example.com>")
    answer = answer.replace(b"To: service@hub.example", f"To: {reply_to}".encode())

    await asyncio.to_thread(dovecot.append, user, answer)
    await take_inbox(hub, dovecot, user)

    assert reply_to.addresses[0].username.startswith(f"service+c{first.conversation_id}.")
    joined = await taken_mail(hub, "<third@example.com>")
    assert joined.conversation_id == first.conversation_id


async def test_a_stranger_writing_to_a_genuine_reply_address_gets_a_conversation_of_their_own(
    hub: Hub,
    client: httpx.AsyncClient,
    agent: SignedIn,
    dovecot: Dovecot,
    smtp_server: SmtpServer,
):
    user, first, ours = await our_reply_to_an_inquiry(hub, client, agent, dovecot, smtp_server)
    reply_to = ours["Reply-To"]
    stranger = (
        customer_mail("Hallo", "Ich auch!", "<y@evil.example>")
        .replace(b"anna@example.com", b"mallory@evil.example")
        .replace(b"To: service@hub.example", f"To: {reply_to}".encode())
    )

    await asyncio.to_thread(dovecot.append, user, stranger)
    await take_inbox(hub, dovecot, user)

    foreign = await taken_mail(hub, "<y@evil.example>")
    assert foreign.conversation_id != first.conversation_id
