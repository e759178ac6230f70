"""The customer's history: one timeline across channels, keyset-paged, and the card."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from hub.context import Hub
from hub.intake import accept_inbound
from hub.values import Inbound
from tests.conftest import SignedIn

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CHANNELS = (
    ("email", "email", "anna@example.com"),
    ("sms", "phone", "+4915112345678"),
    ("voice", "phone", "+4915112345678"),
    ("chat", "chat", "chat-anna"),
)


async def anna(client: httpx.AsyncClient, agent: SignedIn) -> int:
    response = await client.post(
        "/api/customers",
        headers=agent.headers,
        json={
            "name": "Anna Schmidt",
            "tier": "B",
            "emails": ["anna@example.com"],
            "phones": ["0151 12345678"],
        },
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def fill(hub: Hub, count: int, start: datetime = START, prefix: str = "h") -> None:
    """Contacts on every channel; several share one timestamp to test the tie-break."""
    for n in range(count):
        channel, kind, sender = CHANNELS[n % len(CHANNELS)]
        if kind == "chat":
            channel, kind, sender = "email", "email", "anna@example.com"
        await accept_inbound(
            hub,
            Inbound(
                channel=channel,
                sender_kind=kind,
                sender=sender,
                external_id=f"{prefix}{n}",
                text=f"message {n}",
                received_at=start + timedelta(minutes=n // 3),
            ),
        )


async def walk(
    client: httpx.AsyncClient, agent: SignedIn, customer_id: int, limit: int, between_pages=None
) -> list[int]:
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": limit, **({"before": cursor} if cursor else {})}
        response = await client.get(
            f"/api/customers/{customer_id}/history", params=params, headers=agent.headers
        )
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [entry["id"] for entry in page["entries"]]
        cursor = page["next"]
        if cursor is None:
            return seen
        if between_pages is not None:
            await between_pages()


async def test_the_history_mixes_all_channels_newest_first(hub: Hub, client, agent):
    customer_id = await anna(client, agent)
    await fill(hub, 12)

    response = await client.get(f"/api/customers/{customer_id}/history", headers=agent.headers)

    entries = response.json()["entries"]
    assert {e["channel"] for e in entries} == {"email", "sms", "voice"}
    keys = [(e["occurred_at"], e["id"]) for e in entries]
    assert keys == sorted(keys, reverse=True)


async def test_paging_returns_every_entry_exactly_once_while_new_ones_arrive(
    hub: Hub, client, agent
):
    customer_id = await anna(client, agent)
    await fill(hub, 37)
    existing = await walk(client, agent, customer_id, limit=5)
    arrivals = iter(range(1000))

    async def a_new_contact_arrives() -> None:
        n = next(arrivals)
        await fill(hub, 1, start=datetime.now(UTC), prefix=f"new{n}-")

    seen = await walk(client, agent, customer_id, limit=5, between_pages=a_new_contact_arrives)

    assert len(existing) == 37
    assert seen == existing
    assert len(set(seen)) == len(seen)


async def test_a_backdated_entry_logged_while_paging_is_not_returned_twice(hub: Hub, client, agent):
    customer_id = await anna(client, agent)
    await fill(hub, 20)
    backdated = iter(range(1000))

    async def a_letter_from_last_year_is_logged() -> None:
        n = next(backdated)
        await fill(hub, 1, start=START - timedelta(days=365 - n), prefix=f"old{n}-")

    seen = await walk(
        client, agent, customer_id, limit=3, between_pages=a_letter_from_last_year_is_logged
    )

    assert len(seen) == len(set(seen))
    assert len(seen) >= 20


async def test_a_cursor_that_the_api_did_not_return_is_refused(client, agent):
    customer_id = await anna(client, agent)

    response = await client.get(
        f"/api/customers/{customer_id}/history",
        params={"before": "not-a-cursor"},
        headers=agent.headers,
    )

    assert response.status_code == 422
    assert "before" in response.text


async def test_the_card_shows_profile_identities_open_complaints_and_newest_history(
    hub: Hub, client, agent
):
    customer_id = await anna(client, agent)
    await fill(hub, 30)
    await accept_inbound(
        hub,
        Inbound(
            channel="email",
            sender_kind="email",
            sender="ANNA@example.com ",
            external_id="c1",
            subject="Defekte Lieferung",
            text="Die Ware kam kaputt an.",
            is_complaint=True,
        ),
    )

    card = (await client.get(f"/api/customers/{customer_id}", headers=agent.headers)).json()

    assert card["name"] == "Anna Schmidt" and card["tier"] == "B"
    assert card["emails"] == ["anna@example.com"]
    assert card["phones"] == ["+4915112345678"]
    assert [c["subject"] for c in card["open_complaints"]] == ["Defekte Lieferung"]
    assert len(card["history"]) == hub.settings.card_history_size
    assert card["history"][0]["subject"] == "Defekte Lieferung"
    assert card["history_next"] is not None


async def test_a_resolved_complaint_leaves_the_cards_open_complaints(hub: Hub, client, agent):
    result = await accept_inbound(
        hub,
        Inbound(
            channel="webform",
            sender_kind="email",
            sender="bob@example.org",
            external_id="f1",
            subject="Falsche Rechnung",
            is_complaint=True,
        ),
    )
    await client.patch(
        f"/api/complaints/{result.complaint_id}", headers=agent.headers, json={"status": "resolved"}
    )

    card = (await client.get(f"/api/customers/{result.customer_id}", headers=agent.headers)).json()

    assert card["open_complaints"] == []


async def test_lookup_finds_a_customer_by_phone_in_any_common_notation(hub: Hub, client, agent):
    await accept_inbound(
        hub,
        Inbound(
            channel="sms", sender_kind="phone", sender="+491512345678", external_id="SM1", text="Hi"
        ),
    )

    for notation in ("0151 2345678", "+49 151 2345678", "0049-151-2345678", "+491512345678"):
        response = await client.get(
            "/api/customers/lookup", params={"phone": notation}, headers=agent.headers
        )
        assert response.status_code == 200, notation
        assert response.json()["phones"] == ["+491512345678"]


async def test_lookup_by_email_ignores_case_and_spaces(client, agent):
    customer_id = await anna(client, agent)

    response = await client.get(
        "/api/customers/lookup", params={"email": " Anna@Example.COM"}, headers=agent.headers
    )

    assert response.json()["id"] == customer_id
