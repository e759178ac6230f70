"""The fuzz targets: one byte string in, the parser's contract checked (see `fuzz`).

Each target feeds the bytes to the parser as its wire delivers them and lets
only the errors the parser documents pass (`Target.refusals`); a broken
invariant raises `InvariantError`. Webhook bodies go through Starlette's own
form parser, so the fuzzer also reaches python-multipart as the hub runs it.
Twilio's signature check comes first in the hub, but the parsers behind it
must not trust that: a leaked auth token or a bug in the check would hand them
anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException
from starlette.datastructures import FormData, Headers
from starlette.formparsers import FormParser
from starlette.requests import Request

from channels.chat.protocol import FrameError, Hello, parse_frame
from channels.email.inbound import to_inbound
from channels.email.parsing import parse_mail
from channels.sms.inbound import IncompleteWebhookError, parse_incoming
from channels.sms.status import parse_status
from channels.sms.webhooks import _json_fields
from channels.twilio_signature import storable
from channels.voice.webhooks import parse_incoming_call, parse_status_report
from channels.webform.rejections import RejectedError
from channels.webform.submission import (
    Client,
    InvalidSubmissionError,
    check_submission,
    external_id_of,
    read_submission,
)
from channels.webform.submission import to_inbound as webform_inbound
from fuzz.invariants import (
    check_clean_strings,
    check_inert_html,
    check_reply_headers,
    check_storable,
)
from hub.models import RawMessage

REGION = "DE"
MAX_ATTACHMENT_BYTES = 64 * 1024
SECRET = "fuzz-secret-key-of-at-least-thirty-two-characters"  # noqa: S105 - made up
FORM = "application/x-www-form-urlencoded"
BOUNDARY = "fuzzboundary"
# The web form target's first byte picks the content type its body is sent as.
WEBFORM_KINDS = ("application/json", FORM, f"multipart/form-data; boundary={BOUNDARY}")

_loop = asyncio.new_event_loop()


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    refusals: tuple[type[BaseException], ...]
    doc: str


def run_async(coroutine: Any) -> Any:
    return _loop.run_until_complete(coroutine)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def parse_form_body(data: bytes, content_type: str = FORM) -> FormData:
    """A Twilio webhook's body as its handler gets it: `await request.form()`, made
    storable once the signature was checked (`channels.twilio_signature`)."""
    parser = FormParser(Headers({"content-type": content_type}), _once(data))
    return storable(run_async(parser.parse()))


def request_with(data: bytes, content_type: str) -> Request:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": data, "more_body": False}

    headers = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(data))]
    # "app" in the scope makes Starlette answer a malformed form with a 400, as in the hub.
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "app": None}
    return Request(scope, receive)


def fuzz_mime(data: bytes) -> None:
    parsed = parse_mail(data, MAX_ATTACHMENT_BYTES)
    check_clean_strings(parsed)
    check_inert_html(parsed.html_safe)
    check_reply_headers(parsed)
    if parsed.bounce is None and parsed.sender_address is not None:
        check_storable(to_inbound(parsed, RawMessage(id=1, content=data), SECRET))


def fuzz_sms_incoming(data: bytes) -> None:
    incoming = parse_incoming(parse_form_body(data), None, REGION)
    check_storable(incoming.inbound)


def fuzz_sms_status(data: bytes) -> None:
    check_clean_strings(parse_status(parse_form_body(data)))


def fuzz_sms_status_json(data: bytes) -> None:
    fields = run_async(_json_fields(request_with(data, "application/json")))
    check_clean_strings(parse_status(fields))


def fuzz_voice_incoming(data: bytes) -> None:
    check_storable(parse_incoming_call(parse_form_body(data), REGION))


def fuzz_voice_status(data: bytes) -> None:
    check_clean_strings(parse_status_report(parse_form_body(data)))


def fuzz_webform(data: bytes) -> None:
    kind = WEBFORM_KINDS[data[0] % len(WEBFORM_KINDS)] if data else FORM
    submission = run_async(read_submission(request_with(data[1:], kind), MAX_ATTACHMENT_BYTES))
    contact = check_submission(submission, REGION)
    external_id = external_id_of(submission, None)
    client = Client("127.0.0.1", "fuzz")
    check_storable(webform_inbound(submission, contact, external_id, client, "de"))


def fuzz_chat_frame(data: bytes) -> None:
    frame = parse_frame(data.decode("utf-8", "replace"))
    if isinstance(frame, Hello):  # the token and log id are compared, never stored
        frame = dataclasses.replace(frame, token=None, log_id=None)
    check_clean_strings(frame)


TARGETS = {
    target.name: target
    for target in (
        Target("mime", fuzz_mime, (), "raw mail to parse_mail, which never raises"),
        Target(
            "sms_incoming",
            fuzz_sms_incoming,
            (IncompleteWebhookError,),
            "Twilio's incoming-message webhook (form body)",
        ),
        Target(
            "sms_status",
            fuzz_sms_status,
            (IncompleteWebhookError,),
            "a message status callback (form body)",
        ),
        Target(
            "sms_status_json",
            fuzz_sms_status_json,
            (IncompleteWebhookError, HTTPException),
            "a message status callback (JSON body)",
        ),
        Target(
            "voice_incoming",
            fuzz_voice_incoming,
            (HTTPException,),
            "Twilio's incoming-call webhook (form body)",
        ),
        Target("voice_status", fuzz_voice_status, (), "a call status callback (form body)"),
        Target(
            "webform",
            fuzz_webform,
            (RejectedError, InvalidSubmissionError),
            "the web form's body: JSON, urlencoded or multipart, by the first byte",
        ),
        Target("chat_frame", fuzz_chat_frame, (FrameError,), "one chat text frame"),
    )
}


def run_one(target: Target, data: bytes) -> None:
    """The target on one input; a documented refusal is a pass."""
    with contextlib.suppress(*target.refusals):
        target.run(data)
