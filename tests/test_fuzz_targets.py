"""The fuzz targets (`fuzz/`) in CI: every seed passes, and so does every input a past run
found once its bug was fixed. The fuzzing itself is `python -m fuzz --seconds N`."""

from __future__ import annotations

import logging

import pytest

from fuzz.invariants import InvariantError, check_inert_html, check_storable
from fuzz.seeds import SEEDS
from fuzz.targets import BOUNDARY, TARGETS, run_one
from hub.values import Inbound


def multipart(*parts: tuple[str, str, str]) -> bytes:
    """A multipart/form-data body in the target's boundary: (name, filename, value) each."""
    body = ""
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        kind = "Content-Type: text/plain\r\n" if filename else ""
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{kind}\r\n{value}\r\n"
    return f"{body}--{BOUNDARY}--\r\n".encode()


# Inputs earlier runs found, by target; each broke the target's contract before its fix.
FIXED_FINDINGS = {
    "chat_frame": [
        b'{"type": {"type": "hello"}}',
        b'{"type": "message", "client_id": "c1", "text": "a\\u0000b"}',
        b'{"type": "message", "client_id": "c1", "text": "a\\ud800b"}',
        b'{"type": "leave_message", "client_id": "c1", "email": "a\\u0000@x.de", "text": "x"}',
    ],
    "webform": [
        b"\x00" + b"[" * 100_000,
        b'\x00{"name": "A\\ud800", "email": "anna@example.com", "message": "x"}',
        b"\x02"
        + multipart(
            ("name", "", "Anna"),
            ("email", "", "anna@example.com"),
            ("message", "", "Anbei"),
            ("attachments", "a.txt", "x"),
        ).replace(b"Content-Type: text/plain", b"Content-Type: te\x00xt/plain"),
    ],
    "voice_status": [
        b"CallSid=CA1&CallDuration=4%C2%B2",
        b"CallSid=CA1&Timestamp=Fri%2C+04+Dec+2026+13%3A00%3A00+28250099999999999999999",
        b"CallSid=CA1&Timestamp=Fri%2C+04+Dec+202622222222222222222222222+13%3A00%3A00",
    ],
}


@pytest.fixture(autouse=True)
def quiet_parsers():
    logging.disable(logging.WARNING)  # the parsers log what they leave out
    yield
    logging.disable(logging.NOTSET)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_every_seed_passes_its_target(name: str):
    seeds = SEEDS[name]()

    for seed in seeds:
        run_one(TARGETS[name], seed)
    assert seeds


@pytest.mark.parametrize(
    ("name", "data"),
    [(name, data) for name, inputs in FIXED_FINDINGS.items() for data in inputs],
)
def test_an_input_a_fuzz_run_found_passes_since_its_fix(name: str, data: bytes):
    run_one(TARGETS[name], data)


def test_the_invariants_catch_html_with_active_content_and_a_subject_of_600_characters():
    with pytest.raises(InvariantError, match="active content"):
        check_inert_html('<a href="javascript:x">x</a>')
    with pytest.raises(InvariantError, match="subject of 600"):
        check_storable(Inbound("email", "email", "a@b.de", "id", subject="x" * 600))


def test_a_signed_sms_webhook_hands_on_nothing_the_database_refuses():
    run_one(TARGETS["sms_incoming"], b"From=%2B491512345678&Body=a%00b&MessageSid=SM1")
