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

Bounces are read from RFC 3464 delivery status notifications only; automatic
mail is recognised by the ordered rules in `AUTOMATIC_RULES`.
"""

from __future__ import annotations

import base64
import hashlib
import quopri
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesParser, Parser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from functools import partial
from html.parser import HTMLParser
from typing import TypeVar

import nh3

from hub.values import Attachment

T = TypeVar("T")

MAX_FILENAME_CHARS = 255
MAX_DEPTH = 40
MAX_HEADER_CHARS = 16_384
_ID_CHARS = r"[\x21-\x3b\x3d\x3f-\x7e]"  # printable ASCII without < > @
_BRACKETED_ID = re.compile(rf"<\s*({_ID_CHARS}+@{_ID_CHARS}+)\s*>")
_BARE_ID = re.compile(rf"^\s*({_ID_CHARS}+@{_ID_CHARS}+)\s*$")
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SAFE_URL_SCHEMES = nh3.ALLOWED_URL_SCHEMES | {"cid"}


@dataclass(frozen=True, slots=True)
class BounceRecipient:
    final_recipient: str
    action: str
    status: str
    diagnostic: str | None = None

    @property
    def is_permanent(self) -> bool:
        return self.status.startswith("5")


@dataclass(frozen=True, slots=True)
class Bounce:
    original_message_id: str | None
    recipients: tuple[BounceRecipient, ...]


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
    date: datetime | None
    text: str | None
    html: str | None
    html_safe: str | None
    attachments: tuple[Attachment, ...]
    inline_content_ids: tuple[str, ...]
    automatic: str | None
    bounce: Bounce | None
    warnings: tuple[str, ...]


# --- text hygiene -----------------------------------------------------------


def scrub(value: str) -> str:
    """Valid Unicode without NUL: surrogate escapes re-decoded (UTF-8, else cp1252)."""
    if not any("\ud800" <= char <= "\udfff" for char in value):
        return value.replace("\x00", "")
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # surrogates that are not escapes of bytes
        raw = value.encode("utf-8", "replace")
    return _decode_bytes(raw).replace("\x00", "")


def _decode_bytes(raw: bytes) -> str:
    return _decode_fallback(raw)[0]


def _decode_fallback(raw: bytes) -> tuple[str, str]:
    """(text, codec used): UTF-8 when the bytes are UTF-8, else cp1252 (never fails)."""
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace"), "cp1252"


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Zl", "Zp")


def one_line(value: str) -> str:
    """A header value for display: every control character (CR/LF too) becomes a space."""
    return "".join(" " if _is_control(char) else char for char in scrub(value)).strip()


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
    message_id = reading.attempt("Message-ID", lambda: _first_id(msg, "Message-ID"), None)
    sender_name, sender_address = reading.attempt("From", lambda: _sender(msg), (None, None))
    _walk(msg, reading, max_attachment_bytes)
    text, html, html_safe = _bodies(reading)
    _note_unreadable(msg, message_id, sender_address, reading)
    return ParsedMail(
        message_id=message_id,
        idempotency_key=message_id or _raw_key(raw),
        in_reply_to=reading.attempt("In-Reply-To", lambda: _ids(msg, "In-Reply-To"), ()),
        references=reading.attempt("References", lambda: _ids(msg, "References"), ()),
        subject=reading.attempt("Subject", lambda: _subject(msg), ""),
        sender_address=sender_address,
        sender_name=sender_name,
        to=reading.attempt("To", lambda: _recipients(msg, "To"), ()),
        date=reading.attempt("Date", lambda: _date(msg), None),
        text=text,
        html=html,
        html_safe=html_safe,
        attachments=tuple(reading.attachments),
        inline_content_ids=tuple(dict.fromkeys(reading.content_ids)),
        automatic=reading.attempt("automatic", lambda: find_automatic(msg, sender_address), None),
        bounce=reading.attempt("delivery status", lambda: find_bounce(msg, reading), None),
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


def _parse_bytes(raw: bytes, reading: _Reading) -> Message:
    parser = BytesParser(policy=policy.default)
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
    if message_id is None and _raw_header(msg, "Message-ID") is not None:
        reading.warnings.append("Message-ID: no valid id, keyed by a hash of the mail")
    if sender is None:
        reading.warnings.append("From: no readable address")


# --- headers ----------------------------------------------------------------


def _fits_registry(msg: Message, name: str) -> bool:
    # The header registry's parser slows down faster than linearly on huge values.
    return all(len(value) <= MAX_HEADER_CHARS for value in _raw_headers(msg, name))


def header_text(msg: Message, name: str) -> str | None:
    """A header's decoded value (RFC 2047), or its raw value when decoding fails."""
    raw = _raw_header(msg, name)
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


def _raw_header(msg: Message, name: str) -> str | None:
    wanted = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            return str(value)
    return None


def _raw_headers(msg: Message, name: str) -> list[str]:
    wanted = name.lower()
    return [scrub(str(value)) for key, value in msg.raw_items() if key.lower() == wanted]


def normalise_ids(value: str) -> tuple[str, ...]:
    """The `<left@right>` ids in a header value, in order, deduplicated; garbage ignored."""
    found = [f"<{match}>" for match in _BRACKETED_ID.findall(value)]
    if not found and (bare := _BARE_ID.match(value)):
        found = [f"<{bare.group(1)}>"]
    return tuple(dict.fromkeys(found))


def _ids(msg: Message, name: str) -> tuple[str, ...]:
    values = _raw_headers(msg, name)
    return tuple(dict.fromkeys(ref for value in values for ref in normalise_ids(value)))


def _first_id(msg: Message, name: str) -> str | None:
    ids = _ids(msg, name)
    return ids[0] if ids else None


def _subject(msg: Message) -> str:
    return one_line(header_text(msg, "Subject") or "")


def _addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    """(display name, addr-spec) pairs; the raw header is the fallback for garbage."""
    try:
        header = msg.get(name) if _fits_registry(msg, name) else None
        pairs = [(a.display_name, a.addr_spec) for a in getattr(header, "addresses", ())]
    except Exception:  # the registry's address parser has its own failure modes
        pairs = []
    if not pairs:
        raw = _raw_headers(msg, name)
        pairs = [pair for pair in getaddresses(raw) if any(pair)] if raw else []
    return [(one_line(display), one_line(spec)) for display, spec in pairs]


def _address(spec: str) -> str | None:
    spec = spec.strip().strip("<>").lower()
    local, at, domain = spec.rpartition("@")
    return spec if at and local and domain and " " not in spec else None


def _sender(msg: Message) -> tuple[str | None, str | None]:
    pairs = _addresses(msg, "From")
    if not pairs:
        raw = _raw_header(msg, "From")
        pairs = [parseaddr(one_line(raw))] if raw else []
    if not pairs:
        return None, None
    display, spec = pairs[0]
    return display or None, _address(spec)


def _recipients(msg: Message, name: str) -> tuple[str, ...]:
    found = (_address(spec) for _, spec in _addresses(msg, name))
    return tuple(dict.fromkeys(address for address in found if address))


def _date(msg: Message) -> datetime | None:
    try:
        fits = _fits_registry(msg, "Date")
        when = getattr(msg.get("Date"), "datetime", None) if fits else None
    except Exception:  # fall back to the lenient parser below
        when = None
    if when is None:
        raw = _raw_header(msg, "Date")
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
    present = [name for name in ("X-Autoreply", "X-Autorespond") if _raw_header(msg, name)]
    return f"{present[0]} header" if present else None


def _mailing_list(msg: Message, sender: str | None) -> str | None:
    return "List-Id header" if _raw_header(msg, "List-Id") is not None else None


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


def _is_body(part: Message, kind: str) -> bool:
    disposition = part.get_content_disposition()
    return (
        part.get_content_type() == kind and disposition != "attachment" and not _find_filename(part)
    )


def _take_part(part: Message, label: str, reading: _Reading, max_bytes: int) -> None:
    if part.get_content_maintype() == "multipart":  # no parts found: read it as text
        reading.warnings.append(f"part {label}: multipart without parts, read as text")
        reading.texts.append(decode_text(part, label, reading.warnings))
    elif _is_body(part, "text/plain"):
        reading.texts.append(decode_text(part, label, reading.warnings))
    elif _is_body(part, "text/html") and reading.html is None:
        reading.html = decode_text(part, label, reading.warnings)
    else:
        reading.attachments.append(_attachment(part, max_bytes))
        content_id = _content_id(part)
        if content_id and part.get_content_disposition() != "attachment":
            reading.content_ids.append(content_id)


def decode_text(part: Message, label: str, warnings: list[str]) -> str:
    """A text part in its declared charset; else UTF-8, else cp1252 (with a warning)."""
    payload = _payload_bytes(part)
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload.decode(charset)
    except (LookupError, UnicodeDecodeError):
        text, used = _decode_fallback(payload)
        warnings.append(f"part {label}: cannot decode as {one_line(charset)!r}; read as {used}")
    return scrub(text).replace("\r\n", "\n").replace("\r", "\n")


def _payload_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    inner = part.get_payload()
    if isinstance(inner, list):  # message/rfc822, message/delivery-status
        return b"".join(sub.as_bytes() for sub in inner if isinstance(sub, Message))
    return scrub(str(inner or "")).encode("utf-8")


def _find_filename(part: Message) -> str | None:
    try:
        return part.get_filename()
    except Exception:  # RFC 2231 parameters can be malformed in many ways
        return None


def sanitise_filename(name: str | None) -> str:
    """A bare file name: no directories, no control characters, at most 255 characters."""
    cleaned = "".join(char for char in scrub(name or "") if not _is_control(char))
    cleaned = re.split(r"[/\\]", cleaned)[-1].strip()
    if cleaned in ("", ".", ".."):
        return "attachment"
    if len(cleaned) > MAX_FILENAME_CHARS:
        stem, dot, suffix = cleaned.rpartition(".")
        suffix = dot + suffix if dot and stem and len(suffix) <= 16 else ""
        cleaned = cleaned[: MAX_FILENAME_CHARS - len(suffix)] + suffix
    return cleaned


def _attachment(part: Message, max_bytes: int) -> Attachment:
    content = _payload_bytes(part)
    return Attachment(
        filename=sanitise_filename(_find_filename(part)),
        content_type=one_line(part.get_content_type()).lower(),
        content=content if len(content) <= max_bytes else None,
        size=len(content),
    )


def _content_id(part: Message) -> str | None:
    ids = normalise_ids(scrub(_raw_header(part, "Content-ID") or ""))
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


def sanitise_html(html: str) -> str:
    """HTML fit to display: no script/style, no event handlers, no javascript: URLs."""
    return nh3.clean(html, url_schemes=_SAFE_URL_SCHEMES)


class _TextRenderer(HTMLParser):
    BLOCKS = frozenset(
        {"p", "div", "br", "tr", "li", "ul", "ol", "hr", "pre", "table", "section"}
        | {"h1", "h2", "h3", "h4", "h5", "h6", "blockquote"}
    )
    SKIPPED = frozenset(("script", "style", "head", "title"))

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIPPED:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCKS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.chunks.append(re.sub(r"[ \t\r\n]+", " ", data))


def render_text(html: str) -> str:
    """A plain-text rendering of HTML: text only, blocks on their own lines."""
    renderer = _TextRenderer()
    renderer.feed(html)
    renderer.close()
    lines = (line.strip() for line in "".join(renderer.chunks).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --- bounces (RFC 3464) -----------------------------------------------------


def find_bounce(msg: Message, reading: _Reading) -> Bounce | None:
    """The delivery status notification in a multipart/report, or None for other mail."""
    if msg.get_content_type() != "multipart/report":
        return None
    if str(msg.get_param("report-type", "") or "").lower() != "delivery-status":
        return None
    parts = [part for _, part in _report_parts(msg)]
    status = next((p for p in parts if p.get_content_type() == "message/delivery-status"), None)
    recipients = _bounce_recipients(status) if status is not None else ()
    if not recipients:
        reading.warnings.append("delivery status: no recipients found")
        return None
    return Bounce(original_message_id=_original_message_id(parts), recipients=recipients)


def _report_parts(msg: Message) -> Iterator[tuple[int, Message]]:
    payload = msg.get_payload()
    return enumerate(payload if isinstance(payload, list) else [])


def _status_blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status part: per message, then per recipient."""
    payload = part.get_payload()
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if isinstance(payload, list) and encoding in ("base64", "quoted-printable"):
        # The email package splits such a part into blocks before decoding it.
        payload = "\n\n".join(_block_source(block) for block in payload)
    if isinstance(payload, list) and all(isinstance(block, Message) for block in payload):
        return payload
    text = _decode_transfer(str(payload), encoding).replace("\r\n", "\n")
    parser = Parser(policy=policy.compat32)
    return [parser.parsestr(block, headersonly=True) for block in re.split(r"\n\s*\n", text)]


def _block_source(block: Message) -> str:
    lines = [f"{key}: {value}" for key, value in block.raw_items()]
    return "\n".join([*lines, str(block.get_payload() or "")])


def _decode_transfer(text: str, encoding: str) -> str:
    if encoding == "base64":
        return _decode_bytes(base64.b64decode("".join(text.split()) + "==="))
    if encoding == "quoted-printable":
        return _decode_bytes(quopri.decodestring(text.encode("utf-8", "replace")))
    return text


def _field(block: Message, name: str) -> str:
    return " ".join(one_line(_raw_header(block, name) or "").split())  # unfolded


def _bounce_recipients(part: Message) -> tuple[BounceRecipient, ...]:
    found = (_bounce_recipient(block) for block in _status_blocks(part))
    return tuple(recipient for recipient in found if recipient is not None)


def _bounce_recipient(block: Message) -> BounceRecipient | None:
    final = _field(block, "Final-Recipient") or _field(block, "Original-Recipient")
    address = _address(final.partition(";")[2] if ";" in final else final)
    if address is None:
        return None
    action = _field(block, "Action").lower()
    status = _STATUS.search(_field(block, "Status"))
    fallback = {"failed": "5.0.0", "delayed": "4.0.0"}.get(action, "")
    return BounceRecipient(
        final_recipient=address,
        action=action,
        status=status.group(0) if status else fallback,
        diagnostic=_field(block, "Diagnostic-Code") or None,
    )


def _original_message_id(parts: list[Message]) -> str | None:
    for part in parts:
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            headers = inner[0] if isinstance(inner, list) and inner else None
        elif kind == "text/rfc822-headers":
            text = _decode_bytes(_payload_bytes(part))
            headers = Parser(policy=policy.compat32).parsestr(text, headersonly=True)
        else:
            continue
        if isinstance(headers, Message) and (found := _first_id(headers, "Message-ID")):
            return found
    return None


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
