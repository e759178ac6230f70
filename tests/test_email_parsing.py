"""Raw mail into `ParsedMail`: the .eml corpus of tricky messages, and hypothesis.

Every file in `tests/email_corpus/` is a small message built to break a naive
parser (mislabelled charsets, 8-bit headers, header injection, DSNs, path
traversal in file names, ...). Parsing must never raise, whatever the bytes.
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.email.parsing import Bounce, ParsedMail, fold_quote, parse_mail

CORPUS = Path(__file__).parent / "email_corpus"
CORPUS_FILES = sorted(CORPUS.glob("*.eml"))
ORIGINAL_ID = "<c12.o34.0a1b2c3d.0123456789abcdef@hub.example>"
MB = 1024 * 1024


def parse(name: str, max_attachment_bytes: int = MB) -> ParsedMail:
    return parse_mail((CORPUS / name).read_bytes(), max_attachment_bytes)


def strings_of(parsed: ParsedMail) -> list[str]:
    values: list[str] = [parsed.subject, parsed.idempotency_key, *parsed.warnings]
    values += [*parsed.to, *parsed.references, *parsed.in_reply_to, *parsed.inline_content_ids]
    values += [a.filename for a in parsed.attachments]
    optional = (parsed.message_id, parsed.sender_address, parsed.sender_name, parsed.text)
    values += [v for v in (*optional, parsed.html, parsed.html_safe, parsed.automatic) if v]
    return values


def has_lone_surrogate(value: str) -> bool:
    return any("\ud800" <= char <= "\udfff" for char in value)


# --- charsets and headers ---------------------------------------------------


def test_body_declared_utf8_but_latin1_is_read_as_cp1252_with_a_warning():
    parsed = parse("utf8_declared_latin1_body.eml")

    assert parsed.text == "Schöne Grüße aus Köln\n"
    assert any("part 1" in w and "'utf-8'" in w and "cp1252" in w for w in parsed.warnings)


def test_unknown_charset_falls_back_to_utf8_and_names_the_charset():
    parsed = parse("unknown_charset.eml")

    assert parsed.text == "naïve café\n"
    assert any("x-klingon-42" in w for w in parsed.warnings)


def test_missing_message_id_is_keyed_by_the_hash_of_the_raw_mail():
    raw = (CORPUS / "missing_message_id.eml").read_bytes()

    parsed = parse_mail(raw, MB)

    assert parsed.message_id is None
    assert parsed.idempotency_key == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_message_id_is_the_idempotency_key_when_present():
    parsed = parse("auto_reply.eml")

    assert parsed.message_id == "<ooo-1@example.com>"
    assert parsed.idempotency_key == "<ooo-1@example.com>"


def test_raw_8bit_utf8_in_subject_and_from_is_decoded_without_surrogates():
    parsed = parse("raw_8bit_headers.eml")

    assert parsed.subject == "Grüße aus München"
    assert parsed.sender_name == "Jürgen Müller"
    assert parsed.sender_address == "juergen.mueller@example.de"
    assert not any(has_lone_surrogate(value) for value in strings_of(parsed))


def test_rfc2047_base64_utf8_subject_and_sender_name_are_decoded():
    parsed = parse("rfc2047_utf8_b.eml")

    assert parsed.subject == "Über die Rechnung – €42"
    assert parsed.sender_name == "Zoë Ångström"


def test_rfc2047_q_latin1_subject_over_folded_lines_and_sender_name_are_decoded():
    parsed = parse("rfc2047_latin1_q.eml")

    assert parsed.subject == "Kündigung zum Monatsende"
    assert parsed.sender_name == "Jürgen Weiß"
    assert parsed.text == "Sehr geehrte Damen und Herren, ich kündige.\n"


def test_a_sender_name_split_into_encoded_words_over_folded_lines_reads_back_whole():
    raw = (
        b"From: =?utf-8?q?J=C3=BCrgen_Wei?=\r\n =?utf-8?q?=C3=9F?= <jw@example.de>\r\n"
        b"To: =?utf-8?b?QW5uYQ==?= =?utf-8?b?LUxlbmE=?= <al@example.de>\r\n"
        b"Subject: Hallo\r\n\r\nText\r\n"
    )

    parsed = parse_mail(raw, MB)

    assert parsed.sender_name == "Jürgen Weiß"
    assert parsed.sender_address == "jw@example.de"
    assert parsed.to == ("al@example.de",)


def test_plain_words_between_encoded_words_keep_their_spaces():
    raw = b"From: =?utf-8?q?Dr.?= Anna =?utf-8?q?M=C3=BCller?= <am@example.de>\r\n\r\nText\r\n"

    assert parse_mail(raw, MB).sender_name == "Dr. Anna Müller"


def test_crlf_encoded_in_the_subject_becomes_spaces_not_a_new_header():
    parsed = parse("subject_crlf_injection.eml")

    assert parsed.subject == "hi  Bcc: x@evil"
    assert "\r" not in parsed.subject and "\n" not in parsed.subject


def test_garbage_from_gives_no_sender_and_a_warning():
    parsed = parse("garbage_from.eml")

    assert parsed.sender_address is None
    assert parsed.message_id is None
    assert parsed.idempotency_key.startswith("sha256:")
    assert "From: no readable address" in parsed.warnings


def test_date_is_aware_and_in_utc():
    parsed = parse("auto_reply.eml")

    assert parsed.date == datetime(2026, 11, 3, 9, 15, tzinfo=UTC)


def test_recipients_are_lowercased_addr_specs_in_order():
    parsed = parse("nested_related_inline_image.eml")

    assert parsed.to == ("service@hub.example", "second@example.com")


def test_reference_ids_are_normalised_deduplicated_and_garbage_is_ignored():
    parsed = parse("english_reply.eml")

    assert parsed.in_reply_to == (ORIGINAL_ID,)
    assert parsed.references == ("<first@example.com>", ORIGINAL_ID)


# --- MIME structure, HTML and attachments -------------------------------------


def test_nested_mixed_alternative_related_gives_text_html_and_inline_image():
    parsed = parse("nested_related_inline_image.eml")

    assert parsed.text == "See the photo below."
    assert parsed.html is not None and 'src="cid:photo1@example.com"' in parsed.html
    assert parsed.html_safe is not None and 'src="cid:photo1@example.com"' in parsed.html_safe
    assert parsed.inline_content_ids == ("photo1@example.com",)
    names = [(a.filename, a.content_type) for a in parsed.attachments]
    assert names == [("photo.png", "image/png"), ("invoice.pdf", "application/pdf")]
    assert parsed.attachments[0].content is not None
    assert parsed.attachments[0].content.startswith(b"\x89PNG")


def test_html_is_kept_as_sent_but_sanitised_for_display():
    parsed = parse("html_script.eml")

    assert parsed.html is not None and "<script>" in parsed.html
    safe = parsed.html_safe or ""
    assert "<b>support</b>" in safe and 'href="https://example.net/help"' in safe
    for forbidden in ("<script", "alert(", "<style", "onerror", "javascript:"):
        assert forbidden not in safe.lower()


def test_html_only_mail_gets_a_plain_text_rendering():
    parsed = parse("html_script.eml")

    assert parsed.text == "Hello support,\n\nclick me or help"


def test_attachment_names_are_bare_file_names_without_control_characters():
    parsed = parse("attachment_path_traversal.eml")

    names = [a.filename for a in parsed.attachments]
    assert names == ["passwd", "boot.iniBcc:x"]
    for name in names:
        assert "/" not in name and "\\" not in name
        assert not any(ord(char) < 32 for char in name)
    assert parsed.attachments[0].content == b"root:x:0:0::/root:/bin/sh\n"


def test_attachment_over_the_limit_keeps_its_size_but_not_its_content():
    big = EmailMessage()
    big["From"] = "Big <big@example.com>"
    big["Message-ID"] = "<big@example.com>"
    big.set_content("See attached.")
    payload = random.Random(7).randbytes(3 * MB)
    big.add_attachment(payload, maintype="application", subtype="zip", filename="dump.zip")

    parsed = parse_mail(big.as_bytes(policy=SMTP), max_attachment_bytes=MB)

    (attachment,) = parsed.attachments
    assert attachment.filename == "dump.zip"
    assert attachment.content is None
    assert attachment.size == 3 * MB
    assert parsed.text == "See attached.\n"


def test_attachment_within_the_limit_keeps_its_content():
    parsed = parse("nested_related_inline_image.eml", max_attachment_bytes=MB)

    assert all(a.content is not None and len(a.content) == a.size for a in parsed.attachments)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("C:\\Users\\x\\evil.exe", "evil.exe"), ("..", "attachment"), ("", "attachment")],
)
def test_odd_attachment_names_are_reduced_to_a_safe_name(name: str, expected: str):
    mail = EmailMessage()
    mail["From"] = "a@example.com"
    mail.set_content("x")
    mail.add_attachment(b"data", maintype="application", subtype="octet-stream")
    mail.get_payload()[1].set_param("filename", name, header="Content-Disposition")

    parsed = parse_mail(mail.as_bytes(), MB)

    assert parsed.attachments[0].filename == expected


def test_overlong_attachment_name_is_cut_to_255_characters_keeping_the_extension():
    mail = EmailMessage()
    mail["From"] = "a@example.com"
    mail.set_content("x")
    mail.add_attachment(b"%PDF", maintype="application", subtype="pdf", filename="a" * 400 + ".pdf")

    parsed = parse_mail(mail.as_bytes(), MB)

    name = parsed.attachments[0].filename
    assert len(name) == 255 and name.endswith(".pdf")


# --- automatic mail and bounces ---------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("auto_reply.eml", "Auto-Submitted: auto-replied"),
        ("precedence_bulk.eml", "Precedence: bulk"),
        ("mailer_daemon_plain.eml", "sender: mailer-daemon"),
        ("english_reply.eml", None),
        ("german_reply.eml", None),
    ],
)
def test_automatic_mail_is_recognised_with_its_reason(name: str, reason: str | None):
    assert parse(name).automatic == reason


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Auto-Submitted: no", None),
        ("Auto-Submitted: auto-generated", "Auto-Submitted: auto-generated"),
        ("Precedence: junk", "Precedence: junk"),
        ("Precedence: first-class", None),
        ("X-Autoreply: yes", "X-Autoreply header"),
        ("X-Autorespond: Out of office", "X-Autorespond header"),
        ("List-Id: <news.example.com>", "List-Id header"),
    ],
)
def test_automatic_headers_are_read_as_rfc3834_and_common_practice_say(
    header: str, reason: str | None
):
    raw = f"From: a@example.com\n{header}\nSubject: x\n\nbody\n".encode()

    assert parse_mail(raw, MB).automatic == reason


def test_postmaster_sender_is_automatic():
    raw = b"From: Postmaster@example.com\nSubject: x\n\nbody\n"

    assert parse_mail(raw, MB).automatic == "sender: postmaster"


def test_mailer_daemon_mail_without_delivery_status_is_no_bounce():
    assert parse("mailer_daemon_plain.eml").bounce is None


def test_hard_bounce_names_the_recipient_status_and_original_message():
    parsed = parse("dsn_hard_bounce.eml")

    assert isinstance(parsed.bounce, Bounce)
    assert parsed.bounce.original_message_id == ORIGINAL_ID
    (recipient,) = parsed.bounce.recipients
    assert recipient.final_recipient == "nobody@example.com"
    assert recipient.action == "failed"
    assert recipient.status == "5.1.1"
    assert recipient.is_permanent
    assert recipient.diagnostic == (
        "smtp; 550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown"
    )


def test_delay_notice_is_a_temporary_bounce_for_each_recipient():
    parsed = parse("dsn_delay.eml")

    assert parsed.bounce is not None
    assert parsed.bounce.original_message_id == ORIGINAL_ID
    recipients = [(r.final_recipient, r.action, r.status) for r in parsed.bounce.recipients]
    assert recipients == [
        ("slow@example.org", "delayed", "4.4.1"),
        ("other@example.org", "delayed", "4.4.1"),
    ]
    assert not any(r.is_permanent for r in parsed.bounce.recipients)
    assert parsed.bounce.recipients[1].diagnostic is None


def test_ordinary_mail_is_no_bounce():
    assert parse("english_reply.eml").bounce is None


# --- quoted replies ---------------------------------------------------------


def test_german_reply_is_split_at_the_attribution_line():
    parsed = parse("german_reply.eml")

    new, quoted = fold_quote(parsed.text or "")

    assert new == "Vielen Dank, das hat geholfen.\n\nGruß\nHanna"
    assert quoted.startswith("Am 3. Nov. 2026 um 10:00 schrieb Service <service@hub.example>:")
    assert "> bitte starten Sie das Gerät neu." in quoted


def test_english_reply_is_split_at_the_attribution_line():
    parsed = parse("english_reply.eml")

    new, quoted = fold_quote(parsed.text or "")

    assert new == "Thanks, that fixed it."
    assert quoted.startswith("On Tue, Nov 3, 2026 at 10:00 AM Service")
    assert "> Please restart the device." in quoted


def test_attribution_wrapped_over_two_lines_still_starts_the_quote():
    text = "Fine.\n\nOn Tue, Nov 3, 2026 at 10:00 AM Service <service@hub.example>\nwrote:\n> x"

    assert fold_quote(text) == ("Fine.", text[7:])


@pytest.mark.parametrize(
    "separator", ["-----Original Message-----", "-----Ursprüngliche Nachricht-----"]
)
def test_outlook_separator_starts_the_quote(separator: str):
    text = f"Done.\n\n{separator}\nFrom: Service\nSent: today"

    assert fold_quote(text) == ("Done.", f"{separator}\nFrom: Service\nSent: today")


def test_bare_quote_marks_start_the_quote():
    quote = "> Do you agree?\n> Really?"

    assert fold_quote(f"Yes.\n\n{quote}") == ("Yes.", quote)


def test_text_without_quote_is_returned_whole():
    text = "Only new text.\n\nOn second thought, nothing else.\n"

    assert fold_quote(text) == (text, "")


# --- never raises -----------------------------------------------------------


def assert_well_formed(parsed: ParsedMail) -> None:
    assert isinstance(parsed, ParsedMail)
    assert parsed.idempotency_key
    assert not any(has_lone_surrogate(value) for value in strings_of(parsed))
    assert "\n" not in parsed.subject and "\r" not in parsed.subject
    assert all("/" not in a.filename and 0 < len(a.filename) <= 255 for a in parsed.attachments)


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.name for p in CORPUS_FILES])
def test_every_corpus_file_parses_into_well_formed_values(path: Path):
    assert_well_formed(parse_mail(path.read_bytes(), MB))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise(raw: bytes):
    assert_well_formed(parse_mail(raw, 1024))


@st.composite
def mutated_corpus_files(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(CORPUS_FILES)).read_bytes())
    for _ in range(draw(st.integers(1, 12))):
        at = draw(st.integers(0, len(data)))
        match draw(st.sampled_from(("flip", "insert", "delete", "truncate"))):
            case "flip" if at < len(data):
                data[at] = draw(st.integers(0, 255))
            case "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=16))
            case "delete":
                del data[at : at + draw(st.integers(1, 64))]
            case "truncate":
                del data[at:]
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_corpus_files())
def test_randomly_mutated_corpus_files_never_raise(raw: bytes):
    assert_well_formed(parse_mail(raw, 1024))
