"""GDPR access and erasure: `/api/customers/{id}/export` and `/api/customers/{id}/erase`.

Export needs a supervisor (it holds more than an agent's console shows: raw
mail, consent evidence, the audit trail); erasure needs an admin, because it
cannot be undone. Both are audited, without the personal values.

`/api/suppressions/check` and `/lift` answer whether an erased address is kept
from marketing, and let an admin lift that when the person asks for marketing
again (the address goes in the body, never in a URL).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import Field

from hub.api.deps import get_hub, require
from hub.api.schemas import Body
from hub.audit import record
from hub.context import Hub
from hub.identity import normalise_identity
from hub.models import Agent, Erasure
from hub.privacy.erasure import do_erase, find_erasure
from hub.privacy.export import build_export
from hub.privacy.suppression import do_lift_suppression, is_suppressed

router = APIRouter(prefix="/api/customers", tags=["privacy"])


class AddressIn(Body):
    address: str = Field(min_length=1, max_length=320)


@router.get("/{customer_id}/export")
async def export(
    customer_id: int, hub: Hub = Depends(get_hub), agent: Agent = Depends(require("supervisor"))
) -> JSONResponse:
    """Everything held about the customer (and records merged into it), as JSON.

    Needs the **supervisor** role (or admin). The export is audited.
    """
    # Read without the write lock (SQLite has one writer); the audit entry is written
    # before anything is answered, so no export leaves unaudited.
    async with hub.sessions() as session:
        document = await build_export(session, customer_id)
    async with hub.work() as work:
        record(
            work.session,
            agent.id,
            "customer.exported",
            "customer",
            customer_id,
            rows={name: len(rows) for name, rows in document.items() if isinstance(rows, list)},
        )
    filename = f"omnihub-customer-{customer_id}.json"
    return JSONResponse(
        document, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@router.post("/{customer_id}/erase")
async def erase(
    customer_id: int, hub: Hub = Depends(get_hub), agent: Agent = Depends(require("admin"))
) -> dict[str, Any]:
    """Erase the customer's personal data everywhere; keeps the figures. Cannot be undone.

    Needs the **admin** role. Each e-mail address and phone number is kept as a
    keyed hash so that it is never marketed to again. Erasing again answers the
    first erasure (`already_erased: true`). A record merged into another is
    refused (409): erase the customer it was merged into.
    """
    async with hub.work() as work:
        earlier = await find_erasure(work.session, customer_id)
        erasure = earlier or await do_erase(
            work, agent.id, customer_id, hub.policy.suppression_key or b""
        )
        return erasure_view(erasure, already_erased=earlier is not None)


def erasure_view(erasure: Erasure, already_erased: bool = False) -> dict[str, Any]:
    return {
        "customer_id": erasure.customer_id,
        "erased_at": erasure.erased_at,
        "erased_by_agent_id": erasure.erased_by_agent_id,
        "counts": erasure.counts,
        "already_erased": already_erased,
    }


suppressions = APIRouter(prefix="/api/suppressions", tags=["privacy"])


@suppressions.post("/check")
async def check_suppression(
    body: AddressIn, hub: Hub = Depends(get_hub), agent: Agent = Depends(require("supervisor"))
) -> dict[str, Any]:
    """Was this e-mail address or phone number erased, so that no marketing reaches it?

    The address travels in the body, not the URL, so it stays out of access logs.
    """
    kind, address = _address(hub, body.address)
    async with hub.sessions() as session:
        found = await is_suppressed(session, address, key=hub.policy.suppression_key or b"")
    return {"kind": kind, "suppressed": found}


@suppressions.post("/lift")
async def lift_suppression(
    body: AddressIn, hub: Hub = Depends(get_hub), agent: Agent = Depends(require("admin"))
) -> dict[str, Any]:
    """Allow marketing to an erased address again (the person asked for it anew, with
    consent); needs the **admin** role and is audited, without the address."""
    kind, address = _address(hub, body.address)
    async with hub.work() as work:
        key = hub.policy.suppression_key or b""
        lifted = await do_lift_suppression(work.session, key, kind, address)
        if lifted:
            record(work.session, agent.id, "suppression.lifted", "suppression", None, kind=kind)
    return {"kind": kind, "lifted": lifted}


def _address(hub: Hub, raw: str) -> tuple[str, str]:
    kind = "email" if "@" in raw else "phone"
    return kind, normalise_identity(kind, raw, hub.settings.default_region)
