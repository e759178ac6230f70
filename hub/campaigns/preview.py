"""Preview: what a campaign would do now, before anything is sent.

It walks the whole segment in pages, asks the gate (`check_many`, marketing)
about every member that has an address, and counts who is excluded and why;
it renders samples for real recipients (the first eligible ones, and one per
language variant in use). Nothing is written here: `approval.do_record_preview`
keeps the figures, which the approval then locks.

A recipient excluded for several reasons counts once in `excluded` and under
each of its reasons in `excluded_by_reason`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from hub.campaigns.content import CompiledContent, customer_context
from hub.campaigns.segments import Member, iterate_members
from hub.gate import Policy, Recipient, check_many
from hub.models import Campaign

PAGE = 2000
# The gate's reason codes under the names the preview reports them by.
REASON_NAMES = {
    "block:unsubscribe": "unsubscribed",
    "block:hard_bounce": "hard_bounce",
    "block:sms_stop": "sms_stop",
    "block:legal": "legal_block",
    "consent:missing": "no_marketing_consent",
    "consent:unconfirmed": "no_marketing_consent",
    "consent:revoked": "no_marketing_consent",
    "open_complaint": "open_complaint",
    "frequency_cap": "frequency_cap",
}


def reason_name(code: str) -> str:
    return REASON_NAMES.get(code, code.replace("block:", "block_"))


def recipient_of(channel: str, member: Member) -> Recipient:
    return Recipient(member.customer_id, channel, member.address or "")


async def count_recipients(
    session: AsyncSession, campaign: Campaign, policy: Policy, samples: int = 0
) -> tuple[dict[str, Any], list[Member]]:
    """The figures an approval locks, and up to `samples` eligible members to render."""
    members = without_address = excluded = 0
    reasons: Counter[str] = Counter()
    chosen: list[Member] = []
    async for page in iterate_members(session, campaign.segment, campaign.channel, PAGE):
        members += len(page)
        reachable = [m for m in page if m.address]
        without_address += len(page) - len(reachable)
        recipients = [recipient_of(campaign.channel, m) for m in reachable]
        decisions = await check_many(session, recipients, "marketing", policy)
        for member, decision in zip(reachable, decisions, strict=True):
            if decision.allowed:
                if len(chosen) < samples:
                    chosen.append(member)
                continue
            excluded += 1
            reasons.update({reason_name(code) for code in decision.reasons})
    figures = {
        "members": members,
        "without_address": without_address,
        "excluded": excluded,
        "excluded_by_reason": dict(sorted(reasons.items())),
        "recipients": members - without_address - excluded,
    }
    return figures, chosen


def render_samples(
    campaign: Campaign, content: CompiledContent, members: list[Member], public_url: str
) -> list[dict[str, Any]]:
    """Rendered messages for real recipients; an undefined field raises InvalidInputError."""
    samples = []
    for member in members:
        context = customer_context(
            member.customer_id, member.name, member.company, member.tier, member.language
        )
        url = f"{public_url}/unsubscribe/preview" if campaign.channel == "email" else None
        rendered = content.render(context, url)
        samples.append(
            {
                "customer_id": member.customer_id,
                "language": rendered.language,
                "subject": rendered.subject,
                "text": rendered.text,
                "html": rendered.html,
            }
        )
    return samples


def check_every_variant(content: CompiledContent) -> None:
    """Render each language variant once with a complete customer, so that an error in a
    variant no sample happened to use still shows at preview."""
    for language in content.variants:
        content.render(customer_context(0, "Preview Customer", "Preview Ltd", "A", language), "x")
