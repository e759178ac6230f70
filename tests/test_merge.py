"""Merging two records of one person keeps everything, is audited, and can be undone."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from hub.context import Hub
from hub.intake import accept_inbound
from hub.models import AuditEntry, Block, Consent
from hub.values import Inbound
from tests.conftest import SignedIn


async def two_records_of_one_person(hub: Hub) -> tuple[int, int]:
    """Anna wrote by e-mail and, as an unknown number, by SMS with a complaint."""
    by_mail = await accept_inbound(
        hub,
        Inbound(
            channel="email",
            sender_kind="email",
            sender="anna@example.com",
            external_id="m1",
            subject="Angebot",
            text="Bitte ein Angebot.",
        ),
    )
    by_sms = await accept_inbound(
        hub,
        Inbound(
            channel="sms",
            sender_kind="phone",
            sender="0151 2345678",
            external_id="SM1",
            text="Lieferung kaputt!",
            is_complaint=True,
        ),
    )
    async with hub.work() as work:
        work.session.add(
            Consent(
                customer_id=by_sms.customer_id,
                channel="sms",
                purpose="marketing",
                state="revoked",
                source="sms",
            )
        )
        work.session.add(
            Block(
                kind="customer",
                value=str(by_sms.customer_id),
                customer_id=by_sms.customer_id,
                reason="legal",
            )
        )
    return by_mail.customer_id, by_sms.customer_id


async def card(client: httpx.AsyncClient, who: SignedIn, customer_id: int) -> dict:
    response = await client.get(f"/api/customers/{customer_id}", headers=who.headers)
    assert response.status_code == 200
    return response.json()


async def test_a_merge_moves_every_identity_conversation_interaction_and_complaint(
    hub: Hub, client: httpx.AsyncClient, supervisor: SignedIn
):
    survivor, other = await two_records_of_one_person(hub)

    response = await client.post(
        f"/api/customers/{survivor}/merge", headers=supervisor.headers, json={"other_id": other}
    )

    assert response.status_code == 200, response.text
    merged = await card(client, supervisor, survivor)
    assert merged["emails"] == ["anna@example.com"]
    assert merged["phones"] == ["+491512345678"]
    assert {e["channel"] for e in merged["history"]} == {"email", "sms"}
    assert [c["description"] for c in merged["open_complaints"]] == ["Lieferung kaputt!"]
    assert [(c["channel"], c["state"]) for c in merged["consents"]] == [("sms", "revoked")]
    assert [b["reason"] for b in merged["blocks"]] == ["legal"]
    assert (await card(client, supervisor, other))["merged_into_id"] == survivor
    lookup = await client.get(
        "/api/customers/lookup", params={"phone": "0151 2345678"}, headers=supervisor.headers
    )
    assert lookup.json()["id"] == survivor


async def test_a_merge_is_written_to_the_audit_log(
    hub: Hub, client: httpx.AsyncClient, supervisor: SignedIn
):
    survivor, other = await two_records_of_one_person(hub)

    await client.post(
        f"/api/customers/{survivor}/merge", headers=supervisor.headers, json={"other_id": other}
    )

    async with hub.sessions() as session:
        entry = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "customer.merged"))
        ).one()
    assert entry.actor_agent_id == supervisor.id
    assert entry.entity_id == survivor and entry.details["other_id"] == other
    assert entry.details["moved"]["interactions"] == 1


async def test_undoing_a_merge_restores_both_customers_exactly(
    hub: Hub, client: httpx.AsyncClient, supervisor: SignedIn
):
    survivor, other = await two_records_of_one_person(hub)
    before = (await card(client, supervisor, survivor), await card(client, supervisor, other))
    merge = (
        await client.post(
            f"/api/customers/{survivor}/merge", headers=supervisor.headers, json={"other_id": other}
        )
    ).json()

    response = await client.post(
        f"/api/customers/merges/{merge['merge_id']}/undo", headers=supervisor.headers
    )

    assert response.status_code == 200, response.text
    after = (await card(client, supervisor, survivor), await card(client, supervisor, other))
    assert after == before


async def test_an_undone_merge_cannot_be_undone_twice(
    hub: Hub, client: httpx.AsyncClient, supervisor: SignedIn
):
    survivor, other = await two_records_of_one_person(hub)
    merge = (
        await client.post(
            f"/api/customers/{survivor}/merge", headers=supervisor.headers, json={"other_id": other}
        )
    ).json()
    await client.post(f"/api/customers/merges/{merge['merge_id']}/undo", headers=supervisor.headers)

    again = await client.post(
        f"/api/customers/merges/{merge['merge_id']}/undo", headers=supervisor.headers
    )

    assert again.status_code == 409


async def test_the_stricter_consent_wins_and_the_undo_restores_the_other(
    hub: Hub, client: httpx.AsyncClient, supervisor: SignedIn
):
    survivor, other = await two_records_of_one_person(hub)
    async with hub.work() as work:
        work.session.add(
            Consent(
                customer_id=survivor,
                channel="sms",
                purpose="marketing",
                state="granted",
                source="webform",
            )
        )
    before_merge = await card(client, supervisor, survivor)
    merge = (
        await client.post(
            f"/api/customers/{survivor}/merge", headers=supervisor.headers, json={"other_id": other}
        )
    ).json()

    merged = await card(client, supervisor, survivor)
    await client.post(f"/api/customers/merges/{merge['merge_id']}/undo", headers=supervisor.headers)
    restored = await card(client, supervisor, survivor)

    assert [c["state"] for c in merged["consents"]] == ["revoked"]
    assert [c["state"] for c in restored["consents"]] == ["granted"]
    assert restored["consents"][0]["updated_at"] == before_merge["consents"][0]["updated_at"]


async def test_merging_a_customer_with_itself_or_a_merged_one_is_refused(
    hub: Hub, client: httpx.AsyncClient, supervisor: SignedIn
):
    survivor, other = await two_records_of_one_person(hub)
    itself = await client.post(
        f"/api/customers/{survivor}/merge", headers=supervisor.headers, json={"other_id": survivor}
    )
    await client.post(
        f"/api/customers/{survivor}/merge", headers=supervisor.headers, json={"other_id": other}
    )
    twice = await client.post(
        f"/api/customers/{survivor}/merge", headers=supervisor.headers, json={"other_id": other}
    )
    unknown = await client.post(
        f"/api/customers/{survivor}/merge", headers=supervisor.headers, json={"other_id": 999999}
    )

    assert itself.status_code == 422
    assert twice.status_code == 409
    assert unknown.status_code == 404


async def test_contacts_after_a_merge_land_on_the_survivor(
    hub: Hub, client: httpx.AsyncClient, supervisor: SignedIn
):
    survivor, other = await two_records_of_one_person(hub)
    await client.post(
        f"/api/customers/{survivor}/merge", headers=supervisor.headers, json={"other_id": other}
    )

    result = await accept_inbound(
        hub,
        Inbound(
            channel="sms",
            sender_kind="phone",
            sender="+49 151 2345678",
            external_id="SM2",
            text="Noch da?",
        ),
    )

    assert result.customer_id == survivor
