"""Retention: reports are kept five years from receipt (§ 21(2) of Act 171/2023 Sb.), then erased.

Erasing a report deletes its row; the database cascades to its messages, notes, files, file
chunks and reminders, and with the row go the wrapped report keys, so nothing of it can be
read again. A tombstone without personal data (reference, dates, channel, outcome) stays for
statistics, and the organisation's audit trail records the erasure. A case on legal hold is kept
until the hold is released.
"""

import calendar
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, false, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app import crypto
from app.errors import InvalidInput
from app.i18n import N_
from app.models import Base, Member, Organisation, PurgedReport, Report
from app.models.base import utcnow
from app.services import audit, deadlines
from app.services.reports import aad

logger = logging.getLogger("pistalka.retention")

BATCH = 1000
MIN_HOLD_REASON = 3
MAX_HOLD_REASON = 500
PRAGUE = ZoneInfo(deadlines.CZECH.timezone)


def add_years(day: date, years: int) -> date:
    """The same day `years` later; 29 February becomes 28 February (Civil Code § 605)."""
    year = day.year + years
    return day.replace(year=year, day=min(day.day, calendar.monthrange(year, day.month)[1]))


def expires_on(received_at: datetime) -> date:
    """The last day a report received at `received_at` is kept."""
    return add_years(deadlines.local_date(received_at), deadlines.CZECH.retention_years)


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time(), PRAGUE).astimezone(UTC)


def first_kept_day(as_of: date) -> date:
    """The earliest day of receipt whose report a purge on `as_of` keeps."""
    years = deadlines.CZECH.retention_years
    # add_years never decreases, so the kept days are exactly the days from this one on; three
    # days back is surely expired, whatever 29 February does.
    day = add_years(as_of, -years) - timedelta(days=3)
    while add_years(day, years) < as_of:
        day += timedelta(days=1)
    return day


def _received_before(as_of: date) -> datetime:
    """The moment from which receipts are kept: the exact bound, so SQL alone picks the rows."""
    return _start_of(first_kept_day(as_of))


@dataclass(frozen=True)
class Expired:
    id: uuid.UUID
    organisation_id: uuid.UUID
    reference: str


async def lock_writes(session: AsyncSession) -> None:
    """On SQLite, take the write lock before reading, so two purges never pick the same rows."""
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        await session.execute(
            update(Report)
            .where(false())
            .values(status=Report.status)
            .execution_options(synchronize_session=False)
        )


async def _expired(
    session: AsyncSession, as_of: date, limit: int | None, lock: bool
) -> list[Expired]:
    query = (
        select(
            Report.id,
            Report.organisation_id,
            Report.reference_year,
            Report.reference_number,
            Report.received_at,
        )
        .where(Report.received_at < _received_before(as_of), Report.legal_hold_at.is_(None))
        # By organisation, so that a batch appends to few audit chains.
        .order_by(Report.organisation_id, Report.received_at, Report.id)
    )
    if limit is not None:
        query = query.limit(limit)
    if lock:
        # Rows another purge holds are skipped, not waited for: it erases them.
        query = query.with_for_update(skip_locked=True, of=Report)
    rows = (await session.execute(query)).all()
    return [
        Expired(row.id, row.organisation_id, f"{row.reference_year}-{row.reference_number:04d}")
        for row in rows
    ]


async def expired_reports(session: AsyncSession, as_of: date) -> list[Expired]:
    """The reports a purge on `as_of` would erase (for a dry run)."""
    return await _expired(session, as_of, None, lock=False)


async def _purge_batch(session: AsyncSession, as_of: date) -> tuple[int, bool]:
    """Erase up to BATCH expired reports; (erased, whether more candidates may remain)."""
    await lock_writes(session)
    candidates = await _expired(session, as_of, BATCH, lock=True)
    if not candidates:
        return 0, False
    ids = [item.id for item in candidates]
    now = utcnow()
    rows = await session.execute(
        select(
            Report.id,
            Report.organisation_id,
            Report.reference_year,
            Report.reference_number,
            Report.channel,
            Report.received_at,
            Report.decided_at,
            Report.closed_at,
            Report.outcome,
        ).where(Report.id.in_(ids))
    )
    tombstones = [{**row._asdict(), "purged_at": now} for row in rows]
    await session.execute(insert(PurgedReport), tombstones)
    by_organisation: dict[uuid.UUID, list[Expired]] = defaultdict(list)
    for item in candidates:
        by_organisation[item.organisation_id].append(item)
    # One order for every purge, so two of them never wait on each other's chain locks.
    for organisation_id, items in sorted(by_organisation.items()):
        await audit.record_many(
            session,
            organisation_id=organisation_id,
            events=[("report.purged", item.id, item.reference) for item in items],
        )
    # The cascade erases messages, notes, files, their chunks and reminders with the report.
    await session.execute(delete(Report).where(Report.id.in_(ids)))
    # A full batch may have left more behind; every row the query returned was erased, so
    # the next batch makes progress.
    return len(ids), len(candidates) == BATCH


async def purge(sessionmaker: async_sessionmaker[AsyncSession], as_of: date) -> int:
    """Erase every report whose retention ended before `as_of`; safe to run anywhere at once."""
    erased = 0
    more = True
    while more:
        async with sessionmaker() as session, session.begin():
            count, more = await _purge_batch(session, as_of)
        erased += count
    if erased:
        logger.info("purged %d reports past retention", erased)
    return erased


def _reached_from(roots: list[str]) -> list[str]:
    """The `roots` and every table whose rows a delete there cascades to or updates."""
    names = list(roots)
    for table in Base.metadata.sorted_tables:  # a table comes after those it refers to
        if table.name not in names and any(
            key.column.table.name in names for key in table.foreign_keys
        ):
            names.append(table.name)
    return names


async def reclaim(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    reports: int = 0,
    organisations: int = 0,
    tables: Sequence[str] = (),
) -> None:
    """Leave no copy of what the purge, the erasure or housekeeping deleted, once committed.

    On SQLite, checkpoint and truncate the write-ahead log; on PostgreSQL, VACUUM the tables:
    those a purge or erasure reached, and `tables`, which housekeeping names on every round.

    A deleted row stays in PostgreSQL's table files as a dead row until VACUUM; autovacuum
    would come by eventually, the purge does not leave it to chance.
    """
    roots = [Report.__tablename__] if reports else []
    if organisations:
        # Erasing an organisation also deletes the accounts that served only it.
        roots += [Organisation.__tablename__, Member.__tablename__]
    if not roots and not tables:
        return
    async with sessionmaker() as session:
        engine = session.bind
    if not isinstance(engine, AsyncEngine):
        return
    if engine.dialect.name == "sqlite":
        # secure_delete zeroes the freed pages of the file; the write-ahead log still holds
        # the pages as they were until a checkpoint copies it back and truncates it.
        async with engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return
    reached = _reached_from(roots)
    names = ", ".join([*reached, *(name for name in tables if name not in reached)])
    async with engine.connect() as connection:
        # VACUUM cannot run inside a transaction.
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text(f"VACUUM {names}"))


async def due_soon(
    session: AsyncSession, organisation_id: uuid.UUID, today: date, days: int
) -> int:
    """How many of the organisation's reports a purge will erase within `days` days."""
    return int(
        await session.scalar(
            select(func.count()).where(
                Report.organisation_id == organisation_id,
                Report.received_at < _received_before(today + timedelta(days=days)),
                Report.legal_hold_at.is_(None),
            )
        )
        or 0
    )


def check_hold_reason(reason: str) -> str:
    reason = reason.strip()
    if not MIN_HOLD_REASON <= len(reason) <= MAX_HOLD_REASON:
        raise InvalidInput(
            N_("Give the reason for the legal hold (3 to 500 characters)."),
            code="reason_required",
            field="reason",
        )
    return reason


def seal_hold_reason(report_key: bytes, report: Report, reason: str) -> bytes:
    return crypto.seal(report_key, reason.encode(), aad(b"legal-hold", report.id))


def read_hold_reason(report_key: bytes, report: Report) -> str | None:
    if report.sealed_legal_hold is None:
        return None
    return crypto.open_sealed(
        report_key, report.sealed_legal_hold, aad(b"legal-hold", report.id)
    ).decode()


async def count_purged(session: AsyncSession, organisation: Organisation) -> int:
    return int(
        await session.scalar(
            select(func.count()).where(PurgedReport.organisation_id == organisation.id)
        )
        or 0
    )
