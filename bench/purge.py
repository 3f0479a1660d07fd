"""Benchmark: the retention purge over many expired reports in many organisations.

Fills an emptied PostgreSQL database (migrated by the app) with `--organisations` organisations
of `--per-organisation` reports each, all received six years before the as-of date, each with
one message, one note, one file of one chunk and one audit event, then times
`retention.purge` erasing them all (tombstones, one audit event per report, cascading
deletes). The rows carry random bytes where sealed data would be: the purge never decrypts.

    .venv/bin/python bench/purge.py [--organisations 1000] [--per-organisation 100]
"""

import asyncio
import os
import secrets
import time
import uuid
from datetime import UTC, date, datetime, timedelta

from common import arguments
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app import migrate
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.models import (
    Attachment,
    AttachmentChunk,
    AuditEvent,
    CaseNote,
    Organisation,
    PurgedReport,
    Report,
    ReportMessage,
)
from app.services import audit, retention

AS_OF = date(2032, 6, 1)
BATCH = 5000


def _rows(
    key: bytes, organisations: int, per_organisation: int
) -> tuple[list[dict[str, object]], ...]:
    received = datetime(2026, 3, 2, 10, tzinfo=UTC)
    orgs, reports, messages, notes, files, chunks, events = [], [], [], [], [], [], []
    for n in range(organisations):
        org_id = uuid.uuid4()
        orgs.append(
            {
                "id": org_id,
                "slug": f"bench-{n}",
                "name": f"Bench {n} s.r.o.",
                "ico": "25596641",
                "address": "Praha",
                "email": f"dp{n}@bench.example",
                "public_key": secrets.token_bytes(1216),
                "recovery_wrapped_key": secrets.token_bytes(200),
            }
        )
        prev_hash = audit.GENESIS_HASH
        for number in range(1, per_organisation + 1):
            report_id, file_id = uuid.uuid4(), uuid.uuid4()
            # Every real case has audit events (its receipt, reads); one each keeps the trail
            # and the planner's statistics of it realistic.
            event = {
                "organisation_id": org_id,
                "seq": number,
                "created_at": received,
                "member_id": None,
                "report_id": report_id,
                "action": "case.read",
                "detail": "bench",
                "prev_hash": prev_hash,
            }
            prev_hash = audit.event_hash(key, **event)  # type: ignore[arg-type]
            events.append({**event, "hash": prev_hash})
            common = {"organisation_id": org_id, "report_id": report_id}
            reports.append(
                {
                    "id": report_id,
                    "organisation_id": org_id,
                    "reference_year": 2026,
                    "reference_number": number,
                    "received_at": received,
                    "assessment_due_on": received.date() + timedelta(days=30),
                    "tracking_hash": secrets.token_bytes(32),
                    "key_for_organisation": secrets.token_bytes(1169),
                    "key_for_whistleblower": secrets.token_bytes(60),
                    "sealed_content": secrets.token_bytes(600),
                }
            )
            messages.append({**common, "author": "whistleblower", "sealed_body": b"x" * 200})
            notes.append({**common, "sealed_body": b"x" * 100})
            files.append(
                {**common, "id": file_id, "uploaded_by": "whistleblower", "sealed_meta": b"m"}
            )
            chunks.append({"attachment_id": file_id, "index": 0, "data": b"c" * 1024})
    return orgs, reports, messages, notes, files, chunks, events


async def _fill(engine: AsyncEngine, key: bytes, organisations: int, per_organisation: int) -> None:
    tables = (
        Organisation,
        Report,
        ReportMessage,
        CaseNote,
        Attachment,
        AttachmentChunk,
        AuditEvent,
    )
    for model, rows in zip(tables, _rows(key, organisations, per_organisation), strict=True):
        for start in range(0, len(rows), BATCH):
            async with engine.begin() as connection:
                await connection.execute(insert(model), rows[start : start + BATCH])
    async with engine.begin() as connection:
        await connection.execute(text("ANALYZE"))


async def main() -> None:
    parser = arguments(__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--organisations", type=int, default=1000)
    parser.add_argument("--per-organisation", type=int, default=100)
    args = parser.parse_args()
    settings = Settings(database_url=args.database_url, secret_key="22" * 32)
    engine = create_engine(settings)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await asyncio.to_thread(migrate.upgrade, settings)
    total = args.organisations * args.per_organisation
    started = time.perf_counter()
    await _fill(engine, audit.chain_key(settings), args.organisations, args.per_organisation)
    print(f"filled {total} reports in {args.organisations} organisations "  # noqa: T201
          f"in {time.perf_counter() - started:.1f} s")  # fmt: skip

    started = time.perf_counter()
    erased = await retention.purge(create_sessionmaker(engine, settings), AS_OF)
    elapsed = time.perf_counter() - started
    async with engine.connect() as connection:
        left = await connection.scalar(select(func.count()).select_from(Report))
        chunks = await connection.scalar(select(func.count()).select_from(AttachmentChunk))
        tombstones = await connection.scalar(select(func.count()).select_from(PurgedReport))
        events = await connection.scalar(select(func.count()).select_from(AuditEvent))
    await engine.dispose()
    assert (erased, left, chunks, tombstones, events) == (total, 0, 0, total, 2 * total)  # noqa: S101
    print(  # noqa: T201
        f"purge: {erased} reports erased in {elapsed:.1f} s ({erased / elapsed:.0f} reports/s) "
        f"on {os.cpu_count()} cores; target < 60 s for 100,000"
    )


if __name__ == "__main__":
    asyncio.run(main())
