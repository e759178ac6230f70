"""Health and operations: `/healthz`, `/readyz`, `/metrics`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from hub.api.deps import get_hub
from hub.context import Hub
from hub.events_redis import RedisEventBus

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(hub: Hub = Depends(get_hub)) -> JSONResponse:
    """The database (and Redis, when configured) answers.

    Without the database the hub cannot work: 503. Without Redis it still
    serves and stores, only live updates across processes pause: 200 with
    status `degraded`, so a load balancer keeps sending traffic.
    """
    checks = {"database": await _database_answers(hub)}
    if isinstance(hub.bus, RedisEventBus):
        checks["redis"] = await hub.bus.ready()
    if not checks["database"]:
        status = "not ready"
    elif not all(checks.values()):
        status = "degraded"
    else:
        status = "ready"
    return JSONResponse(
        {"status": status, "checks": checks}, status_code=503 if status == "not ready" else 200
    )


async def _database_answers(hub: Hub) -> bool:
    try:
        async with hub.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError):
        return False
    return True


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(hub: Hub = Depends(get_hub)) -> Response:
    return Response(hub.metrics.render(), media_type=CONTENT_TYPE_LATEST)
