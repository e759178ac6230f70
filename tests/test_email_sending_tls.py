"""Sending e-mail with a login and TLS (STARTTLS or implicit), never in plain text when TLS
is on; the sender built from the settings; a queued reply through the outbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from channels.email.message_ids import HubMessageId, parse_hub_message_id
from channels.email.sending import SmtpSender, choose_tls
from hub.context import Hub
from hub.delivery import TransientDeliveryError
from hub.dispatcher import Dispatcher
from hub.intake import accept_inbound
from hub.models import OutboxMessage
from hub.outbox import Message, enqueue
from hub.settings import SettingsError, load_settings
from hub.values import Inbound
from tests.conftest import SECRET
from tests.email_sending_steps import (
    TIMEOUT,
    make_sender,
    reply,
)

if TYPE_CHECKING:
    from tests.peers.smtp import Certificate, MakeSmtpServer, SmtpServer


# The SMTP fixtures (smtp_server, make_smtp_server, closed_port, tls_certificate).


async def test_the_sender_logs_in_when_a_user_is_configured(make_smtp_server: MakeSmtpServer):
    server = make_smtp_server(credentials=("hub", "s3cret"))

    async with make_sender(server, username="hub", password="s3cret") as sender:
        await sender.send(reply())

    assert server.messages[0].login == "hub"


async def test_a_refused_login_is_transient(make_smtp_server: MakeSmtpServer):
    server = make_smtp_server(credentials=("hub", "s3cret"))

    async with make_sender(server, username="hub", password="wrong") as sender:
        with pytest.raises(TransientDeliveryError, match="cannot open an SMTP connection"):
            await sender.send(reply())

    assert server.messages == []


async def test_starttls_protects_the_message_when_tls_is_on(
    make_smtp_server: MakeSmtpServer, tls_certificate: Certificate
):
    server = make_smtp_server(tls="starttls", certificate=tls_certificate)
    tls = tls_certificate.client_context()

    async with make_sender(server, tls="starttls", tls_context=tls) as sender:
        await sender.send(reply())
        await sender.send(reply())

    assert [received.tls for received in server.messages] == [True, True]
    assert server.connections == 1


async def test_implicit_tls_protects_the_message(
    make_smtp_server: MakeSmtpServer, tls_certificate: Certificate
):
    server = make_smtp_server(tls="implicit", certificate=tls_certificate)
    tls = tls_certificate.client_context()

    async with make_sender(server, tls="implicit", tls_context=tls) as sender:
        await sender.send(reply())

    assert [received.tls for received in server.messages] == [True]


async def test_a_server_without_starttls_is_never_sent_plain_text_when_tls_is_on(
    smtp_server: SmtpServer,
):
    async with make_sender(smtp_server, tls="starttls") as sender:
        with pytest.raises(TransientDeliveryError, match="STARTTLS"):
            await sender.send(reply())

    assert smtp_server.messages == []


async def test_an_untrusted_certificate_is_transient(
    make_smtp_server: MakeSmtpServer, tls_certificate: Certificate
):
    server = make_smtp_server(tls="starttls", certificate=tls_certificate)

    async with make_sender(server, tls="starttls") as sender:
        with pytest.raises(TransientDeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
            await sender.send(reply())

    assert server.messages == []


def test_tls_on_means_implicit_tls_on_port_465_and_starttls_elsewhere():
    assert choose_tls(True, 465) == "implicit"
    assert choose_tls(True, 587) == "starttls"
    assert choose_tls(True, 25) == "starttls"
    assert choose_tls(False, 465) == "plain"


def test_settings_build_the_sender():
    settings = load_settings(
        _env_file=None,
        secret_key=SECRET,
        smtp_host="mail.example.com",
        smtp_port=465,
        smtp_user="hub",
        smtp_password="pw",
        mail_from="Service <service@hub.example>",
    )

    sender = SmtpSender.from_settings(settings)

    assert (sender.host, sender.port, sender.tls) == ("mail.example.com", 465, "implicit")
    assert (sender.username, sender.password) == ("hub", "pw")
    assert sender.sender.addr_spec == "service@hub.example"


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [({}, "OMNIHUB_SMTP_HOST"), ({"smtp_host": "mail", "mail_from": "nobody"}, "MAIL_FROM")],
)
def test_settings_without_a_host_or_a_usable_mail_from_are_refused(
    overrides: dict[str, str], variable: str
):
    settings = load_settings(_env_file=None, secret_key=SECRET, **overrides)

    with pytest.raises(SettingsError, match=variable):
        SmtpSender.from_settings(settings)


async def test_a_queued_reply_goes_out_through_the_outbox_and_its_row_records_the_message_id(
    hub: Hub, smtp_server: SmtpServer
):
    contact = await accept_inbound(
        hub,
        Inbound(
            channel="email",
            sender_kind="email",
            sender="anna@example.com",
            external_id="<m1@mail.example.com>",
            subject="Frage",
            text="Hallo",
        ),
    )
    async with hub.work() as work:
        queued = await enqueue(
            work,
            Message(
                idempotency_key="reply:e2e",
                channel="email",
                recipient="anna@example.com",
                purpose="service",
                subject="Re: Frage",
                text="Danke für Ihre Nachricht.",
                customer_id=contact.customer_id,
                conversation_id=contact.conversation_id,
                headers={"In-Reply-To": "<m1@mail.example.com>"},
            ),
            hub.policy,
        )
    settings = hub.settings.model_copy(
        update={"smtp_host": smtp_server.host, "smtp_port": smtp_server.port, "smtp_tls": False}
    )

    async with SmtpSender.from_settings(settings, timeout=TIMEOUT) as sender:
        handled = await Dispatcher(hub, {"email": sender}).dispatch_once()

    async with hub.sessions() as session:
        row = await session.scalar(select(OutboxMessage).where(OutboxMessage.id == queued.id))
    [received] = smtp_server.messages
    assert handled == 1
    assert (row.status, row.provider_id) == ("sent", received.message["Message-ID"])
    assert received.message["In-Reply-To"] == "<m1@mail.example.com>"
    assert received.rcpt_tos == ("anna@example.com",)
    assert parse_hub_message_id(SECRET, row.provider_id) == HubMessageId(
        contact.conversation_id or 0, queued.id
    )
