"""The background worker: runs the periodic jobs (reminders, the retention purge, e-mail,
housekeeping).

Every job takes rows under a lease, so any number of workers may run side by side.
"""

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.metrics import PURGE_RUNS
from app.models.base import utcnow
from app.services import billing, deadlines, housekeeping, leaving, mail, reminders, retention

logger = logging.getLogger("pistalka.worker")

Job = Callable[[async_sessionmaker[AsyncSession], Settings], Awaitable[object]]


async def deliver_mail(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """Send the e-mails that are due."""
    return await mail.deliver_due(sessionmaker, settings)


async def remind_deadlines(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> int:
    """Queue deadline reminders, at most every REMINDER_INTERVAL seconds in this process."""
    global _reminded_at
    now = time.monotonic()
    if _reminded_at is not None and now - _reminded_at < REMINDER_INTERVAL:
        return 0
    _reminded_at = now
    return await reminders.send_reminders(sessionmaker, settings)


async def purge_expired(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """Erase what is past retention and the organisations whose export window has passed.

    Runs once per local day in this process, and again at the next round when it failed;
    running it in several workers is harmless.
    """
    global _purged_on
    today = deadlines.local_date(utcnow())
    if _purged_on == today:
        return 0
    try:
        reports = await retention.purge(sessionmaker, today)
        organisations = await leaving.erase_cancelled(sessionmaker)
        await retention.reclaim(sessionmaker, reports=reports, organisations=organisations)
    except Exception:
        PURGE_RUNS.labels("failed").inc()
        raise
    PURGE_RUNS.labels("done").inc()
    _purged_on = today
    return reports + organisations


async def bill(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """Charge the recurring payments due and announce plans ending in 14 days, hourly."""
    global _billed_at
    now = time.monotonic()
    if _billed_at is not None and now - _billed_at < BILLING_INTERVAL:
        return 0
    _billed_at = now
    renewed = await billing.renew_due(sessionmaker, settings)
    return renewed + await billing.ending_notices(sessionmaker, settings)


async def keep_house(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """Delete expired sessions, throttles and invitations and clear the files of them, hourly."""
    global _housekept_at
    now = time.monotonic()
    if _housekept_at is not None and now - _housekept_at < HOUSEKEEPING_INTERVAL:
        return 0
    _housekept_at = now
    return await housekeeping.forget_expired(sessionmaker, settings)


REMINDER_INTERVAL = 600.0
BILLING_INTERVAL = 3600.0
HOUSEKEEPING_INTERVAL = 3600.0
_reminded_at: float | None = None
_billed_at: float | None = None
_housekept_at: float | None = None
_purged_on: date | None = None

# Run in this order on every round; a new periodic job is one more function here. Reminders
# come first, so the mails they queue go out in the same round; housekeeping comes last, so
# its clearing of the database files takes in the mails deleted in its round.
JOBS: list[Job] = [purge_expired, remind_deadlines, bill, deliver_mail, keep_house]


async def run_jobs(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    """One round: every job once; a failing job is logged and does not stop the others."""
    for job in JOBS:
        try:
            await job(sessionmaker, settings)
        except Exception as exc:
            # Class and stack only: an exception's message may quote a recipient or SQL values.
            logger.error(
                "job %s failed: %s\n%s",
                getattr(job, "__name__", repr(job)),
                type(exc).__name__,
                "".join(traceback.format_tb(exc.__traceback__)).rstrip(),
            )


async def run_worker(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, stop: asyncio.Event
) -> None:
    """Run the jobs every `worker_interval_seconds` until `stop` is set."""
    logger.info("worker started")
    while not stop.is_set():
        await run_jobs(sessionmaker, settings)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.worker_interval_seconds)
    logger.info("worker stopped")
