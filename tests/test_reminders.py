"""Deadline reminders to the designated persons."""

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.models import DeadlineReminder, OutboxMail, Report
from app.services import mail, reminders
from tests.factories import submit, verified_organisation
from tests.smtp import SMTPServer

Sessionmaker = async_sessionmaker[AsyncSession]


async def _report(client: httpx.AsyncClient, sessionmaker: Sessionmaker) -> Report:
    organisation = await verified_organisation(client, sessionmaker)
    await submit(client, organisation["slug"])
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(OutboxMail))
        report = await session.scalar(select(Report))
    assert isinstance(report, Report)
    return report


async def _count(sessionmaker: Sessionmaker, model: type) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_reminder_two_days_before_and_after_the_deadline_once_each(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    smtp_server: SMTPServer,
) -> None:
    report = await _report(client, sessionmaker)
    due = report.acknowledgement_due_on
    assert due is not None

    assert await reminders.send_reminders(sessionmaker, settings, due - timedelta(days=3)) == 0
    assert await reminders.send_reminders(sessionmaker, settings, due - timedelta(days=2)) == 1
    assert await reminders.send_reminders(sessionmaker, settings, due - timedelta(days=1)) == 0
    assert await reminders.send_reminders(sessionmaker, settings, due + timedelta(days=1)) == 1
    assert await reminders.send_reminders(sessionmaker, settings, due + timedelta(days=2)) == 0

    await mail.deliver_due(
        sessionmaker, settings.model_copy(update={"smtp_port": smtp_server.port})
    )
    subjects = [m["Subject"] for m in smtp_server.messages]
    assert len(subjects) == 2
    assert all(report.reference in subject for subject in subjects)
    plain = smtp_server.messages[0].get_body(("plain",))
    assert plain is not None
    body = plain.get_content()
    assert "The director" not in body  # nothing of the report's content


async def test_no_reminder_once_the_obligation_is_met(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, settings: Settings
) -> None:
    report = await _report(client, sessionmaker)
    async with sessionmaker() as session, session.begin():
        stored = await session.get(Report, report.id)
        assert stored is not None
        stored.status = "assessed"
    late = report.assessment_due_on + timedelta(days=5)
    assert await reminders.send_reminders(sessionmaker, settings, late) == 0


async def test_two_workers_send_each_reminder_once(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, settings: Settings
) -> None:
    report = await _report(client, sessionmaker)
    day = report.assessment_due_on + timedelta(days=1)  # both deadlines passed
    results = await asyncio.gather(
        reminders.send_reminders(sessionmaker, settings, day),
        reminders.send_reminders(sessionmaker, settings, day),
    )
    assert sum(results) == 2
    assert await _count(sessionmaker, DeadlineReminder) == 2
    assert await _count(sessionmaker, OutboxMail) == 2
