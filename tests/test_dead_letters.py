"""Dead letters: kept raw, listed after three failed tries, replayable, never lost."""

from __future__ import annotations

import httpx

from hub.context import Hub
from hub.mailboxes import keep_raw, mark_failed
from hub.models import RawMessage
from tests.conftest import SignedIn


async def a_quarantined_message(hub: Hub) -> RawMessage:
    raw = await keep_raw(hub, "email", "imap://hub@mx/INBOX", 7, 42, b"garbage \xff\xfe")
    for _ in range(3):
        raw = await mark_failed(hub, raw.id, "UnreadableSenderError: no sender")
    return raw


async def test_a_message_is_quarantined_after_its_third_failed_try(hub: Hub):
    raw = await keep_raw(hub, "email", "imap://hub@mx/INBOX", 7, 42, b"x")

    statuses = [(await mark_failed(hub, raw.id, "boom")).status for _ in range(3)]

    assert statuses == ["failed", "failed", "quarantined"]


async def test_keeping_the_same_message_twice_stores_it_once(hub: Hub):
    first = await keep_raw(hub, "email", "imap://hub@mx/INBOX", 7, 42, b"x")
    second = await keep_raw(hub, "email", "imap://hub@mx/INBOX", 7, 42, b"x")

    assert first.id == second.id


async def test_dead_letters_are_listed_with_their_error(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn
):
    raw = await a_quarantined_message(hub)

    listed = (await client.get("/api/dead-letters", headers=agent.headers)).json()

    assert [(d["id"], d["status"], d["attempts"], d["size"]) for d in listed["dead_letters"]] == [
        (raw.id, "quarantined", 3, 10)
    ]
    assert "no sender" in listed["dead_letters"][0]["error"]


async def test_a_replay_hands_the_stored_bytes_to_the_channel_again(
    hub: Hub, client: httpx.AsyncClient, agent: SignedIn, supervisor: SignedIn
):
    raw = await a_quarantined_message(hub)
    handed: list[bytes] = []

    async def fixed_channel(_hub: Hub, message: RawMessage) -> int | None:
        handed.append(message.content)
        return None

    hub.replayers["email"] = fixed_channel

    refused = await client.post(f"/api/dead-letters/{raw.id}/replay", headers=agent.headers)
    replayed = await client.post(f"/api/dead-letters/{raw.id}/replay", headers=supervisor.headers)
    again = await client.post(f"/api/dead-letters/{raw.id}/replay", headers=supervisor.headers)

    assert refused.status_code == 403
    assert replayed.status_code == 200 and replayed.json()["status"] == "ingested"
    assert handed == [b"garbage \xff\xfe"]
    assert again.status_code == 409
    listed = (await client.get("/api/dead-letters", headers=agent.headers)).json()
    assert listed["dead_letters"] == []


async def test_a_replay_that_fails_again_keeps_the_dead_letter(
    hub: Hub, client: httpx.AsyncClient, supervisor: SignedIn
):
    raw = await a_quarantined_message(hub)

    async def still_broken(_hub: Hub, _message: RawMessage) -> int | None:
        raise ValueError("still unreadable")

    hub.replayers["email"] = still_broken

    answer = await client.post(f"/api/dead-letters/{raw.id}/replay", headers=supervisor.headers)

    assert answer.status_code == 409 and "still unreadable" in answer.json()["detail"]
    listed = (await client.get("/api/dead-letters", headers=supervisor.headers)).json()
    assert [d["id"] for d in listed["dead_letters"]] == [raw.id]
