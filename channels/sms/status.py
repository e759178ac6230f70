"""Twilio's message status callbacks, applied to the outbox row the message came from.

A callback names the message (`MessageSid`), its status (`MessageStatus`:
queued, sending, sent, delivered, undelivered, failed, read) and, for a
failure, `ErrorCode` and `ErrorMessage`. Callbacks arrive out of order and
more than once; the outbox applies a status only when it is a later stage
than the one recorded (`hub.outbox.do_record_provider_status`), so neither
hurts. Error 21610 says the recipient texted STOP to our number (the carrier
or Twilio keeps the opt-out): the number gets an `sms_stop` block, as if the
STOP had reached us.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from channels.sms.inbound import IncompleteWebhookError, field
from channels.sms.sending import OPTED_OUT
from hub.blocks import do_add_block
from hub.context import Work
from hub.errors import InvalidInputError
from hub.outbox import do_record_provider_status

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StatusReport:
    message_sid: str
    status: str
    to: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def error(self) -> str | None:
        if not self.error_code:
            return self.error_message
        return f"Twilio error {self.error_code}: {self.error_message or 'no message given'}"


def parse_status(fields: Mapping[str, Any]) -> StatusReport:
    """The report a callback carries; raises IncompleteWebhookError without sid or status."""
    sid = field(fields, "MessageSid")
    status = field(fields, "MessageStatus") or field(fields, "SmsStatus")
    if not sid or not status:
        raise IncompleteWebhookError("a status callback needs MessageSid and MessageStatus")
    return StatusReport(
        message_sid=sid,
        status=status.strip().lower(),
        to=field(fields, "To"),
        error_code=(field(fields, "ErrorCode") or "").strip() or None,
        error_message=field(fields, "ErrorMessage"),
    )


async def do_apply_status(work: Work, report: StatusReport, region: str) -> None:
    """Record the status on the outbox row; block the number when it opted out."""
    row = await do_record_provider_status(work, report.message_sid, report.status, report.error)
    if row is None:
        log.info("status %s for unknown message %s ignored", report.status, report.message_sid)
    if report.error_code == str(OPTED_OUT):
        await _block_opted_out(work, report, region)


async def _block_opted_out(work: Work, report: StatusReport, region: str) -> None:
    note = f"Twilio error {OPTED_OUT}: the recipient opted out ({report.message_sid})"
    try:
        await do_add_block(work, None, "phone", report.to or "", "sms_stop", region, "all", note)
    except InvalidInputError:
        log.warning("opt-out for %r not blocked: not a phone number", report.to)
