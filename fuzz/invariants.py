"""What every parser's output must satisfy before the hub may store or show it.

`check_storable(inbound)` holds for every `hub.Inbound` a channel hands to
intake: the database takes it as it is. `check_inert_html(html)` holds for
sanitised mail HTML: nothing in it a browser would run or submit.
`check_reply_headers(parsed)` holds for every parsed mail: a reply built from
its subject and addresses carries exactly the headers the hub set.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
from collections.abc import Iterator
from email.headerregistry import Address
from typing import Any

from channels.email.composition import COPIED_HEADERS, render_message
from channels.email.parsing import ParsedMail
from hub.delivery import PermanentDeliveryError
from hub.intake import MAX_EXTERNAL_ID, MAX_SUBJECT
from hub.values import Inbound, Outbound
from tests.test_security_properties import ActiveContentFinder

SENDER = Address("Service", "service", "omnihub.test")
REPLY_HEADERS = {
    "from", "to", "subject", "date", "message-id", "mime-version", "content-type",
    "content-transfer-encoding", "in-reply-to", "references",
}  # fmt: skip


class InvariantError(AssertionError):
    """A parser's output breaks its contract: the input is a finding."""


def strings_in(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every string inside a value (dataclasses, mappings, sequences), with its path."""
    if isinstance(value, str):
        yield where, value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            yield from strings_in(getattr(value, item.name), f"{where}.{item.name}")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_in(key, f"{where}[key]")
            yield from strings_in(item, f"{where}[{key!r}]")
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            yield from strings_in(item, f"{where}[{index}]")


def check_clean_strings(value: Any) -> None:
    """No NUL (PostgreSQL refuses it in text) and no lone surrogate (not encodable)."""
    for where, text in strings_in(value):
        if "\x00" in text:
            raise InvariantError(f"NUL in {where}: {text[:80]!r}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvariantError(f"lone surrogate in {where}: {text[:80]!r}") from None


def check_storable(inbound: Inbound) -> None:
    if not 1 <= len(inbound.external_id) <= MAX_EXTERNAL_ID:
        raise InvariantError(f"external id of {len(inbound.external_id)} characters")
    if inbound.subject is not None and len(inbound.subject) > MAX_SUBJECT:
        raise InvariantError(f"subject of {len(inbound.subject)} characters")
    check_clean_strings(inbound)


def check_inert_html(html: str | None) -> None:
    if html is None:
        return
    finder = ActiveContentFinder()
    finder.feed(html)
    finder.close()
    if finder.found:
        raise InvariantError(f"active content in sanitised HTML: {finder.found[:5]}")


def check_reply_headers(parsed: ParsedMail) -> None:
    """Render a reply to the mail as the hub would and read its header names back."""
    threading = " ".join(f"<{ref.strip('<>')}>" for ref in parsed.references[-5:])
    outbound = Outbound(
        "email",
        parsed.sender_address or "anna@example.com",
        parsed.text or "",
        "fuzz",
        subject=f"Re: {parsed.subject}",
        html=parsed.html_safe,
        headers={"In-Reply-To": parsed.message_id or "", "References": threading},
    )
    try:
        raw = render_message(outbound, SENDER, "<reply@omnihub.test>").as_bytes()
    except PermanentDeliveryError:
        return  # an address SMTP cannot carry: the dispatcher records it as failed
    names = [name.lower() for name in email.message_from_bytes(raw, policy=email.policy.default)]
    extra = set(names) - REPLY_HEADERS - {name.lower() for name in COPIED_HEADERS}
    if extra or len(names) != len(set(names)):
        raise InvariantError(f"the reply carries headers {names}")
