"""The e-mail the hub sends, composed from an `Outbound`: headers that cannot be forged.

From (settings.mail_from), To, Subject, Date, the hub's own HMAC'd
Message-ID (see `message_ids`), and the few headers the hub may ask for in
`outbound.headers` (`COPIED_HEADERS`; any other name is ignored; In-Reply-To
and References keep only their <message-ids>). Header values can come from
customers (a subject quoted back, a display name), so none of them can ever
add a header: control characters become spaces, and RFC 2047 encoded-words
are decoded until the value reads back unchanged, so an encoded CR/LF (or an
encoded-word hiding another) ends up as harmless text. Text only is
text/plain; text and HTML are multipart/alternative.
"""

from __future__ import annotations

import base64
import email.policy
import functools
import logging
import re
import string
from collections.abc import Mapping
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from hub.delivery import PermanentDeliveryError
from hub.values import Outbound

log = logging.getLogger(__name__)

# 7-bit bodies (quoted-printable or base64 where needed) ask nothing of the
# relay: no 8BITMIME. Lines end in CRLF, as SMTP wants.
POLICY = email.policy.SMTP.clone(cte_type="7bit")
# The only headers copied from `outbound.headers`, by their lower-case name.
COPIED_HEADERS = {
    name.lower(): name
    for name in (
        "In-Reply-To",
        "References",
        "Reply-To",
        "Auto-Submitted",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    )
}
# Headers that carry nothing but a list of <message-ids> (RFC 5322 section 3.6.4).
MESSAGE_ID_HEADERS = {"In-Reply-To", "References"}
LINE = 78  # RFC 5322's "SHOULD" for a line, where the e-mail library folds
ENCODED_WORD = 66  # characters: "Reply-To: " and one encoded-word stay within LINE
_Q_PLAIN = frozenset(string.ascii_letters + string.digits + "!*+-/")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
# C0 controls (CR, LF, TAB, NUL, ...), DEL, C1 controls, Unicode line breaks.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_DECODE_ROUNDS = 5
# Unstructured headers read back unchanged when they hold no control character,
# nothing unprintable and no encoded-word (`=?`).
_UNSTRUCTURED = {"subject", "auto-submitted", "list-unsubscribe", "list-unsubscribe-post"}


def parse_mail_from(mail_from: str) -> Address:
    """The one address in mail_from (`Service <service@example.com>` or a bare address)."""
    value = find_safe_header_value("From", mail_from)
    header = POLICY.header_factory("From", value) if value else None
    addresses = getattr(header, "addresses", ())
    if len(addresses) != 1 or not addresses[0].domain or not addresses[0].username:
        raise ValueError(f"{mail_from!r} is not one e-mail address with a domain")
    return addresses[0]


def check_recipient(recipient: str) -> str:
    """The bare address to deliver to; PermanentDeliveryError for one SMTP cannot carry."""
    try:
        address = Address(addr_spec=recipient.strip())
    except Exception as error:  # ValueError, HeaderParseError, and IndexError on some junk
        raise PermanentDeliveryError(f"not an e-mail address: {recipient!r}") from error
    if not (address.username and address.domain and address.addr_spec.isascii()):
        # A non-ASCII address needs SMTPUTF8 (RFC 6531), which this sender does not speak.
        raise PermanentDeliveryError(f"cannot send to {recipient!r} over SMTP without SMTPUTF8")
    return address.addr_spec


def render_message(
    outbound: Outbound, sender: Address, message_id: str, reply_to: str | None = None
) -> EmailMessage:
    message = EmailMessage(policy=POLICY)
    message.set_raw("From", address_header("From", sender))
    message["To"] = check_recipient(outbound.recipient)
    if outbound.subject:
        message["Subject"] = render_subject(outbound.subject)
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id
    copied = copied_headers(outbound.headers)
    if reply_to and "Reply-To" not in copied:
        reply_address = Address(sender.display_name, addr_spec=reply_to)
        message.set_raw("Reply-To", address_header("Reply-To", reply_address))
    for name, value in copied.items():
        message[name] = value
    message.set_content(outbound.text)
    if outbound.html:
        message.add_alternative(outbound.html, subtype="html")
    return message


def address_header(name: str, address: Address) -> str:
    """The value of an address header (From, Reply-To) with the hub's own address, folded
    (CRLF and a space) and ready to write after `name: `.

    A display name that is not ASCII is encoded here, not by the e-mail library:
    its folder may write a space of the name as the only gap between two
    encoded-words, and RFC 2047 (section 6.2) tells every reader to drop such a gap.
    Here each encoded-word holds whole characters, its spaces inside it, and
    every line stays within 78 characters."""
    value = str(address)
    if address.display_name.isascii():
        if fits_line(name, value, LINE):
            return value  # as the library would write it, without its parse and fold (~0.3 ms)
        return POLICY.header_factory(name, value).fold(policy=POLICY).split(":", 1)[1].strip()
    lines = list(_encoded_words(address.display_name))
    angle_addr = f"<{address.addr_spec}>"
    last = len(lines[-1]) + (len(name) + 2 if len(lines) == 1 else 1)
    if last + 1 + len(angle_addr) <= LINE:
        lines[-1] += f" {angle_addr}"
    else:
        lines.append(angle_addr)
    return "\r\n ".join(lines)


def fits_line(name: str, value: str, width: int) -> bool:
    """Whether `name: value` is one ASCII line of at most `width` characters."""
    one_line = "\n" not in value and "\r" not in value
    return value.isascii() and one_line and len(name) + 2 + len(value) <= width


@functools.lru_cache(maxsize=16)  # the hub's own names: a reply's Reply-To is rendered per message
def _encoded_words(text: str) -> tuple[str, ...]:
    """`text` as RFC 2047 encoded-words of whole characters, each within ENCODED_WORD
    characters, in Q or B encoding, whichever is shorter (Q by a margin: it reads as text)."""
    words: list[str] = []
    piece = b""
    for character in text:
        longer = piece + character.encode()
        if piece and len(_encoded_word(longer)) > ENCODED_WORD:
            words.append(_encoded_word(piece))
            longer = character.encode()
        piece = longer
    return (*words, _encoded_word(piece))


def _encoded_word(piece: bytes) -> str:
    # RFC 2047 section 5 (3): in a phrase, Q may leave only these characters as they are.
    q = "".join(
        "_" if byte == 0x20 else chr(byte) if chr(byte) in _Q_PLAIN else f"={byte:02X}"
        for byte in piece
    )
    b = base64.b64encode(piece).decode("ascii")
    return f"=?utf-8?q?{q}?=" if len(q) < len(b) + 5 else f"=?utf-8?b?{b}?="  # as the library


def render_subject(subject: str) -> str:
    """A subject that cannot add a header; one that will not settle loses its `=?` markers."""
    safe = find_safe_header_value("Subject", subject)
    if safe is not None:
        return safe
    defused = _CONTROL.sub(" ", subject).replace("=?", "= ?")
    return find_safe_header_value("Subject", defused) or ""


def copied_headers(headers: Mapping[str, object]) -> dict[str, str]:
    """The whitelisted headers, by their proper names; unsafe values are left out."""
    copied: dict[str, str] = {}
    for key, value in headers.items():
        name = COPIED_HEADERS.get(key.strip().lower())
        if name is None or not isinstance(value, str):
            continue
        safe = find_safe_header_value(name, value)
        if safe and name in MESSAGE_ID_HEADERS:
            safe = " ".join(_MESSAGE_ID.findall(safe))
        if safe:
            copied[name] = safe
        else:
            log.warning("left out header %s: its value is not safe to send", name)
    return copied


def find_safe_header_value(name: str, value: str) -> str | None:
    """The value as text the e-mail library reads back unchanged, or None.

    Control characters become spaces, and encoded-words (RFC 2047) are decoded
    round after round until nothing changes, so whatever they hid is plain text
    that the generator encodes again on the way out. A value that does not
    settle, cannot be parsed or parses with defects is refused.
    """
    if name.lower() in _UNSTRUCTURED and value.isprintable() and "=?" not in value:
        return value  # nothing for the parser to change: spare it (a campaign's hot path)
    text = _CONTROL.sub(" ", value)
    for _ in range(MAX_DECODE_ROUNDS):
        read = _read_back(name, text)
        if read is None or read == text:
            return read
        text = read
    return None


def _read_back(name: str, text: str) -> str | None:
    try:
        header = POLICY.header_factory(name, text)
    except Exception:  # the header parser has known crashes on hostile input
        return None
    if header.defects:
        return None
    return _CONTROL.sub(" ", str(header))
