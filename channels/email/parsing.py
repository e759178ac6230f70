"""Raw mail bytes into one `ParsedMail`: pure, and it never raises.

Any byte string comes out as a `ParsedMail`: every risky step (a header the
`email` package cannot parse, a charset it does not know, broken base64, an
HTML sanitiser error) is wrapped, falls back to something plainer, and leaves
a line in `warnings`. Invariants of the result:

- every string is valid Unicode (no lone surrogates: 8-bit header bytes, which
  `policy.default` keeps as surrogate escapes, are re-decoded as UTF-8, else
  cp1252) and carries no NUL;
- message ids are `<left@right>` with printable ASCII only; garbage is dropped;
- `subject` holds no control characters (RFC 2047 can smuggle CR/LF in);
- `html_safe` is `nh3.clean` output; `html` is the original, never shown;
- attachment names are bare file names, never paths.

Bounces are read from RFC 3464 delivery status notifications only (`reports`);
HTML is sanitised and rendered to text in `html_text`; automatic mail is
recognised by the ordered rules in `AUTOMATIC_RULES`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from functools import partial
from typing import TypeVar

from channels.email.html_text import render_text, sanitise_html
from channels.email.mime import (
    decode_fallback,
    first_id,
    header_ids,
    is_control,
    normalise_address,
    normalise_ids,
    one_line,
    payload_bytes,
    raw_header,
    raw_headers,
    scrub,
)
from channels.email.reports import Bounce, find_bounce
from channels.email.reports import BounceRecipient as BounceRecipient  # for importers
from hub.values import Attachment

T = TypeVar("T")

MAX_FILENAME_CHARS = 255
MAX_DEPTH = 40
MAX_HEADER_CHARS = 16_384
# An RFC 2047 encoded-word, and one followed by only whitespace and another.
_WORD = r"=\?[^?\s]+\?[BbQq]\?[^?\s]*\?="
_ADJACENT_WORDS = re.compile(rf"({_WORD})\s+(?={_WORD})")


@dataclass(frozen=True, slots=True)
class ParsedMail:
    message_id: str | None
    idempotency_key: str
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str
    sender_address: str | None
    sender_name: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    date: datetime | None
    text: str | None
    html: str | None
    html_safe: str | None
    attachments: tuple[Attachment, ...]
    inline_content_ids: tuple[str, ...]
    automatic: str | None
    bounce: Bounce | None
    warnings: tuple[str, ...]


# --- the parse --------------------------------------------------------------


@dataclass(slots=True)
class _Reading:
    """What one parse collects while it walks the message."""

    warnings: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    content_ids: list[str] = field(default_factory=list)

    def attempt(self, what: str, step: Callable[[], T], fallback: T) -> T:
        try:
            return step()
        except Exception as error:  # the parse must go on whatever a step does
            self.warnings.append(f"{what}: {type(error).__name__}")
            return fallback


def parse_mail(raw: bytes, max_attachment_bytes: int) -> ParsedMail:
    """Parse raw mail bytes; never raises (a failure becomes a warning and a fallback)."""
    raw = bytes(raw)
    reading = _Reading()
    try:
        return _parse(raw, max_attachment_bytes, reading)
    except Exception as error:  # a last resort: the steps below already guard themselves
        reading.warnings.append(f"unparsable mail: {type(error).__name__}")
        return _empty(raw, reading)


def _parse(raw: bytes, max_attachment_bytes: int, reading: _Reading) -> ParsedMail:
    msg = reading.attempt("headers", lambda: _parse_bytes(raw, reading), EmailMessage())
    _note_defects(msg, reading)
    message_id = reading.attempt("Message-ID", lambda: first_id(msg, "Message-ID"), None)
    sender_name, sender_address = reading.attempt("From", lambda: _sender(msg), (None, None))
    _walk(msg, reading, max_attachment_bytes)
    text, html, html_safe = _bodies(reading)
    _note_unreadable(msg, message_id, sender_address, reading)
    return ParsedMail(
        message_id=message_id,
        idempotency_key=message_id or _raw_key(raw),
        in_reply_to=reading.attempt("In-Reply-To", lambda: header_ids(msg, "In-Reply-To"), ()),
        references=reading.attempt("References", lambda: header_ids(msg, "References"), ()),
        subject=reading.attempt("Subject", lambda: _subject(msg), ""),
        sender_address=sender_address,
        sender_name=sender_name,
        to=reading.attempt("To", lambda: _recipients(msg, "To"), ()),
        cc=reading.attempt("Cc", lambda: _recipients(msg, "Cc"), ()),
        date=reading.attempt("Date", lambda: _date(msg), None),
        text=text,
        html=html,
        html_safe=html_safe,
        attachments=tuple(reading.attachments),
        inline_content_ids=tuple(dict.fromkeys(reading.content_ids)),
        automatic=reading.attempt("automatic", lambda: find_automatic(msg, sender_address), None),
        bounce=reading.attempt("delivery status", lambda: find_bounce(msg, reading.warnings), None),
        warnings=tuple(dict.fromkeys(reading.warnings)),
    )


def _empty(raw: bytes, reading: _Reading) -> ParsedMail:
    return ParsedMail(
        message_id=None,
        idempotency_key=_raw_key(raw),
        in_reply_to=(),
        references=(),
        subject="",
        sender_address=None,
        sender_name=None,
        to=(),
        cc=(),
        date=None,
        text=None,
        html=None,
        html_safe=None,
        attachments=(),
        inline_content_ids=(),
        automatic=None,
        bounce=None,
        warnings=tuple(reading.warnings),
    )


class _CachingHeaderRegistry(HeaderRegistry):
    """The standard header registry, but it makes each header's class once, not per lookup.

    `HeaderRegistry.__getitem__` builds a new class with `type()` every time a
    header is read, and a parse reads Content-Type alone several times a part;
    the classes hold no state, so one per header name serves every message.
    """

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        made = self._classes.get(key)
        if made is None:
            made = self._classes[key] = super().__getitem__(name)
        return made

    def map_to_type(self, name: str, cls: type) -> None:
        super().map_to_type(name, cls)
        self._classes.pop(name.lower(), None)


POLICY = policy.default.clone(header_factory=_CachingHeaderRegistry())


def _parse_bytes(raw: bytes, reading: _Reading) -> Message:
    parser = BytesParser(policy=POLICY)
    try:
        return parser.parsebytes(raw)
    except Exception as error:  # e.g. RecursionError on absurd nesting: keep the headers
        reading.warnings.append(f"mime structure: {type(error).__name__}; body read as text")
        return parser.parsebytes(raw, headersonly=True)


def _raw_key(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _note_defects(msg: Message, reading: _Reading) -> None:
    for defect in getattr(msg, "defects", ())[:10]:
        reading.warnings.append(f"mime defect: {type(defect).__name__}")


def _note_unreadable(
    msg: Message, message_id: str | None, sender: str | None, reading: _Reading
) -> None:
    if message_id is None and raw_header(msg, "Message-ID") is not None:
        reading.warnings.append("Message-ID: no valid id, keyed by a hash of the mail")
    if sender is None:
        reading.warnings.append("From: no readable address")


# --- headers ----------------------------------------------------------------


def _fits_registry(msg: Message, name: str) -> bool:
    # The header registry's parser slows down faster than linearly on huge values.
    return all(len(value) <= MAX_HEADER_CHARS for value in raw_headers(msg, name))


def header_text(msg: Message, name: str) -> str | None:
    """A header's decoded value (RFC 2047), or its raw value when decoding fails."""
    raw = raw_header(msg, name)
    if raw is None:
        return None
    try:
        value = str(msg.get(name)) if _fits_registry(msg, name) else _decode_words(raw)
    except Exception:  # the header registry chokes on some garbage
        value = raw
    return scrub(value)


def _decode_words(raw: str) -> str:
    """RFC 2047 words decoded without the header registry, for oversized values."""
    return str(make_header(decode_header(scrub(raw)[:MAX_HEADER_CHARS])))


def _subject(msg: Message) -> str:
    return one_line(header_text(msg, "Subject") or "")


def _addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    """(display name, addr-spec) pairs; the raw header is the fallback for garbage."""
    try:
        header = _address_header(msg, name) if _fits_registry(msg, name) else None
        pairs = [(a.display_name, a.addr_spec) for a in getattr(header, "addresses", ())]
    except Exception:  # the registry's address parser has its own failure modes
        pairs = []
    if not pairs:
        raw = raw_headers(msg, name)
        pairs = [pair for pair in getaddresses(raw) if any(pair)] if raw else []
    return [(one_line(display), one_line(spec)) for display, spec in pairs]


def _address_header(msg: Message, name: str) -> object | None:
    """The header as the registry parses it, its adjacent encoded-words joined first.

    Whitespace between two encoded-words is not text (RFC 2047 section 6.2): a
    long name is sent as several words, folded over lines. The stdlib drops it
    in unstructured headers (Subject) but keeps it in an address's display
    name, so "Jürgen Weiß" split into two words would come back with a space.
    """
    raw = raw_header(msg, name)
    return None if raw is None else POLICY.header_fetch_parse(name, _ADJACENT_WORDS.sub(r"\1", raw))


def _sender(msg: Message) -> tuple[str | None, str | None]:
    pairs = _addresses(msg, "From")
    if not pairs:
        raw = raw_header(msg, "From")
        pairs = [parseaddr(one_line(raw))] if raw else []
    if not pairs:
        return None, None
    display, spec = pairs[0]
    return display or None, normalise_address(spec)


def _recipients(msg: Message, name: str) -> tuple[str, ...]:
    found = (normalise_address(spec) for _, spec in _addresses(msg, name))
    return tuple(dict.fromkeys(address for address in found if address))


def _date(msg: Message) -> datetime | None:
    try:
        fits = _fits_registry(msg, "Date")
        when = getattr(msg.get("Date"), "datetime", None) if fits else None
    except Exception:  # fall back to the lenient parser below
        when = None
    if when is None:
        raw = raw_header(msg, "Date")
        when = parsedate_to_datetime(one_line(raw)[:200]) if raw else None
    if when is None:
        return None
    return (when.replace(tzinfo=UTC) if when.tzinfo is None else when).astimezone(UTC)


# --- automatic mail: ordered rules, the first that answers names the reason --


def _auto_submitted(msg: Message, sender: str | None) -> str | None:
    value = one_line(header_text(msg, "Auto-Submitted") or "").split(";")[0].strip().lower()
    return f"Auto-Submitted: {value}" if value and value != "no" else None  # RFC 3834


def _precedence(msg: Message, sender: str | None) -> str | None:
    value = one_line(header_text(msg, "Precedence") or "").lower()
    return f"Precedence: {value}" if value in ("bulk", "junk", "list") else None


def _autoreply_header(msg: Message, sender: str | None) -> str | None:
    present = [name for name in ("X-Autoreply", "X-Autorespond") if raw_header(msg, name)]
    return f"{present[0]} header" if present else None


def _mailing_list(msg: Message, sender: str | None) -> str | None:
    return "List-Id header" if raw_header(msg, "List-Id") is not None else None


def _system_sender(msg: Message, sender: str | None) -> str | None:
    local = (sender or "").partition("@")[0]
    return f"sender: {local}" if local in ("mailer-daemon", "postmaster") else None


AUTOMATIC_RULES: tuple[Callable[[Message, str | None], str | None], ...] = (
    _auto_submitted,
    _precedence,
    _autoreply_header,
    _mailing_list,
    _system_sender,
)


def find_automatic(msg: Message, sender_address: str | None) -> str | None:
    """Why the mail was sent by a machine (the first rule that says so), or None."""
    for rule in AUTOMATIC_RULES:
        if reason := rule(msg, sender_address):
            return reason
    return None


# --- the MIME tree: bodies and attachments ----------------------------------


def _leaves(msg: Message) -> Iterator[tuple[str, Message]]:
    """Leaf parts with a label ("1.2.1"), not descending into message/* parts."""
    stack: list[tuple[str, Message, int]] = [("1", msg, 0)]
    while stack:
        label, part, depth = stack.pop()
        payload = part.get_payload() if part.is_multipart() else None
        if part.get_content_maintype() == "multipart" and isinstance(payload, list):
            if depth < MAX_DEPTH:
                children = [(f"{label}.{i}", sub, depth + 1) for i, sub in enumerate(payload, 1)]
                stack.extend(reversed(children))
            continue
        yield label, part


def _walk(msg: Message, reading: _Reading, max_bytes: int) -> None:
    leaves = reading.attempt("mime tree", lambda: list(_leaves(msg)), [("1", msg)])
    for label, part in leaves:
        take = partial(_take_part, part, label, reading, max_bytes)
        reading.attempt(f"part {label}", take, None)


def _take_part(part: Message, label: str, reading: _Reading, max_bytes: int) -> None:
    # Each of these parses its header anew (the header registry is not cheap): once a part.
    kind = part.get_content_type()
    disposition = part.get_content_disposition()
    filename = _find_filename(part)
    is_body = disposition != "attachment" and not filename
    if kind.startswith("multipart/"):  # no parts found: read it as text
        reading.warnings.append(f"part {label}: multipart without parts, read as text")
        reading.texts.append(decode_text(part, label, reading.warnings))
    elif is_body and kind == "text/plain":
        reading.texts.append(decode_text(part, label, reading.warnings))
    elif is_body and kind == "text/html" and reading.html is None:
        reading.html = decode_text(part, label, reading.warnings)
    else:
        reading.attachments.append(_attachment(part, kind, filename, max_bytes))
        content_id = _content_id(part)
        if content_id and disposition != "attachment":
            reading.content_ids.append(content_id)


def decode_text(part: Message, label: str, warnings: list[str]) -> str:
    """A text part in its declared charset; else UTF-8, else cp1252 (with a warning)."""
    payload = payload_bytes(part)
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload.decode(charset)
    except (LookupError, UnicodeDecodeError):
        text, used = decode_fallback(payload)
        warnings.append(f"part {label}: cannot decode as {one_line(charset)!r}; read as {used}")
    return scrub(text).replace("\r\n", "\n").replace("\r", "\n")


def _find_filename(part: Message) -> str | None:
    try:
        return part.get_filename()
    except Exception:  # RFC 2231 parameters can be malformed in many ways
        return None


def sanitise_filename(name: str | None) -> str:
    """A bare file name: no directories, no control characters, at most 255 characters."""
    cleaned = "".join(char for char in scrub(name or "") if not is_control(char))
    cleaned = re.split(r"[/\\]", cleaned)[-1].strip()
    if cleaned in ("", ".", ".."):
        return "attachment"
    if len(cleaned) > MAX_FILENAME_CHARS:
        stem, dot, suffix = cleaned.rpartition(".")
        suffix = dot + suffix if dot and stem and len(suffix) <= 16 else ""
        cleaned = cleaned[: MAX_FILENAME_CHARS - len(suffix)] + suffix
    return cleaned


def _attachment(part: Message, kind: str, filename: str | None, max_bytes: int) -> Attachment:
    content = payload_bytes(part)
    return Attachment(
        filename=sanitise_filename(filename),
        content_type=one_line(kind).lower(),
        content=content if len(content) <= max_bytes else None,
        size=len(content),
    )


def _content_id(part: Message) -> str | None:
    ids = normalise_ids(scrub(raw_header(part, "Content-ID") or ""))
    return ids[0][1:-1] if ids else None  # bare, as `cid:` URLs name it


def _bodies(reading: _Reading) -> tuple[str | None, str | None, str | None]:
    html = reading.html
    text = "\n\n".join(reading.texts) if reading.texts else None
    if html is None:
        return text, None, None
    if text is None:
        text = reading.attempt("html as text", lambda: render_text(html), None)
    html_safe = reading.attempt("html sanitiser", lambda: sanitise_html(html), None)
    return text, html, html_safe


# --- quoted replies ---------------------------------------------------------

_ATTRIBUTION = (
    re.compile(r"^\s*On\b.*\bwrote:\s*$", re.IGNORECASE),
    re.compile(r"^\s*Am\b.*\bschrieb\b.*:\s*$", re.IGNORECASE),
)
_SEPARATOR = re.compile(
    r"^\s*-{2,}\s*(Original Message|Ursprüngliche Nachricht)\s*-{2,}\s*$", re.IGNORECASE
)


def _starts_quote(lines: list[str], index: int) -> bool:
    line = lines[index]
    if line.lstrip().startswith(">") or _SEPARATOR.match(line):
        return True
    # Clients wrap long attribution lines: "On ..., Name <a@b>" / "wrote:".
    joined = " ".join(lines[index : index + 2]) if line.lstrip()[:3] in ("On ", "Am ") else line
    return any(pattern.match(candidate) for pattern in _ATTRIBUTION for candidate in (line, joined))


def fold_quote(text: str) -> tuple[str, str]:
    """Split a reply into (what is new, what is quoted); no quote gives (text, "")."""
    lines = text.replace("\r\n", "\n").split("\n")
    start = next((i for i in range(len(lines)) if _starts_quote(lines, i)), None)
    if start is None:
        return text, ""
    new = lines[:start]
    while new and not new[-1].strip():
        new.pop()
    return "\n".join(new), "\n".join(lines[start:])
