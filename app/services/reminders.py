"""Deadline reminders to the designated persons: two days before a deadline, and once it passed.

The mails name the case's reference and the deadline, nothing of its content. A reminder row
with a unique key is written in the same transaction as the mails, so two workers never send
the same reminder twice.
"""

import logging
from datetime import date, timedelta

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.models import DeadlineReminder, Member, Membership, Organisation, Report
from app.models.base import utcnow
from app.services import deadlines, exclusion, mail
from app.templating import render_mail
from app.vocabulary import OPEN_STATUSES

logger = logging.getLogger("pistalka.reminders")
DAYS_BEFORE = 2


def due_reminders(report: Report, today: date) -> list[tuple[str, date, str]]:
    """(kind, due date, stage) of every reminder this case calls for today."""
    pending: list[tuple[str, date]] = []
    if report.status == "received" and report.acknowledgement_due_on is not None:
        pending.append(("acknowledgement", report.acknowledgement_due_on))
    if report.status in OPEN_STATUSES:
        pending.append(("assessment", report.assessment_due_on))
        if report.meeting_due_on is not None and report.meeting_planned_at is None:
            pending.append(("meeting", report.meeting_due_on))
    result = []
    for kind, due in pending:
        if today > due:
            result.append((kind, due, "passed"))
        elif today >= due - timedelta(days=DAYS_BEFORE):
            result.append((kind, due, "soon"))
    return result


async def send_reminders(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, today: date | None = None
) -> int:
    """Queue the reminders due today; returns how many were queued."""
    today = today or deadlines.local_date(utcnow())
    horizon = today + timedelta(days=DAYS_BEFORE)
    async with sessionmaker() as session:
        candidates = list(
            await session.scalars(
                select(Report.id).where(
                    Report.status.in_(OPEN_STATUSES),
                    or_(
                        Report.acknowledgement_due_on <= horizon,
                        Report.assessment_due_on <= horizon,
                        Report.meeting_due_on <= horizon,
                    ),
                )
            )
        )
    queued = 0
    for report_id in candidates:
        try:
            async with sessionmaker() as session, session.begin():
                queued += await _remind(session, settings, report_id, today)
        except IntegrityError:
            continue  # another worker sent this reminder first
    return queued


async def _remind(session: AsyncSession, settings: Settings, report_id: object, today: date) -> int:
    report = await session.get(Report, report_id)
    if report is None:
        return 0
    sent = {
        (r.kind, r.due_on, r.stage)
        for r in await session.scalars(
            select(DeadlineReminder).where(DeadlineReminder.report_id == report.id)
        )
    }
    wanted = [item for item in due_reminders(report, today) if item not in sent]
    if not wanted:
        return 0
    organisation = await session.get(Organisation, report.organisation_id)
    if report.key_for_organisation is None:  # it excludes someone: only its readers hear of it
        recipients = await exclusion.recipient_emails(session, report.id)
    else:
        recipients = list(
            await session.scalars(
                select(Member.email)
                .join(Membership, Membership.member_id == Member.id)
                .where(Membership.organisation_id == report.organisation_id)
            )
        )
    for kind, due, stage in wanted:
        session.add(
            DeadlineReminder(
                organisation_id=report.organisation_id,
                report_id=report.id,
                kind=kind,
                due_on=due,
                stage=stage,
            )
        )
        await session.flush()  # the unique key claims the reminder before any mail is queued
        subject, text = render_mail(
            f"reminder_{stage}",
            organisation=organisation,
            reference=report.reference,
            kind=kind,
            due_on=due.strftime("%d. %m. %Y"),
            link=f"{settings.public_url.rstrip('/')}/login",
        )
        for email in recipients:
            await mail.enqueue(
                session, settings, kind=f"reminder_{stage}", to=email, subject=subject, text=text
            )
    return len(wanted)
