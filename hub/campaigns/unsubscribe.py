"""Unsubscribe links: signed, one per recipient and campaign, and what they do.

Every campaign e-mail carries (RFC 8058, RFC 2369)

    List-Unsubscribe: <PUBLIC_URL/unsubscribe/TOKEN>
    List-Unsubscribe-Post: List-Unsubscribe=One-Click

A POST to that URL, as a mailbox provider sends it (no cookie, no sign-in,
body `List-Unsubscribe=One-Click`), blocks marketing to the address at once
(a block with reason `unsubscribe`, scope `marketing`, which the gate reads
on every later send). A GET only shows a page with a button for the same
POST, because link scanners fetch every URL in a message. Taking it back
lifts that block. The token is signed with SECRET_KEY (itsdangerous); a
malformed or forged one changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

from hub.blocks import do_add_block, do_lift_block, find_active_block
from hub.context import Hub, Work
from hub.errors import InvalidInputError
from hub.gate import ADDRESS_KIND
from hub.models import Block

SALT = "omnihub.campaign.unsubscribe"


@dataclass(frozen=True, slots=True)
class Unsubscription:
    """Who a link unsubscribes: an address of a kind (`email`, `phone`), from a campaign."""

    kind: str
    address: str
    campaign_id: int


def signer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=SALT)


def make_token(secret_key: str, channel: str, address: str, campaign_id: int) -> str:
    return signer(secret_key).dumps([ADDRESS_KIND[channel], address, campaign_id])


def unsubscribe_url(public_url: str, token: str) -> str:
    return f"{public_url}/unsubscribe/{token}"


def list_unsubscribe_headers(url: str) -> dict[str, str]:
    return {
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def read_token(hub: Hub, token: str) -> Unsubscription:
    """The unsubscription a token names; InvalidInputError when it is malformed or forged."""
    try:
        kind, address, campaign_id = signer(hub.settings.secret_key or "").loads(token)
    except (BadSignature, ValueError, TypeError):
        raise InvalidInputError("this unsubscribe link is not valid") from None
    if kind not in ("email", "phone") or not isinstance(address, str) or not address:
        raise InvalidInputError("this unsubscribe link is not valid")
    return Unsubscription(kind, address, int(campaign_id))


async def do_unsubscribe(hub: Hub, work: Work, unsubscription: Unsubscription) -> Block:
    """Block marketing to the address; doing it twice changes nothing."""
    return await do_add_block(
        work,
        None,
        unsubscription.kind,
        unsubscription.address,
        "unsubscribe",
        hub.settings.default_region,
        scope="marketing",
        note=f"unsubscribed by the link in campaign {unsubscription.campaign_id}",
    )


async def do_resubscribe(hub: Hub, work: Work, unsubscription: Unsubscription) -> bool:
    """Lift the unsubscription the link made; False when none stands."""
    block = await find_active_block(
        work.session, unsubscription.kind, unsubscription.address, "unsubscribe", "marketing"
    )
    if block is None:
        return False
    await do_lift_block(work, None, block.id)
    return True


async def is_unsubscribed(hub: Hub, work: Work, unsubscription: Unsubscription) -> bool:
    block = await find_active_block(
        work.session, unsubscription.kind, unsubscription.address, "unsubscribe", "marketing"
    )
    return block is not None
