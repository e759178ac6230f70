"""What the e-mail channel adds to a running hub, from the settings.

The SMTP sender when `OMNIHUB_SMTP_HOST` is set, the IMAP intake when
`OMNIHUB_IMAP_HOST` is set, and always the dead-letter replay for stored mail.
"""

from __future__ import annotations

from channels.email.bulk import BulkSmtpSender
from channels.email.imap_intake import ImapConfig, ImapIntake
from channels.email.inbound import take_message
from channels.email.sending import SmtpSender
from hub.context import Hub
from hub.models import RawMessage
from hub.settings import Settings


def build_sender(settings: Settings) -> SmtpSender | None:
    return BulkSmtpSender.from_settings(settings) if settings.smtp_host else None


def build_intake(hub: Hub, settings: Settings) -> ImapIntake | None:
    if not settings.imap_host:
        return None
    return ImapIntake(hub, ImapConfig.from_settings(settings))


async def replay(hub: Hub, raw: RawMessage) -> int | None:
    outcome = await take_message(hub, raw, hub.settings.mail_max_attachment_bytes)
    return outcome.interaction_id
