"""Benchmark: rotating an organisation key over many reports (issue: key custody).

Registers one organisation in an emptied database (migrated by the app), fills it with
`--reports` reports whose report keys are really sealed (HPKE) to the organisation key (the rest
of each row is random bytes: rotation touches only the report key), then times the rotation a
key holder starts: `team.rotate_key` in one transaction, then `rotation.complete` re-sealing
every report key in batches and swapping the keys. Checks at the end that every report is sealed
to the new key and opens with it.

    .venv/bin/python bench/rotation.py [--reports 20000] [--database-url sqlite:///tmp/x.db]
"""

import asyncio
import secrets
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from common import arguments, create_database, wipe_database
from sqlalchemy import func, insert, select

from app import crypto, migrate
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.models import Organisation, Report
from app.schemas.organisation import OrganisationCreate
from app.services import auth, registration, reports, rotation, team

PASSWORD = "correct horse battery"  # noqa: S105 - a throwaway account of the benchmark
INSERT_BATCH = 2000


async def run(database_url: str, count: int) -> None:
    if database_url.startswith("postgresql"):
        await create_database(database_url)
        await wipe_database(database_url)
    data_dir = Path(tempfile.mkdtemp(prefix="pistalka-bench-"))
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        secret_key=secrets.token_hex(32),
        argon2_memory_kib=1024,
        argon2_iterations=1,
        argon2_lanes=1,
    )
    await asyncio.to_thread(migrate.upgrade, settings)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine, settings)
    try:
        async with sessionmaker() as session, session.begin():
            data = OrganisationCreate(
                slug="bench-rotation", name="Bench s.r.o.", ico="25596641", address="Praha",
                email="dp@bench.example", password=PASSWORD,
            )  # fmt: skip
            registered = await registration.register_organisation(session, settings, data)
            organisation_id = registered.organisation.id
            public_key = registered.organisation.public_key
        started = time.perf_counter()
        received = datetime(2026, 3, 2, 10, tzinfo=UTC)
        rows = []
        for number in range(1, count + 1):
            report_id = uuid.uuid4()
            rows.append(
                {
                    "id": report_id,
                    "organisation_id": organisation_id,
                    "reference_year": 2026,
                    "reference_number": number,
                    "received_at": received,
                    "assessment_due_on": received.date(),
                    "tracking_hash": secrets.token_bytes(32),
                    "key_for_organisation": crypto.seal_to(
                        public_key, crypto.random_key(), reports.aad(b"report-key", report_id)
                    ),
                    "key_for_whistleblower": secrets.token_bytes(60),
                    "sealed_content": secrets.token_bytes(600),
                }
            )
        for start in range(0, count, INSERT_BATCH):
            async with sessionmaker() as session, session.begin():
                await session.execute(insert(Report), rows[start : start + INSERT_BATCH])
        print(f"filled {count} reports in {time.perf_counter() - started:.1f} s")

        async with sessionmaker() as session:
            logged_in = await auth.login(session, settings, "dp@bench.example", PASSWORD, None)
            await session.commit()
            current = await auth.resolve_session(session, settings, logged_in.cookie_value)
            assert current is not None
            org = await session.get_one(Organisation, organisation_id)
            started = time.perf_counter()
            job = await team.rotate_key(session, settings, org, current)
            await session.commit()
        resealed = await rotation.complete(sessionmaker, settings, job)
        elapsed = time.perf_counter() - started
        print(f"rotated the key over {resealed} reports in {elapsed:.2f} s "
              f"({elapsed / max(resealed, 1) * 1000:.3f} ms a report)")  # fmt: skip

        async with sessionmaker() as session:
            org = await session.get_one(Organisation, organisation_id)
            stale = await session.scalar(
                select(func.count()).where(
                    Report.organisation_id == organisation_id, Report.key_version != org.key_version
                )
            )
            sample = await session.scalar(select(Report).limit(1))
        assert stale == 0
        assert sample is not None
        crypto.open_with(
            job.new_private_key, sample.key_for_organisation, reports.aad(b"report-key", sample.id)
        )
        print(f"every report sealed to key version {org.key_version}; a sample opens with it")
    finally:
        await engine.dispose()


def main() -> None:
    parser = arguments("Time an organisation key rotation over many reports.")
    parser.add_argument("--reports", type=int, default=20000)
    args = parser.parse_args()
    asyncio.run(run(args.database_url, args.reports))


if __name__ == "__main__":
    main()
