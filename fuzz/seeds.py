"""Seed corpora: real inputs of each target's kind, for the fuzzer to mutate.

Mail comes from `tests/email_corpus`; the webhooks from the fields Twilio
sends (built by the test peer `tests.peers.twilio`, so seeds and tests agree);
the web form and chat from the shapes their tests post.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from fuzz.targets import BOUNDARY, WEBFORM_KINDS
from tests.peers.twilio import incoming_sms, status_callback

ROOT = Path(__file__).resolve().parents[1]
EMAIL_CORPUS = ROOT / "tests" / "email_corpus"
NUMBERS = ("+491512345678", "0151 2345678", "anonymous", "+266696687", "SHOP", "")


def mime_seeds() -> list[bytes]:
    return [path.read_bytes() for path in sorted(EMAIL_CORPUS.glob("*.eml"))]


def sms_incoming_seeds() -> list[bytes]:
    texts = ("Wann kommt mein Paket?", "STOP", " start ", "HELP", "Grüße 👋", "")
    pairs = zip(NUMBERS, texts, strict=True)
    fields = [incoming_sms(number or "x", text) for number, text in pairs]
    fields.append(incoming_sms("+491512345678", "Bild", media=[("https://x.test/1", "image/png")]))
    return [urlencode(form).encode() for form in fields]


def sms_status_seeds() -> list[bytes]:
    sid = "SM" + "a" * 32
    forms = [status_callback(sid, status, to=NUMBERS[0]) for status in ("queued", "delivered")]
    forms.append(status_callback(sid, "failed", to=NUMBERS[0], error_code=21610, error_message="x"))
    return [urlencode(form).encode() for form in forms]


def sms_status_json_seeds() -> list[bytes]:
    return [json.dumps(dict(parse_qsl(body.decode()))).encode() for body in sms_status_seeds()]


def voice_incoming_seeds() -> list[bytes]:
    forms = [
        {"CallSid": "CA" + "b" * 32, "From": number, "To": "+4930123456", "CallStatus": "ringing",
         "Direction": "inbound", "CallerName": "Anna"}
        for number in NUMBERS
    ]  # fmt: skip
    return [urlencode(form).encode() for form in forms]


def voice_status_seeds() -> list[bytes]:
    forms = [
        {"CallSid": "CA1", "CallStatus": "completed", "CallDuration": "42",
         "DialCallStatus": "answered", "Called": "client:agent-7",
         "Timestamp": "Fri, 04 Dec 2026 13:00:00 +0000"},
        {"CallSid": "CA1", "CallStatus": "no-answer"},
    ]  # fmt: skip
    return [urlencode(form).encode() for form in forms]


WEBFORM_FIELDS = {
    "name": "Anna Schmidt",
    "email": "anna@example.com",
    "phone": "0151 2345678",
    "subject": "Lieferung",
    "message": "Wo bleibt meine Bestellung?\r\nDanke",
    "topic": "complaint",
    "submission_id": "s-1",
}


def webform_seeds() -> list[bytes]:
    json_kind, form_kind, multipart_kind = range(len(WEBFORM_KINDS))
    multipart = "".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in WEBFORM_FIELDS.items()
    )
    upload = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="attachments"; '
        f'filename="../../etc/passwd"\r\nContent-Type: text/plain\r\n\r\nroot\r\n--{BOUNDARY}--\r\n'
    )
    return [
        bytes([json_kind]) + json.dumps(WEBFORM_FIELDS).encode(),
        bytes([form_kind]) + urlencode(WEBFORM_FIELDS).encode(),
        bytes([multipart_kind]) + (multipart + upload).encode(),
    ]


def chat_frame_seeds() -> list[bytes]:
    frames = [
        {"type": "hello", "name": "Anna", "email": "anna@example.com", "last_seq": 0},
        {"type": "hello", "token": "abc.def", "log_id": "l1", "last_seq": 3},
        {"type": "message", "client_id": "c-1", "text": "Hallo, ist jemand da?"},
        {"type": "leave_message", "client_id": "c-2", "email": "anna@example.com", "text": "Hi"},
        {"type": "typing"},
        {"type": "ping"},
        {"type": "pong"},
    ]
    return [json.dumps(frame).encode() for frame in frames]


SEEDS: dict[str, Callable[[], list[bytes]]] = {
    "mime": mime_seeds,
    "sms_incoming": sms_incoming_seeds,
    "sms_status": sms_status_seeds,
    "sms_status_json": sms_status_json_seeds,
    "voice_incoming": voice_incoming_seeds,
    "voice_status": voice_status_seeds,
    "webform": webform_seeds,
    "chat_frame": chat_frame_seeds,
}
