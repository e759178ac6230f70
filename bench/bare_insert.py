"""The intake benchmark's baseline: a bare FastAPI endpoint doing one INSERT per request.

`uvicorn bench.bare_insert:create_app --factory` with `BENCH_DATABASE_URL`
naming a scratch database: the same stack as the hub (FastAPI, SQLAlchemy's
async engine, asyncpg) without anything the hub does per contact.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import text

from hub.db import create_engine


class Body(BaseModel):
    text: str


def create_app() -> FastAPI:
    engine = create_engine(os.environ["BENCH_DATABASE_URL"])

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS bench_inserts (id bigserial PRIMARY KEY, "
                    "body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
                )
            )
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/insert", status_code=201)
    async def insert(body: Body) -> dict[str, int]:
        async with engine.begin() as connection:
            row = await connection.execute(
                text("INSERT INTO bench_inserts (body) VALUES (:body) RETURNING id"),
                {"body": body.text},
            )
            return {"id": row.scalar_one()}

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app
