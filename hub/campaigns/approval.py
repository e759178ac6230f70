"""A campaign's life, with four-eyes approval; every step is audited.

    draft ──submit──> pending_approval ──approve──> approved ──send──> sending ──> done
      ^   (a preview of     │   (a supervisor who is     │
      │    this content)    │    not the author)         │
      └──── an edit, an expired approval, or recipients that changed since ─┘
    draft | pending_approval | approved | sending ──cancel──> cancelled

An approval locks a digest of what was approved: channel, content, segment,
schedule, and the recipient count and exclusions the preview showed. Any edit
voids it (back to draft); so does, at send time, an expired approval or a
segment that no longer yields the figures that were approved. Sending an
unapproved campaign is a `ConflictError` (409); approving one's own campaign,
or without the supervisor role, a `ForbiddenError` (403).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update

from hub.agents import has_role
from hub.audit import record
from hub.campaigns.content import CompiledContent, check_template
from hub.campaigns.preview import check_every_variant, count_recipients, render_samples
from hub.campaigns.segments import check_filter
from hub.context import Hub, Work
from hub.errors import ConflictError, ForbiddenError, InvalidInputError
from hub.models import Agent, Campaign, OutboxMessage, utcnow

CHANNELS = ("email", "sms")
EDITABLE = ("draft", "pending_approval", "approved")
CANCELLABLE = ("draft", "pending_approval", "approved", "sending")
MAX_NAME = 200


def content_digest(campaign: Campaign) -> str:
    """What the campaign would send to whom and when, as one hash."""
    return _digest(
        {
            "channel": campaign.channel,
            "segment": campaign.segment,
            "template": campaign.template,
            "scheduled_at": campaign.scheduled_at.isoformat() if campaign.scheduled_at else None,
        }
    )


def approval_digest(campaign: Campaign, figures: dict[str, Any]) -> str:
    return _digest({"content": content_digest(campaign), "figures": figures})


def _digest(value: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def compile_content(campaign: Campaign) -> CompiledContent:
    return CompiledContent(campaign.channel, campaign.template, campaign.name)


def check_fields(
    name: Any, channel: Any, segment: Any, template: Any, scheduled_at: datetime | None
) -> dict[str, Any]:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise InvalidInputError(
            f"a campaign needs a name of 1 to {MAX_NAME} characters", field="name"
        )
    if channel not in CHANNELS:
        raise InvalidInputError("channel must be email or sms", field="channel")
    if scheduled_at is not None and scheduled_at.tzinfo is None:
        raise InvalidInputError("scheduled_at needs a time zone", field="scheduled_at")
    return {
        "name": name.strip(),
        "channel": channel,
        "segment": check_filter(segment),
        "template": check_template(channel, template),
        "scheduled_at": scheduled_at,
    }


async def do_create_campaign(work: Work, agent: Agent, fields: dict[str, Any]) -> Campaign:
    campaign = Campaign(
        **fields, status="draft", created_by_agent_id=agent.id, preview={}, enqueued_through=0
    )
    work.session.add(campaign)
    await work.session.flush()
    record(work.session, agent.id, "campaign.created", "campaign", campaign.id, name=campaign.name)
    work.emit("campaign.created", campaign_id=campaign.id)
    return campaign


async def do_edit_campaign(
    work: Work, agent: Agent, campaign: Campaign, fields: dict[str, Any]
) -> Campaign:
    """Change a campaign; whatever was approved or submitted goes back to draft."""
    if campaign.status not in EDITABLE:
        raise ConflictError(f"a campaign that is {campaign.status} cannot be changed")
    for name, value in fields.items():
        setattr(campaign, name, value)
    was = campaign.status
    _void(campaign)
    record(
        work.session,
        agent.id,
        "campaign.edited",
        "campaign",
        campaign.id,
        changed=sorted(fields),
        status_before=was,
    )
    work.emit("campaign.changed", campaign_id=campaign.id, status=campaign.status)
    return campaign


def _void(campaign: Campaign) -> None:
    campaign.status = "draft"
    campaign.approved_by_agent_id = None
    campaign.approved_at = None
    campaign.approval_expires_at = None
    campaign.approved_digest = None


async def compute_preview(hub: Hub, work: Work, campaign: Campaign, samples: int) -> dict[str, Any]:
    """Figures and samples for the campaign as it stands; kept on it for the approval."""
    content = compile_content(campaign)
    check_every_variant(content)
    figures, members = await count_recipients(work.session, campaign, hub.policy, samples)
    preview = {
        "content_digest": content_digest(campaign),
        "figures": figures,
        "at": utcnow().isoformat(),
    }
    campaign.preview = preview
    record(work.session, None, "campaign.previewed", "campaign", campaign.id, **figures)
    rendered = render_samples(campaign, content, members, hub.settings.public_url)
    return {**preview, "samples": rendered}


async def do_submit(work: Work, agent: Agent, campaign: Campaign) -> Campaign:
    if campaign.status != "draft":
        raise ConflictError(f"only a draft can be submitted; this campaign is {campaign.status}")
    if campaign.preview.get("content_digest") != content_digest(campaign):
        raise ConflictError("preview the campaign as it stands before submitting it")
    campaign.status = "pending_approval"
    record(work.session, agent.id, "campaign.submitted", "campaign", campaign.id)
    work.emit("campaign.changed", campaign_id=campaign.id, status=campaign.status)
    return campaign


async def do_approve(hub: Hub, work: Work, agent: Agent, campaign: Campaign) -> Campaign:
    """Four eyes: a supervisor who is not the author approves what the preview showed."""
    if not has_role(agent, "supervisor"):
        raise ForbiddenError("approving a campaign needs the supervisor role")
    if agent.id == campaign.created_by_agent_id:
        raise ForbiddenError("a campaign must be approved by someone other than its author")
    if campaign.status != "pending_approval":
        raise ConflictError(
            f"only a campaign pending approval can be approved; this is {campaign.status}"
        )
    if campaign.preview.get("content_digest") != content_digest(campaign):
        raise ConflictError("the campaign changed since its preview; preview it again")
    now = utcnow()
    campaign.status = "approved"
    campaign.approved_by_agent_id = agent.id
    campaign.approved_at = now
    campaign.approval_expires_at = now + timedelta(hours=hub.settings.campaign_approval_hours)
    campaign.approved_digest = approval_digest(campaign, campaign.preview["figures"])
    record(
        work.session,
        agent.id,
        "campaign.approved",
        "campaign",
        campaign.id,
        digest=campaign.approved_digest,
        figures=campaign.preview["figures"],
        expires_at=campaign.approval_expires_at.isoformat(),
    )
    work.emit("campaign.changed", campaign_id=campaign.id, status=campaign.status)
    return campaign


async def check_approval(
    hub: Hub, work: Work, actor_id: int | None, campaign: Campaign
) -> str | None:
    """Why the approval no longer holds (and void it), or None when it does."""
    if campaign.approval_expires_at is None or campaign.approval_expires_at <= utcnow():
        reason = "the approval expired"
    else:
        figures, _ = await count_recipients(work.session, campaign, hub.policy)
        if approval_digest(campaign, figures) == campaign.approved_digest:
            return None
        reason = f"the recipients changed since the approval (now {figures})"
    _void(campaign)
    record(
        work.session, actor_id, "campaign.approval_voided", "campaign", campaign.id, reason=reason
    )
    work.emit("campaign.changed", campaign_id=campaign.id, status=campaign.status)
    return reason


async def do_start_sending(
    hub: Hub, work: Work, actor_id: int | None, campaign: Campaign
) -> str | None:
    """approved ──> sending, or why not: the reason the approval was voided (the caller
    commits the voiding and then answers 409). The campaign sender takes it from here,
    at its schedule. Sending a campaign that is already sending changes nothing."""
    if campaign.status == "sending":
        return None
    if campaign.status != "approved":
        raise ConflictError(f"only an approved campaign can be sent; this one is {campaign.status}")
    reason = await check_approval(hub, work, actor_id, campaign)
    if reason is not None:
        return reason
    campaign.status = "sending"
    campaign.started_at = utcnow()
    record(work.session, actor_id, "campaign.sending", "campaign", campaign.id)
    work.emit("campaign.changed", campaign_id=campaign.id, status=campaign.status)
    return None


async def do_cancel(work: Work, agent: Agent, campaign: Campaign) -> int:
    """Stop the campaign; every message that has not left is cancelled, now. Returns how many."""
    if campaign.status not in CANCELLABLE:
        raise ConflictError(f"a campaign that is {campaign.status} cannot be cancelled")
    if agent.id != campaign.created_by_agent_id and not has_role(agent, "supervisor"):
        raise ForbiddenError("only the author or a supervisor may cancel a campaign")
    campaign.status = "cancelled"
    campaign.finished_at = utcnow()
    # A row is handed to a sender only while it is `sending` and claimed (see
    # `sending`), so this one statement stops everything that has not left.
    result = await work.session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.campaign_id == campaign.id,
            OutboxMessage.status.in_(("queued", "sending")),
        )
        .values(status="cancelled", lease_until=None, last_error="campaign cancelled")
        .execution_options(synchronize_session=False)
    )
    record(
        work.session,
        agent.id,
        "campaign.cancelled",
        "campaign",
        campaign.id,
        stopped=result.rowcount,
    )
    work.emit("campaign.changed", campaign_id=campaign.id, status=campaign.status)
    return int(result.rowcount)
