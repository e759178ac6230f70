"""From a form post or a JSON body to one `Submission`, checked, and on to one `hub.Inbound`.

Reading is bounded: the whole body may hold `MAX_ATTACHMENTS` attachments at
the hub's attachment limit plus the text fields, and is refused past that
(`too_large`) before or while it arrives. An attachment over the limit is
recorded with its name and size but without its content, as the e-mail
channel does. Text is cleaned of control characters (PostgreSQL refuses NUL)
and stored as text: the message never becomes markup.

Checking runs an ordered table of field checks; the first error of a field
wins, and every field's error is reported at once.

Idempotency: a form post's external id is its form token's submission id
plus a digest of what was sent, so a double click or a browser's retry is
stored once, while a visitor who goes back, edits and sends again (the page
keeps the old token) is not silently swallowed. A JSON client names its own
`submission_id`; without one, every post is new.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Message

from channels.email.parsing import sanitise_filename
from channels.webform.rejections import RejectedError
from channels.webform.texts import TOPICS
from channels.webform.tokens import FormClaim
from hub.errors import InvalidInputError
from hub.identity import normalise_email, normalise_phone
from hub.values import Attachment, Inbound

FIELDS = ("name", "email", "phone", "subject", "message", "topic")
MAX_CHARS = {"name": 200, "email": 254, "phone": 40, "subject": 200, "message": 20_000}
MAX_ATTACHMENTS = 5
FIELDS_BYTES = 256 * 1024  # the text fields and the multipart framing around them
HONEYPOT = "website"
DEFAULT_TOPIC = "inquiry"
SUBMISSION_ID = re.compile(r"[A-Za-z0-9_-]{1,150}")  # the outbox key adds 24 characters
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# A JSON body may escape a lone surrogate (\ud800), which no database can encode.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_USER_AGENT = 500

Kind = Literal["form", "json"]


@dataclass(frozen=True, slots=True)
class Submission:
    """What was sent, cleaned; `values` has every one of `FIELDS` ("" when absent)."""

    kind: Kind
    values: dict[str, str]
    honeypot: str = ""
    form_token: str | None = None
    submission_id: str | None = None
    attachments: tuple[Attachment, ...] = ()
    not_text: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Contact:
    """The submitter's normalised address and number (either may be missing, not both)."""

    email: str | None
    phone: str | None


@dataclass(frozen=True, slots=True)
class Client:
    ip: str
    user_agent: str | None


class InvalidSubmissionError(Exception):
    """Fields are missing or wrong; `errors` maps each field to an error code."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(", ".join(f"{name}: {code}" for name, code in errors.items()))
        self.errors = errors


def max_request_bytes(max_attachment_bytes: int) -> int:
    return MAX_ATTACHMENTS * max_attachment_bytes + FIELDS_BYTES


async def read_submission(request: Request, max_attachment_bytes: int) -> Submission:
    """Read and parse the body; raises `RejectedError` when it is too large or unreadable."""
    kind = content_kind(request.headers.get("content-type", ""))
    if kind is None:
        raise RejectedError("unsupported")
    limited = limit_body(request, max_request_bytes(max_attachment_bytes))
    if kind == "json":
        return parse_json(await limited.body())
    try:
        async with limited.form(
            max_files=MAX_ATTACHMENTS * 2, max_fields=50, max_part_size=FIELDS_BYTES
        ) as form:
            return await parse_form(form, max_attachment_bytes)
    except HTTPException:  # Starlette's answer to a malformed or overfull form
        raise RejectedError("unreadable") from None


def content_kind(content_type: str) -> Kind | None:
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == "application/json":
        return "json"
    if media_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return "form"
    return None


def limit_body(request: Request, limit: int) -> Request:
    """The request, reading at most `limit` body bytes; refuses a larger declared length early."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RejectedError("too_large")
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise RejectedError("too_large")
        return message

    return Request(request.scope, receive)


async def parse_form(form: FormData, max_attachment_bytes: int) -> Submission:
    values, not_text = _values(form.get)
    uploads = [item for item in form.getlist("attachments") if isinstance(item, UploadFile)]
    attachments = [await _attachment(upload, max_attachment_bytes) for upload in uploads]
    return Submission(
        kind="form",
        values=values,
        honeypot=_text(form.get(HONEYPOT)) or "",
        form_token=_text(form.get("form_token")),
        attachments=tuple(a for a in attachments if a is not None),
        not_text=not_text,
    )


def parse_json(body: bytes) -> Submission:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # nesting past the recursion limit is no form
        raise RejectedError("unreadable") from None
    if not isinstance(data, dict):
        raise RejectedError("unreadable")
    values, not_text = _values(data.get)
    return Submission(
        kind="json",
        values=values,
        honeypot=_text(data.get(HONEYPOT)) or "",
        form_token=_text(data.get("form_token")),
        submission_id=_text(data.get("submission_id")),
        not_text=not_text,
    )


def _values(get: Callable[[str], Any]) -> tuple[dict[str, str], frozenset[str]]:
    values: dict[str, str] = {}
    not_text: set[str] = set()
    for name in FIELDS:
        raw = get(name)
        value = _text(raw)
        if value is None and raw is not None:
            not_text.add(name)
        values[name] = clean(name, value or "")
    values["topic"] = values["topic"] or DEFAULT_TOPIC
    return values, frozenset(not_text)


def _text(value: object) -> str | None:
    """A field's text; numbers pass (a phone number sent as a JSON number), anything else not."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def clean(name: str, value: str) -> str:
    """Without control characters; one line, except the message (whose CRLFs become LFs)."""
    value = LONE_SURROGATE.sub("\ufffd", value)
    if name == "message":
        return CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n")).strip()
    return " ".join(CONTROL.sub(" ", value).split())


async def _attachment(upload: UploadFile, max_bytes: int) -> Attachment | None:
    """The attachment, its content dropped (size kept) when over the limit; None if no file."""
    if not upload.filename:
        return None  # a file input left empty still sends an empty part
    size = upload.size or 0
    content = await upload.read() if size <= max_bytes else None
    content_type = CONTROL.sub("", upload.content_type or "").split(";")[0].strip().lower()
    return Attachment(
        filename=sanitise_filename(upload.filename),
        content_type=content_type or "application/octet-stream",
        content=content,
        size=size,
    )


FieldCheck = Callable[[Submission, str, dict[str, str]], None]


def _readable(submission: Submission, _region: str, errors: dict[str, str]) -> None:
    for name in submission.not_text:
        errors.setdefault(name, "not_text")


def _short_enough(submission: Submission, _region: str, errors: dict[str, str]) -> None:
    for name, limit in MAX_CHARS.items():
        if len(submission.values[name]) > limit:
            errors.setdefault(name, "too_long")


def _present(submission: Submission, _region: str, errors: dict[str, str]) -> None:
    for name in ("name", "message"):
        if not submission.values[name]:
            errors.setdefault(name, f"required_{name}")


def _reachable(submission: Submission, region: str, errors: dict[str, str]) -> None:
    email, phone = submission.values["email"], submission.values["phone"]
    if not email and not phone:
        errors.setdefault("email", "contact")
    if email and find_email(email) is None:
        errors.setdefault("email", "invalid_email")
    if phone and find_phone(phone, region) is None:
        errors.setdefault("phone", "invalid_phone")


def _known_topic(submission: Submission, _region: str, errors: dict[str, str]) -> None:
    if submission.values["topic"] not in TOPICS:
        errors.setdefault("topic", "invalid_topic")


def _few_attachments(submission: Submission, _region: str, errors: dict[str, str]) -> None:
    if len(submission.attachments) > MAX_ATTACHMENTS:
        errors.setdefault("attachments", "too_many")


def _usable_submission_id(submission: Submission, _region: str, errors: dict[str, str]) -> None:
    if submission.submission_id is not None and not SUBMISSION_ID.fullmatch(
        submission.submission_id
    ):
        errors.setdefault("submission_id", "invalid_submission_id")


# In order; the first error found for a field is the one reported.
FIELD_CHECKS: tuple[FieldCheck, ...] = (
    _readable,
    _short_enough,
    _present,
    _reachable,
    _known_topic,
    _few_attachments,
    _usable_submission_id,
)


def check_submission(submission: Submission, region: str) -> Contact:
    """The submitter's contact; raises `InvalidSubmissionError` with every field's error."""
    errors: dict[str, str] = {}
    for field_check in FIELD_CHECKS:
        field_check(submission, region, errors)
    if errors:
        raise InvalidSubmissionError(errors)
    values = submission.values
    return Contact(find_email(values["email"]), find_phone(values["phone"], region))


def find_email(raw: str) -> str | None:
    try:
        return normalise_email(raw) if raw else None
    except InvalidInputError:
        return None


def find_phone(raw: str, region: str) -> str | None:
    try:
        return normalise_phone(raw, region) if raw else None
    except InvalidInputError:
        return None


def external_id_of(submission: Submission, claim: FormClaim | None) -> str:
    """The idempotency key; see the module docstring."""
    if claim is not None:
        return f"form:{claim.submission_id}:{_digest(submission)}"
    if submission.submission_id:
        return f"api:{submission.submission_id}"
    return f"api:{secrets.token_urlsafe(16)}"


def _digest(submission: Submission) -> str:
    files = [(a.filename, a.byte_size) for a in submission.attachments]
    sent = json.dumps([[submission.values[name] for name in FIELDS], files])
    return hashlib.sha256(sent.encode()).hexdigest()[:16]


def to_inbound(
    submission: Submission, contact: Contact, external_id: str, client: Client, language: str
) -> Inbound:
    """The submission as the hub's one inbound value; the sender is the e-mail, else the phone."""
    values = submission.values
    kind, sender = ("email", contact.email) if contact.email else ("phone", contact.phone)
    return Inbound(
        channel="webform",
        sender_kind=kind,
        sender=sender or "",
        sender_name=values["name"],
        external_id=external_id,
        # Each submission is a matter of its own: a conversation of its own.
        thread_key=external_id,
        subject=values["subject"] or None,
        text=values["message"],
        is_complaint=values["topic"] == "complaint",
        attachments=submission.attachments,
        metadata={
            "name": values["name"],
            "email": contact.email,
            "phone": contact.phone,
            "topic": values["topic"],
            "language": language,
            "ip": client.ip,
            "user_agent": (client.user_agent or "")[:MAX_USER_AGENT] or None,
        },
    )
