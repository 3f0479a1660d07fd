"""Housekeeping: the database forgets what it no longer needs, and its files forget it too.

Expired sessions (their rows hold a member's private key, sealed under the cookie's secret),
failed-login records past their window, invitations that were used or ran out, and the
never-verifiable organisations of registrations with a taken e-mail are deleted;
then the SQLite write-ahead log is checkpointed and truncated, or on PostgreSQL the tables that
held them and the outbox's sent mails are vacuumed, so dead copies do not linger.
"""

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Delete, delete, exists, or_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.models import (
    Invitation,
    LoginThrottle,
    MemberSession,
    Membership,
    OperatorSession,
    Organisation,
    OutboxMail,
)
from app.models.base import utcnow
from app.services import retention

# A registration with an e-mail that already has an account makes an organisation without a
# designated person (so the answer does not tell the e-mail is taken); it can never be verified.
PLACEHOLDER_DAYS = 7

TABLES = [
    OutboxMail.__tablename__,
    MemberSession.__tablename__,
    OperatorSession.__tablename__,
    LoginThrottle.__tablename__,
    Invitation.__tablename__,
]


def _expired(settings: Settings, now: datetime) -> list[Delete]:
    lock = timedelta(minutes=settings.login_lock_minutes)
    return [
        delete(MemberSession).where(MemberSession.expires_at <= now),
        delete(OperatorSession).where(OperatorSession.expires_at <= now),
        # The failures a next attempt would forget anyway (auth._record_failure).
        delete(LoginThrottle).where(
            or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until <= now),
            LoginThrottle.last_failed_at <= now - lock,
        ),
        delete(Invitation).where(
            or_(Invitation.accepted_at.is_not(None), Invitation.expires_at <= now)
        ),
        delete(Organisation).where(
            Organisation.email_verified_at.is_(None),
            Organisation.created_at <= now - timedelta(days=PLACEHOLDER_DAYS),
            ~exists().where(Membership.organisation_id == Organisation.id),
        ),
    ]


async def forget_expired(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    now: datetime | None = None,
) -> int:
    """Delete what has expired, then clear the database files of it; how many rows went."""
    now = now or utcnow()
    deleted = 0
    async with sessionmaker() as session, session.begin():
        for statement in _expired(settings, now):
            result = await session.execute(statement.execution_options(synchronize_session=False))
            deleted += cast(CursorResult[Any], result).rowcount
    await retention.reclaim(sessionmaker, tables=TABLES)
    return deleted
