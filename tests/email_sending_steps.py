"""E-mail sending steps the tests share: a sender for a test SMTP server, a reply as the
outbox hands one over, and the header fields every message carries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from channels.email.sending import SmtpSender
from hub.values import Outbound
from tests.conftest import SECRET

if TYPE_CHECKING:
    from tests.peers.smtp import SmtpServer


MAIL_FROM = "Kundenservice <service@hub.example>"
TIMEOUT = 2.0
# The header fields every message carries, and those of a reply.
BASE_HEADERS = {"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"}
BASE_HEADERS |= {"Content-Transfer-Encoding"}
REPLY_HEADERS = BASE_HEADERS | {"In-Reply-To", "References", "Reply-To"}


def make_sender(server: SmtpServer, **options: Any) -> SmtpSender:
    values: dict[str, Any] = {
        "mail_from": MAIL_FROM,
        "secret_key": SECRET,
        "tls": "plain",
        "timeout": TIMEOUT,
    }
    values.update(options)
    return SmtpSender(server.host, server.port, **values)


def reply(**changes: Any) -> Outbound:
    values: dict[str, Any] = {
        "channel": "email",
        "recipient": "anna@example.com",
        "text": "Danke für Ihre Nachricht.",
        "idempotency_key": "reply:1",
        "subject": "Re: Frage zur Rechnung",
        "headers": {
            "In-Reply-To": "<m2@mail.example.com>",
            "References": "<m1@mail.example.com> <m2@mail.example.com>",
        },
        "metadata": {"outbox_id": 7, "conversation_id": 3, "purpose": "service"},
    }
    values.update(changes)
    return Outbound(**values)
