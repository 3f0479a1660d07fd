"""An organisation leaving the service: cancellation, the export window, then erasure.

Cancelling closes the report form at once. For EXPORT_WINDOW_DAYS the designated persons can
still log in and export everything; then every record of the organisation is erased, and only
the operator's log keeps that it happened.
"""

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.errors import Conflict
from app.i18n import N_
from app.models import Member, Membership, OperatorEvent, Organisation
from app.models.base import utcnow
from app.services import audit, billing, deadlines, mail, retention
from app.services.recipients import organisation_recipients
from app.templating import render_mail

logger = logging.getLogger("pistalka.leaving")

EXPORT_WINDOW_DAYS = 80


def erasure_due(organisation: Organisation) -> datetime | None:
    """When a cancelled organisation's records are erased."""
    if organisation.cancelled_at is None:
        return None
    return organisation.cancelled_at + timedelta(days=EXPORT_WINDOW_DAYS)


async def _notify(
    session: AsyncSession, settings: Settings, organisation: Organisation, template: str
) -> None:
    due = erasure_due(organisation)
    subject, text = render_mail(
        template,
        organisation=organisation,
        erase_on=deadlines.local_date(due).strftime("%d. %m. %Y") if due else "",
        link=f"{settings.public_url.rstrip('/')}/organisations/{organisation.slug}/export",
    )
    for email in await organisation_recipients(session, organisation):
        await mail.enqueue(session, settings, kind=template, to=email, subject=subject, text=text)


async def cancel(
    session: AsyncSession, settings: Settings, organisation: Organisation, member_id: uuid.UUID
) -> None:
    """Cancel the registration: the form closes now, the data is erased after the window."""
    if organisation.cancelled_at is not None:
        raise Conflict(N_("The registration is already cancelled."), code="already_cancelled")
    organisation.cancelled_at = utcnow()
    # Nothing is refunded, and nothing more is charged: the paid period simply runs out.
    await billing.end_recurrences(session, settings, organisation)
    await audit.record(
        session,
        organisation_id=organisation.id,
        member_id=member_id,
        action="organisation.cancelled",
    )
    await _notify(session, settings, organisation, "registration_cancelled")
    await session.flush()


async def withdraw_cancellation(
    session: AsyncSession, settings: Settings, organisation: Organisation, member_id: uuid.UUID
) -> None:
    """Take the cancellation back while the data still exists; the form opens again."""
    if organisation.cancelled_at is None:
        raise Conflict(N_("The registration is not cancelled."), code="not_cancelled")
    organisation.cancelled_at = None
    await audit.record(
        session,
        organisation_id=organisation.id,
        member_id=member_id,
        action="organisation.cancellation_withdrawn",
    )
    await _notify(session, settings, organisation, "cancellation_withdrawn")
    await session.flush()


async def _erase(session: AsyncSession, organisation: Organisation, now: datetime) -> None:
    member_ids = list(
        await session.scalars(
            select(Membership.member_id).where(Membership.organisation_id == organisation.id)
        )
    )
    session.add(
        OperatorEvent(
            organisation_id=organisation.id,
            action="organisation.erased",
            detail=f"{organisation.name}, IČO {organisation.ico}, {organisation.slug}",
            created_at=now,
        )
    )
    # The database cascades to every row of the organisation: reports, files, members' places,
    # invitations, reminders, tombstones and its audit trail.
    await session.execute(delete(Organisation).where(Organisation.id == organisation.id))
    # Accounts that served only this organisation go too: an e-mail address is personal data.
    await session.execute(
        delete(Member).where(
            Member.id.in_(member_ids),
            ~exists().where(Membership.member_id == Member.id),
        )
    )


async def erase_cancelled(
    sessionmaker: async_sessionmaker[AsyncSession], now: datetime | None = None
) -> int:
    """Erase the organisations whose export window has passed; safe to run anywhere at once."""
    now = now or utcnow()
    cutoff = now - timedelta(days=EXPORT_WINDOW_DAYS)
    async with sessionmaker() as session:
        due = list(
            await session.scalars(select(Organisation.id).where(Organisation.cancelled_at < cutoff))
        )
    erased = 0
    for organisation_id in due:
        async with sessionmaker() as session, session.begin():
            # On SQLite the check below would otherwise read outside the write transaction, and
            # a second worker could erase the organisation again after the first committed.
            await retention.lock_writes(session)
            organisation = await session.scalar(
                select(Organisation)
                .where(Organisation.id == organisation_id, Organisation.cancelled_at < cutoff)
                .with_for_update(skip_locked=True)
            )
            if organisation is None:
                continue  # withdrawn, or another worker is erasing it
            await _erase(session, organisation, now)
            erased += 1
    if erased:
        logger.info("erased %d cancelled organisations", erased)
    return erased
