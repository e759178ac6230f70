"""Sending e-mail over SMTP, against a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from channels.email.message_ids import HubMessageId, parse_hub_message_id, parse_reply_address
from channels.email.sending import SmtpSender
from hub.delivery import PermanentDeliveryError, TransientDeliveryError, UnknownDeliveryError
from tests.conftest import SECRET
from tests.email_sending_steps import (
    BASE_HEADERS,
    MAIL_FROM,
    REPLY_HEADERS,
    TIMEOUT,
    make_sender,
    reply,
)

if TYPE_CHECKING:
    from tests.peers.smtp import SmtpServer


# The SMTP fixtures (smtp_server, make_smtp_server, closed_port, tls_certificate).


@pytest.fixture
async def sender(smtp_server: SmtpServer) -> AsyncIterator[SmtpSender]:
    async with make_sender(smtp_server) as running:
        yield running


async def test_a_reply_arrives_with_addresses_subject_threading_and_the_hubs_message_id(
    sender: SmtpSender, smtp_server: SmtpServer
):
    receipt = await sender.send(reply())

    [received] = smtp_server.messages
    message = received.message
    assert (received.mail_from, received.rcpt_tos) == ("service@hub.example", ("anna@example.com",))
    assert message["From"] == MAIL_FROM
    assert message["To"] == "anna@example.com"
    assert message["Subject"] == "Re: Frage zur Rechnung"
    assert message["In-Reply-To"] == "<m2@mail.example.com>"
    assert message["References"] == "<m1@mail.example.com> <m2@mail.example.com>"
    assert message["Date"].datetime is not None
    assert message.get_content_type() == "text/plain"
    assert message.get_content() == "Danke für Ihre Nachricht.\n"
    assert receipt.provider_id == message["Message-ID"]
    assert receipt.provider_id.endswith("@hub.example>")
    assert parse_hub_message_id(SECRET, receipt.provider_id) == HubMessageId(3, 7)
    assert set(received.header_names) == REPLY_HEADERS


async def test_a_reply_names_its_conversation_in_a_reply_address_only_the_hub_can_make(
    sender: SmtpSender, smtp_server: SmtpServer
):
    await sender.send(reply())

    (reply_to,) = smtp_server.messages[0].message["Reply-To"].addresses
    local, mac = reply_to.username.rsplit(".", 1)
    assert (local, reply_to.domain) == ("service+c3", "hub.example")
    assert parse_reply_address(SECRET, reply_to.addr_spec) == 3
    assert parse_reply_address(SECRET, reply_to.addr_spec.upper()) == 3
    assert parse_reply_address(SECRET, f"service+c4.{mac}@hub.example") is None
    assert parse_reply_address("another secret", reply_to.addr_spec) is None


async def test_no_reply_address_outside_a_conversation_or_when_switched_off(
    smtp_server: SmtpServer,
):
    async with make_sender(smtp_server) as sender:
        await sender.send(reply(metadata={"purpose": "marketing"}))
    async with make_sender(smtp_server, reply_addresses=False) as sender:
        await sender.send(reply())

    assert [m.message["Reply-To"] for m in smtp_server.messages] == [None, None]


async def test_text_and_html_arrive_as_multipart_alternative(
    sender: SmtpSender, smtp_server: SmtpServer
):
    await sender.send(reply(html="<p>Danke für Ihre <b>Nachricht</b>.</p>"))

    message = smtp_server.messages[0].message
    assert message.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part.get_content() for part in message.iter_parts()}
    assert parts == {
        "text/plain": "Danke für Ihre Nachricht.\n",
        "text/html": "<p>Danke für Ihre <b>Nachricht</b>.</p>\n",
    }


async def test_the_raw_message_is_seven_bit_with_dots_kept(
    sender: SmtpSender, smtp_server: SmtpServer
):
    await sender.send(reply(subject="Grüße", text=".\n..zwei Punkte\n."))

    received = smtp_server.messages[0]
    assert received.raw.isascii()
    assert received.message["Subject"] == "Grüße"
    assert received.message.get_content() == ".\n..zwei Punkte\n.\n"


async def test_a_message_without_a_conversation_gets_a_message_id_naming_zero(
    sender: SmtpSender, smtp_server: SmtpServer
):
    receipt = await sender.send(reply(metadata={"purpose": "marketing"}))

    assert parse_hub_message_id(SECRET, receipt.provider_id) == HubMessageId(0, 0)


async def test_one_connection_carries_several_messages(sender: SmtpSender, smtp_server: SmtpServer):
    for number in range(3):
        await sender.send(reply(idempotency_key=f"reply:{number}"))

    assert len(smtp_server.messages) == 3
    assert smtp_server.connections == 1


@pytest.mark.parametrize("step", ["mail", "rcpt", "data", "content"])
async def test_a_4xx_answer_is_transient_and_the_next_message_still_goes_out(
    sender: SmtpSender, smtp_server: SmtpServer, step: str
):
    smtp_server.fail_next(step, 451, "4.3.0 try again later")

    with pytest.raises(TransientDeliveryError, match=r"451 4\.3\.0 try again later"):
        await sender.send(reply())
    await sender.send(reply())

    assert len(smtp_server.messages) == 1
    assert smtp_server.connections == 1


@pytest.mark.parametrize("step", ["mail", "rcpt", "data", "content"])
async def test_a_5xx_answer_is_permanent_and_names_the_servers_answer(
    sender: SmtpSender, smtp_server: SmtpServer, step: str
):
    smtp_server.fail_next(step, 554, "5.7.1 not accepted here")

    with pytest.raises(PermanentDeliveryError, match=r"554 5\.7\.1 not accepted here"):
        await sender.send(reply())

    assert smtp_server.messages == []


async def test_a_5xx_on_rcpt_says_rcpt_to_refused_with_the_servers_code_and_text(
    sender: SmtpSender, smtp_server: SmtpServer
):
    smtp_server.fail_next("rcpt", 550, "5.1.1 no such user")

    with pytest.raises(PermanentDeliveryError) as refused:
        await sender.send(reply())

    assert str(refused.value) == "RCPT TO refused: 550 5.1.1 no such user"


async def test_a_connection_dropped_after_the_content_is_unknown_and_the_next_one_reconnects(
    sender: SmtpSender, smtp_server: SmtpServer
):
    smtp_server.drop_next("content")

    with pytest.raises(UnknownDeliveryError, match="may have been delivered"):
        await sender.send(reply())
    await sender.send(reply())

    assert len(smtp_server.messages) == 1
    assert smtp_server.connections == 2


async def test_no_answer_after_the_content_is_unknown_once_the_timeout_passes(
    smtp_server: SmtpServer,
):
    smtp_server.stall_next("content")

    async with make_sender(smtp_server, timeout=0.3) as sender:
        with pytest.raises(UnknownDeliveryError):
            await sender.send(reply())


@pytest.mark.parametrize("step", ["mail", "rcpt", "data"])
async def test_a_connection_dropped_before_the_content_is_transient(
    sender: SmtpSender, smtp_server: SmtpServer, step: str
):
    smtp_server.drop_next(step)

    with pytest.raises(TransientDeliveryError, match="before the message was sent"):
        await sender.send(reply())

    assert smtp_server.messages == []


async def test_no_answer_before_the_content_is_transient_once_the_timeout_passes(
    smtp_server: SmtpServer,
):
    smtp_server.stall_next("rcpt")

    async with make_sender(smtp_server, timeout=0.3) as sender:
        with pytest.raises(TransientDeliveryError) as failed:
            await sender.send(reply())

    assert not isinstance(failed.value, UnknownDeliveryError)


async def test_a_server_that_is_not_listening_is_transient(closed_port: int):
    sender = SmtpSender(
        "127.0.0.1",
        closed_port,
        mail_from=MAIL_FROM,
        secret_key=SECRET,
        tls="plain",
        timeout=TIMEOUT,
    )

    async with sender:
        with pytest.raises(TransientDeliveryError, match=f"127.0.0.1:{closed_port}"):
            await sender.send(reply())


async def test_the_sender_reconnects_after_the_server_closed_the_connection_between_messages(
    sender: SmtpSender, smtp_server: SmtpServer
):
    await sender.send(reply())
    await smtp_server.drop_connections()

    await sender.send(reply())

    assert len(smtp_server.messages) == 2
    assert smtp_server.connections == 2


async def test_a_reused_connection_found_dead_is_replaced_once_and_the_message_goes_out(
    sender: SmtpSender, smtp_server: SmtpServer
):
    await sender.send(reply())
    smtp_server.drop_next("mail")

    await sender.send(reply())

    assert len(smtp_server.messages) == 2
    assert smtp_server.connections == 2


CRLF_SUBJECTS = [
    "Frage\r\nBcc: eve@evil.example",
    "Frage\nX-Injected: yes",
    "=?utf-8?q?Frage=0D=0ABcc:_eve@evil.example?=",
    "=?utf-8?b?RnJhZ2UNCkJjYzogZXZlQGV2aWwuZXhhbXBsZQ==?=",
    # an encoded-word whose text is another encoded-word hiding CR/LF
    "=?utf-8?b?PT91dGYtOD9xP0ZyYWdlPTBEPTBBQmNjOl9ldmVAZXZpbC5leGFtcGxlPz0=?=",
    "Frage\u2028Bcc: eve@evil.example",
]


@pytest.mark.parametrize("subject", CRLF_SUBJECTS)
async def test_a_subject_with_crlf_plain_or_encoded_cannot_add_a_header(
    sender: SmtpSender, smtp_server: SmtpServer, subject: str
):
    await sender.send(reply(subject=f"Re: {subject}"))

    received = smtp_server.messages[0]
    assert set(received.header_names) == REPLY_HEADERS
    assert received.rcpt_tos == ("anna@example.com",)
    assert "\n" not in received.message["Subject"]
    assert "\r" not in received.message["Subject"]
    assert "Frage" in received.message["Subject"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Reply-To", "Anna\r\nBcc: eve@evil.example <anna@example.com>"),
        ("Reply-To", "=?utf-8?q?Anna=0D=0ABcc:_eve@evil.example?= <anna@example.com>"),
        ("In-Reply-To", "<m2@mail.example.com>\r\nBcc: eve@evil.example"),
        ("References", "<m1@mail.example.com>\nX-Injected: yes"),
        ("Auto-Submitted", "auto-generated\r\n\r\nbody injected"),
    ],
)
async def test_a_header_value_with_crlf_cannot_add_a_header(
    sender: SmtpSender, smtp_server: SmtpServer, name: str, value: str
):
    await sender.send(reply(headers={name: value}))

    received = smtp_server.messages[0]
    assert set(received.header_names) <= BASE_HEADERS | {name, "Reply-To"}
    assert received.rcpt_tos == ("anna@example.com",)
    assert received.message.get_content() == "Danke für Ihre Nachricht.\n"
    assert all(b"\n" not in line and b"\r" not in line for line in received.header_lines)


async def test_threading_headers_keep_only_their_message_ids(
    sender: SmtpSender, smtp_server: SmtpServer
):
    headers = {
        "In-Reply-To": "<m2@mail.example.com> (Anna's mail)",
        "References": "<m1@mail.example.com>\r\n Bcc: eve@evil.example <m2@mail.example.com>",
    }

    await sender.send(reply(headers=headers))

    message = smtp_server.messages[0].message
    assert message["In-Reply-To"] == "<m2@mail.example.com>"
    assert message["References"] == "<m1@mail.example.com> <m2@mail.example.com>"


async def test_a_reply_to_with_a_display_name_is_kept(sender: SmtpSender, smtp_server: SmtpServer):
    await sender.send(reply(headers={"Reply-To": "Team Süd <sued@hub.example>"}))

    assert smtp_server.messages[0].message["Reply-To"] == "Team Süd <sued@hub.example>"


async def test_header_names_outside_the_whitelist_are_not_copied(
    sender: SmtpSender, smtp_server: SmtpServer
):
    headers = {
        "Bcc": "eve@evil.example",
        "X-Mailer": "evil",
        "Received": "from evil",
        "Content-Type": "text/html",
        "Subject": "Another subject",
        "in-reply-to": "<m2@mail.example.com>",
    }

    await sender.send(reply(headers=headers))

    received = smtp_server.messages[0]
    assert set(received.header_names) == BASE_HEADERS | {"In-Reply-To", "Reply-To"}
    assert received.message["Subject"] == "Re: Frage zur Rechnung"
    assert received.message.get_content_type() == "text/plain"
    assert received.rcpt_tos == ("anna@example.com",)


async def test_auto_submitted_and_list_unsubscribe_are_copied_when_given(
    sender: SmtpSender, smtp_server: SmtpServer
):
    headers = {
        "Auto-Submitted": "auto-generated",
        "List-Unsubscribe": "<https://hub.example/u/abc>, <mailto:u+abc@hub.example>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }

    await sender.send(reply(subject="Unser Angebot", headers=headers))

    message = smtp_server.messages[0].message
    assert {name: message[name] for name in headers} == headers
    assert message["In-Reply-To"] is None


@pytest.mark.parametrize(
    "recipient",
    ["anna@example.com\r\nRCPT TO:<eve@evil.example>", "not an address", "", "ännä@example.com"],
)
async def test_a_recipient_smtp_cannot_carry_is_permanent_and_nothing_is_sent(
    sender: SmtpSender, smtp_server: SmtpServer, recipient: str
):
    with pytest.raises(PermanentDeliveryError):
        await sender.send(reply(recipient=recipient))

    assert smtp_server.messages == []
    assert smtp_server.connections == 0
