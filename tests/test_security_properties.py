"""Hostile input, as properties hypothesis tries to break: sanitised mail HTML has no active
content, a rendered mail has exactly the headers the hub put there, and any Unicode in a
subject or a sender's name comes back as it was sent."""

from __future__ import annotations

import email
import email.policy
from email.headerregistry import Address
from html.parser import HTMLParser

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.email.bulk import BulkSmtpSender
from channels.email.composition import COPIED_HEADERS, render_message, render_subject
from channels.email.html_text import sanitise_html
from channels.email.parsing import parse_mail
from hub.values import Outbound

ACTIVE_TAGS = {
    "script", "iframe", "frame", "frameset", "object", "embed", "applet", "base", "meta",
    "link", "form", "input", "button", "textarea", "select", "style", "svg", "math",
}  # fmt: skip
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href", "background", "poster"}
ACTIVE_SCHEMES = ("javascript:", "vbscript:", "data:")

# Pieces attackers use, shuffled together with plain text by hypothesis.
HOSTILE = [
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
    "<a href='javascript:alert(1)'>x</a>",
    "<a href=' jav&#x09;ascript:alert(1)'>x</a>", "<svg onload=alert(1)>", "<iframe src=//evil>",
    "<object data=x></object>", "<embed src=x>", "<form action=//evil><input></form>",
    "<base href=//evil/>", "<meta http-equiv=refresh content='0;url=//evil'>",
    "<style>@import 'x'</style>", "<div style='background:url(javascript:x)'>", "<math><mi>",
    "<scr<script>ipt>", "<<script>>", "<!--<script>-->", "<![CDATA[<script>]]>",
    "<body onload=x>", "<p title='\"><script>x</script>'>", "<a href=data:text/html,<script>>",
    "<img src='x' o\nnerror=x>", "<details open ontoggle=x>", "<video poster=javascript:x>",
]  # fmt: skip
html_fragments = st.lists(
    st.one_of(st.sampled_from(HOSTILE), st.text(max_size=20)), min_size=1, max_size=12
).map("".join)


class ActiveContentFinder(HTMLParser):
    """What a browser would treat as active in the HTML: tags, handlers, script URLs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ACTIVE_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.found.append(f"{tag}[{name}]")
            squeezed = "".join((value or "").split()).lower()
            if name in URL_ATTRIBUTES and squeezed.startswith(ACTIVE_SCHEMES):
                self.found.append(f"{tag}[{name}={value}]")


@settings(max_examples=400, deadline=None)
@given(html_fragments)
def test_sanitised_html_has_no_active_content(html: str):
    finder = ActiveContentFinder()
    finder.feed(sanitise_html(html))
    finder.close()

    assert finder.found == []


SENDER = Address("Service", "service", "omnihub.test")
BASE_HEADERS = {"from", "to", "subject", "date", "message-id", "mime-version", "content-type",
                "content-transfer-encoding"}  # fmt: skip
header_values = st.text(max_size=80)
header_maps = st.dictionaries(
    st.sampled_from([*sorted(COPIED_HEADERS), "bcc", "x-evil", "content-type", "Subject"]),
    header_values,
    max_size=4,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=header_values, headers=header_maps, text=st.text(max_size=200))
def test_a_rendered_mail_has_only_the_headers_the_hub_put_there(subject, headers, text):
    outbound = Outbound("email", "anna@example.com", text, "k1", subject=subject, headers=headers)

    raw = render_message(outbound, SENDER, "<m1@omnihub.test>").as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)

    names = [name.lower() for name in parsed]
    allowed = BASE_HEADERS | set(COPIED_HEADERS)
    assert set(names) <= allowed, names
    assert len(names) == len(set(names)), "no header twice"
    assert "bcc" not in names and "x-evil" not in names


printable = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Co", "Cn")),
    min_size=1,
    max_size=60,
).filter(lambda value: value == " ".join(value.split()) and "=?" not in value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=printable, name=st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=1)
)
def test_any_unicode_in_a_subject_round_trips(subject: str, name: str):
    outbound = Outbound("email", "anna@example.com", "Hallo", "k1", subject=subject)
    sender = Address(name, "service", "omnihub.test")

    raw = render_message(outbound, sender, "<m1@omnihub.test>").as_bytes()
    parsed = parse_mail(raw, 1_000_000)

    assert render_subject(subject) == subject
    assert parsed.subject == subject
    assert (parsed.sender_name, parsed.sender_address) == (name, "service@omnihub.test")


def _rendered_sender_name(name: str) -> str | None:
    """The sender name as read back from the full renderer, checked the same from the fast
    one (campaigns, replies and confirmations)."""
    sender = Address(name, "service", "omnihub.test")
    outbound = Outbound("email", "anna@example.com", "Hallo", "k1", subject="Hallo")
    full = render_message(outbound, sender, "<m1@x>").as_bytes()
    bulk = BulkSmtpSender("127.0.0.1", 25, mail_from=str(sender), secret_key="x" * 40)
    fast = bulk.render(outbound, "<m1@x>", "reply+1@omnihub.test")
    assert email.message_from_bytes(fast, policy=email.policy.default).defects == []
    assert parse_mail(fast, 1_000_000).sender_name == name
    return parse_mail(full, 1_000_000).sender_name


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=printable)
def test_any_unicode_sender_name_round_trips_folded_into_several_encoded_words(name: str):
    assert _rendered_sender_name(name) == name


def test_a_space_where_a_long_unicode_sender_name_is_folded_is_kept():
    name = "0" + "\u0800" * 14 + " ¡"

    assert _rendered_sender_name(name) == name


def test_a_long_unicode_sender_name_folded_into_two_encoded_words_round_trips():
    name = "00000¡¡¡¡¡¡¡\u0800" + "\U00010000" * 7

    assert _rendered_sender_name(name) == name
