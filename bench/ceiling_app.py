"""The ceiling of the submission path: the least a sealed report needs, on the same stack.

One endpoint takes the report's JSON body (validated by the same schema), seals it under a fresh
report key, seals that key with our HPKE to an organisation public key, and inserts two rows, a
report-like and an audit-like one, into PostgreSQL in one transaction (SQLAlchemy async, asyncpg,
the same pool size as the app). bench/submissions.py serves it with uvicorn like `pistalka serve`
and compares.

Serve: CEILING_DATABASE_URL=postgresql://... .venv/bin/uvicorn --app-dir bench \
    ceiling_app:create_app --factory --port 8001
Tables: `prepare(url)` creates them (bench/submissions.py does it before serving).
"""

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import common
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app import crypto
from app.schemas.report import ReportCreate

TABLES = (
    "DROP TABLE IF EXISTS ceiling_report, ceiling_audit",
    "CREATE TABLE ceiling_report (id uuid PRIMARY KEY, organisation_id uuid NOT NULL, "
    "received_at timestamptz NOT NULL DEFAULT now(), tracking_hash bytea UNIQUE NOT NULL, "
    "key_for_organisation bytea NOT NULL, sealed_content bytea NOT NULL)",
    "CREATE INDEX ON ceiling_report (organisation_id)",
    "CREATE TABLE ceiling_audit (id uuid PRIMARY KEY, organisation_id uuid NOT NULL, "
    "report_id uuid, action varchar(40) NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
    "CREATE INDEX ON ceiling_audit (organisation_id)",
)
INSERT_REPORT = text(
    "INSERT INTO ceiling_report (id, organisation_id, tracking_hash, key_for_organisation, "
    "sealed_content) VALUES (:id, :organisation_id, :tracking_hash, :key, :content)"
)
INSERT_AUDIT = text(
    "INSERT INTO ceiling_audit (id, organisation_id, report_id, action) "
    "VALUES (:id, :organisation_id, :report_id, 'report_received')"
)


async def _prepare(url: str) -> None:
    engine = create_async_engine(common.async_url(url))
    async with engine.begin() as connection:
        for statement in TABLES:
            await connection.execute(text(statement))
    await engine.dispose()


def prepare(url: str) -> None:
    """(Re)create the two tables."""
    asyncio.run(_prepare(url))


def create_app() -> FastAPI:
    engine = create_async_engine(
        common.async_url(os.environ["CEILING_DATABASE_URL"]), pool_size=10, max_overflow=10
    )
    organisation_id = uuid.uuid4()
    public_key = crypto.generate_keypair().public

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/reports", status_code=201)
    async def submit_report(data: ReportCreate) -> dict[str, str]:
        report_id = uuid.uuid4()
        report_key = crypto.random_key()
        code = secrets.token_hex(16)
        row = {
            "id": report_id,
            "organisation_id": organisation_id,
            "tracking_hash": secrets.token_bytes(32),
            "key": crypto.seal_to(public_key, report_key, report_id.bytes),
            "content": crypto.seal(report_key, data.model_dump_json().encode(), report_id.bytes),
        }
        async with engine.begin() as connection:
            await connection.execute(INSERT_REPORT, row)
            await connection.execute(
                INSERT_AUDIT,
                {"id": uuid.uuid4(), "organisation_id": organisation_id, "report_id": report_id},
            )
        return {"tracking_code": code}

    return app
