"""E-mail rendered by `BulkSmtpSender` (campaigns, replies, confirmations): what the full
renderer would say, faster."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast

import pytest

from channels.email.bulk import BulkSmtpSender, render_bulk
from channels.email.composition import render_message
from hub.values import Outbound
from tests.peers.smtp import SmtpServer

UNSUBSCRIBE = {
    "List-Unsubscribe": "<https://hub.example/unsubscribe/WyJlbWFpbCIsImFAYi5jIiwxXQ.sig>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


def campaign_mail(**changes: Any) -> Outbound:
    values: dict[str, Any] = {
        "channel": "email",
        "recipient": "anna@example.com",
        "text": "Hallo Jörg,\n\nunsere Neuigkeiten im Frühling.\n.eine Zeile mit Punkt\n",
        "subject": "Neuigkeiten für Jörg",
        "html": "<p>Hallo Jörg, <b>Frühling</b>!</p>",
        "idempotency_key": "campaign:1:1",
        "headers": UNSUBSCRIBE,
    }
    return Outbound(**{**values, **changes})


def sender() -> BulkSmtpSender:
    return BulkSmtpSender(
        "127.0.0.1",
        25,
        mail_from="Nachrichten Müller <news@example.com>",
        secret_key="x" * 40,
        tls="plain",
    )


def parsed(raw: bytes) -> EmailMessage:
    text = raw.replace(b"\r\n", b"\n")
    return cast(EmailMessage, message_from_bytes(text, policy=policy.default))


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"html": None},
        {"subject": "ASCII only"},
        {"text": "tabs\tand trailing spaces   \n" + "long " * 60 + "\n=?utf-8?q?x?=\n"},
    ],
)
def test_a_campaign_mail_reads_back_as_the_full_renderer_would_write_it(changes: dict[str, Any]):
    outbound = campaign_mail(**changes)

    fast = parsed(sender().render(outbound, "<1.2@example.com>"))
    full = parsed(render_message(outbound, sender().sender, "<1.2@example.com>").as_bytes())

    for name in ("From", "To", "Subject", "Message-ID", *UNSUBSCRIBE):
        assert fast[name] == full[name].strip(), name  # the full renderer folds long ones
    assert fast.get_body(("plain",)).get_content() == full.get_body(("plain",)).get_content()
    if outbound.html:
        assert fast.get_body(("html",)).get_content() == full.get_body(("html",)).get_content()
    assert fast.defects == []


REPLY_HEADERS = {
    "In-Reply-To": "<a1@kunde.example>",
    "References": "<a0@kunde.example> <a1@kunde.example>",
}


@pytest.mark.parametrize("headers", [{}, REPLY_HEADERS])
def test_a_reply_reads_back_with_its_reply_address_as_the_full_renderer_would_write_it(
    headers: dict[str, str],
):
    outbound = campaign_mail(headers=headers, html=None, subject="Re: [#42] Lieferung")
    reply_to = "reply+42.abc@example.com"

    fast = parsed(sender().render(outbound, "<1.2@example.com>", reply_to))
    full = parsed(
        render_message(outbound, sender().sender, "<1.2@example.com>", reply_to).as_bytes()
    )

    for name in ("From", "To", "Subject", "Message-ID", "Reply-To", *headers):
        assert fast[name] == full[name].strip(), name
    assert fast["Reply-To"].addresses[0].display_name == "Nachrichten Müller"
    assert fast.get_body(("plain",)).get_content() == full.get_body(("plain",)).get_content()
    assert fast.defects == []


@pytest.mark.parametrize(
    "mail_from",
    [
        "Kundenservice <service@example.com>",
        "service@example.com",
        '"Service, Team \\"Nord\\"" <service@example.com>',
        "Kundenservice der Beispiel GmbH und Co KG Abteilung Reklamationen <service@example.com>",
    ],
)
def test_a_reply_from_an_ascii_sender_reads_back_as_the_full_renderer_would_write_it(
    mail_from: str,
):
    ours = BulkSmtpSender("127.0.0.1", 25, mail_from=mail_from, secret_key="x" * 40, tls="plain")
    outbound = campaign_mail(headers=REPLY_HEADERS, html=None, subject="Re: [#42] Lieferung")
    reply_to = "service+c42.0123456789abcdef@example.com"

    fast = parsed(ours.render(outbound, "<1.2@example.com>", reply_to))
    full = parsed(render_message(outbound, ours.sender, "<1.2@example.com>", reply_to).as_bytes())

    for name in ("From", "Reply-To"):
        assert fast[name] == full[name].strip(), name
        assert fast[name].addresses == full[name].addresses, name
    assert fast.defects == []


def test_the_raw_message_is_seven_bit_with_short_lines():
    raw = sender().render(campaign_mail(text="ä" * 500), "<1.2@example.com>")

    assert raw.isascii()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76


@pytest.mark.parametrize(
    "subject",
    [
        "Hallo\r\nBcc: victim@example.com",
        "Hallo =?utf-8?q?=0D=0ABcc=3A_victim=40example.com?=",
        "Grüße\nBcc: victim@example.com",
    ],
)
def test_a_subject_cannot_add_a_header(subject: str):
    raw = sender().render(campaign_mail(subject=subject), "<1.2@example.com>")

    message = parsed(raw)
    assert message["Bcc"] is None
    assert "Bcc" not in [line.split(b":")[0].decode() for line in raw.split(b"\r\n")]


def test_what_the_fast_path_cannot_carry_goes_to_the_full_renderer():
    non_ascii_header = campaign_mail(headers={"List-Unsubscribe": "<https://hüb.example/u>"})
    long_subject = campaign_mail(subject="x" * 1000)
    references = " ".join(f"<{n}@kunde.example>" for n in range(80))  # over a line
    long_references = campaign_mail(headers={"References": references})

    assert render_bulk(non_ascii_header, "news@example.com", "<1@x>") is None
    assert render_bulk(long_subject, "news@example.com", "<1@x>") is None
    assert render_bulk(long_references, "news@example.com", "<1@x>") is None
    assert parsed(sender().render(long_references, "<1@x>"))["References"] == references
    assert parsed(sender().render(long_subject, "<1@x>"))["Subject"] == "x" * 1000


async def test_a_campaign_mail_arrives_through_smtp_with_its_unsubscribe_headers(
    smtp_server: SmtpServer,
):
    async with BulkSmtpSender(
        smtp_server.host,
        smtp_server.port,
        mail_from="news@example.com",
        secret_key="x" * 40,
        tls="plain",
    ) as bulk:
        await bulk.send(campaign_mail())

    (received,) = smtp_server.messages
    message = received.message
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"] == UNSUBSCRIBE["List-Unsubscribe"]
    assert message.get_body(("plain",)).get_content().startswith("Hallo Jörg,")
    assert message.get_body(("plain",)).get_content().count(".eine Zeile mit Punkt") == 1
