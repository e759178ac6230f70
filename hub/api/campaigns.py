"""`/api/segments` and `/api/campaigns`: segments with a live count, campaigns and their
approval, preview, sending, progress and cancelling (see `hub.campaigns`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.api.deps import current_agent, get_hub, require
from hub.audit import record
from hub.campaigns.approval import (
    check_fields,
    compute_preview,
    do_approve,
    do_cancel,
    do_create_campaign,
    do_edit_campaign,
    do_start_sending,
    do_submit,
)
from hub.campaigns.progress import OUTCOMES, campaign_messages, campaign_progress
from hub.campaigns.segments import check_filter, count_members
from hub.context import Hub
from hub.errors import ConflictError, InvalidInputError, NotFoundError
from hub.models import Agent, Campaign, Segment, utcnow

router = APIRouter(tags=["campaigns"])
MAX_SAMPLES = 20


def _in_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("needs a time zone, e.g. 2026-11-22T10:00:00+01:00")
    return value.astimezone(UTC)


UtcTime = Annotated[datetime, AfterValidator(_in_utc)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SegmentIn(Body):
    name: str = Field(min_length=1, max_length=200)
    filter: dict[str, Any]


class FilterIn(Body):
    filter: dict[str, Any]


class CampaignIn(Body):
    name: str = Field(min_length=1, max_length=200)
    channel: str
    segment: int | dict[str, Any] = Field(
        description="a saved segment's id, or a filter (see hub.campaigns.segments)"
    )
    template: dict[str, Any]
    scheduled_at: UtcTime | None = None


class CampaignChange(Body):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    segment: int | dict[str, Any] | None = None
    template: dict[str, Any] | None = None
    scheduled_at: UtcTime | None = None


class PreviewIn(Body):
    samples: int = Field(default=3, ge=0, le=MAX_SAMPLES)


def segment_view(segment: Segment, count: int) -> dict[str, Any]:
    return {"id": segment.id, "name": segment.name, "filter": segment.filter, "count": count}


@router.post("/api/segments", status_code=201)
async def create_segment(
    body: SegmentIn, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> dict[str, Any]:
    async with hub.work() as work:
        segment = Segment(
            name=body.name.strip(), filter=check_filter(body.filter), created_by_agent_id=agent.id
        )
        work.session.add(segment)
        await work.session.flush()
        record(work.session, agent.id, "segment.created", "segment", segment.id)
        count = await count_members(work.session, segment.filter)
        return segment_view(segment, count)


@router.post("/api/segments/count")
async def count_segment(
    body: FilterIn, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> dict[str, int]:
    """The live count of customers a filter matches, without saving it."""
    async with hub.sessions() as session:
        return {"count": await count_members(session, check_filter(body.filter))}


@router.get("/api/segments/{segment_id}")
async def get_segment(
    segment_id: int, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> dict[str, Any]:
    async with hub.sessions() as session:
        segment = await session.get(Segment, segment_id)
        if segment is None:
            raise NotFoundError(f"no segment {segment_id}")
        return segment_view(segment, await count_members(session, segment.filter))


async def _segment_filter(session: AsyncSession, segment: int | dict[str, Any]) -> dict[str, Any]:
    """A campaign keeps its own copy of the filter: what was approved cannot change."""
    if isinstance(segment, dict):
        return segment
    saved = await session.get(Segment, segment)
    if saved is None:
        raise InvalidInputError(f"no segment {segment}", field="segment")
    return dict(saved.filter)


async def get_campaign(session: AsyncSession, campaign_id: int) -> Campaign:
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFoundError(f"no campaign {campaign_id}")
    return campaign


async def campaign_view(session: AsyncSession, campaign: Campaign) -> dict[str, Any]:
    expires = campaign.approval_expires_at
    return {
        "id": campaign.id,
        "name": campaign.name,
        "channel": campaign.channel,
        "status": campaign.status,
        "segment": campaign.segment,
        "template": campaign.template,
        "scheduled_at": campaign.scheduled_at,
        "created_by_agent_id": campaign.created_by_agent_id,
        "approved_by_agent_id": campaign.approved_by_agent_id,
        "approved_at": campaign.approved_at,
        "approval_expires_at": expires,
        "approval_expired": bool(
            campaign.status == "approved" and expires is not None and expires <= utcnow()
        ),
        "preview": campaign.preview.get("figures"),
        "previewed_at": campaign.preview.get("at"),
        "holder": campaign.holder,
        "started_at": campaign.started_at,
        "finished_at": campaign.finished_at,
        "progress": await campaign_progress(session, campaign.id),
    }


@router.post("/api/campaigns", status_code=201)
async def create_campaign(
    body: CampaignIn, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> dict[str, Any]:
    """A draft; a template with a syntax error or an unknown field is a 422 with its line."""
    async with hub.work() as work:
        segment = await _segment_filter(work.session, body.segment)
        fields = check_fields(body.name, body.channel, segment, body.template, body.scheduled_at)
        campaign = await do_create_campaign(work, agent, fields)
        return await campaign_view(work.session, campaign)


@router.get("/api/campaigns")
async def list_campaigns(
    status: str | None = None,
    before: int | None = None,
    limit: int = Query(default=50, ge=1, le=200),
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> dict[str, Any]:
    """Campaigns, newest first; `next` pages on (keyset by id)."""
    statement = select(Campaign).order_by(Campaign.id.desc()).limit(limit + 1)
    if status is not None:
        statement = statement.where(Campaign.status == status)
    if before is not None:
        statement = statement.where(Campaign.id < before)
    async with hub.sessions() as session:
        rows = list(await session.scalars(statement))
        more = len(rows) > limit
        views = [await campaign_view(session, c) for c in rows[:limit]]
    return {"campaigns": views, "next": rows[limit - 1].id if more else None}


@router.get("/api/campaigns/{campaign_id}")
async def show_campaign(
    campaign_id: int, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> dict[str, Any]:
    """The campaign, its approval, and its progress (counts by outcome)."""
    async with hub.sessions() as session:
        return await campaign_view(session, await get_campaign(session, campaign_id))


@router.get("/api/campaigns/{campaign_id}/messages")
async def list_campaign_messages(
    campaign_id: int,
    status: Annotated[str | None, Query(description=", ".join(OUTCOMES))] = None,
    after: int | None = None,
    limit: int = Query(default=100, ge=1, le=500),
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(require("supervisor")),
) -> dict[str, Any]:
    """The campaign's messages with their outcome, in the order they were queued; `next`
    pages on. `status=unknown` lists those a crash left unknown (they may have gone
    out and are never sent again), to reconcile by hand."""
    async with hub.sessions() as session:
        await get_campaign(session, campaign_id)
        messages, next_after = await campaign_messages(session, campaign_id, status, after, limit)
    return jsonable_encoder({"messages": messages, "next": next_after})


@router.patch("/api/campaigns/{campaign_id}")
async def change_campaign(
    campaign_id: int,
    body: CampaignChange,
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> dict[str, Any]:
    """Any change voids a submission or an approval: the campaign is a draft again."""
    async with hub.work() as work:
        campaign = await get_campaign(work.session, campaign_id)
        given = body.model_dump(exclude_unset=True)
        segment = campaign.segment
        if body.segment is not None:
            segment = await _segment_filter(work.session, body.segment)
        fields = check_fields(
            given.get("name", campaign.name),
            campaign.channel,
            segment,
            given.get("template", campaign.template),
            given.get("scheduled_at", campaign.scheduled_at),
        )
        changed = {k: v for k, v in fields.items() if k in given}
        await do_edit_campaign(work, agent, campaign, changed)
        return await campaign_view(work.session, campaign)


@router.post("/api/campaigns/{campaign_id}/preview")
async def preview_campaign(
    campaign_id: int,
    body: PreviewIn | None = None,
    hub: Hub = Depends(get_hub),
    agent: Agent = Depends(current_agent),
) -> dict[str, Any]:
    """Samples rendered for real recipients, and how many recipients the gate excludes, by
    reason, before anything is sent. An undefined field is a 422 naming it and its line."""
    samples = (body or PreviewIn()).samples
    async with hub.work() as work:
        campaign = await get_campaign(work.session, campaign_id)
        return await compute_preview(hub, work, campaign, samples)


@router.post("/api/campaigns/{campaign_id}/submit")
async def submit_campaign(
    campaign_id: int, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> dict[str, Any]:
    async with hub.work() as work:
        campaign = await do_submit(work, agent, await get_campaign(work.session, campaign_id))
        return await campaign_view(work.session, campaign)


@router.post("/api/campaigns/{campaign_id}/approve")
async def approve_campaign(
    campaign_id: int, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> dict[str, Any]:
    """A supervisor other than the author (403 otherwise); it locks what the preview showed."""
    async with hub.work() as work:
        campaign = await get_campaign(work.session, campaign_id)
        await do_approve(hub, work, agent, campaign)
        return await campaign_view(work.session, campaign)


@router.post("/api/campaigns/{campaign_id}/send", status_code=202)
async def send_campaign(
    campaign_id: int, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> Any:
    """Start sending an approved campaign (409 otherwise); the hub's campaign sender sends
    it at its schedule. An expired approval, or recipients that changed since it, void the
    approval (409, and the campaign is a draft again)."""
    async with hub.work() as work:
        campaign = await get_campaign(work.session, campaign_id)
        voided = await do_start_sending(hub, work, agent.id, campaign)
        view = await campaign_view(work.session, campaign)
    if voided is not None:
        raise ConflictError(f"{voided}; preview and approve the campaign again")
    return JSONResponse(jsonable_encoder(view), status_code=202)


@router.post("/api/campaigns/{campaign_id}/cancel")
async def cancel_campaign(
    campaign_id: int, hub: Hub = Depends(get_hub), agent: Agent = Depends(current_agent)
) -> dict[str, Any]:
    """Stop the campaign: every message that has not left is cancelled at once."""
    async with hub.work() as work:
        campaign = await get_campaign(work.session, campaign_id)
        stopped = await do_cancel(work, agent, campaign)
        return {**await campaign_view(work.session, campaign), "stopped": stopped}
