"""The e-mail outbox and the worker, against a real SMTP server on loopback, on both databases."""

import asyncio
import logging
import uuid
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace

import aiosmtplib
import httpx
import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import crypto, worker
from app.config import Settings
from app.main import create_app
from app.models.base import utcnow
from app.models.outbox import OutboxMail
from app.services import mail
from app.templating import render_mail
from tests.factories import register
from tests.smtp import SMTPServer

TO = "poverena.osoba@example.cz"
SUBJECT = "Nové oznámení / New report"
TEXT = "Bylo přijato nové oznámení.\n\nA new report has arrived.\n"
HTML = "<p>Bylo přijato nové oznámení.</p>"

Sessionmaker = async_sessionmaker[AsyncSession]


def smtp_settings(settings: Settings, port: int, **overrides: object) -> Settings:
    return settings.model_copy(update={"smtp_port": port, **overrides})


async def queue(
    sessionmaker: Sessionmaker,
    settings: Settings,
    to: str = TO,
    subject: str = SUBJECT,
    html: str | None = None,
) -> int:
    async with sessionmaker() as session, session.begin():
        row = await mail.enqueue(
            session, settings, kind="test", to=to, subject=subject, text=TEXT, html=html
        )
    return row.id


async def load(sessionmaker: Sessionmaker, mail_id: int) -> OutboxMail:
    row = await find(sessionmaker, mail_id)
    assert row is not None
    return row


async def find(sessionmaker: Sessionmaker, mail_id: int) -> OutboxMail | None:
    async with sessionmaker() as session:
        return await session.get(OutboxMail, mail_id)


async def test_queued_mail_is_delivered_and_then_deleted(
    sessionmaker: Sessionmaker, settings: Settings, smtp_server: SMTPServer
) -> None:
    settings = smtp_settings(settings, smtp_server.port)
    mail_id = await queue(sessionmaker, settings, html=HTML)

    assert await mail.deliver_due(sessionmaker, settings) == 1

    [message] = smtp_server.messages
    assert message["To"] == TO
    assert message["Subject"] == SUBJECT
    assert message["From"] == settings.mail_from
    assert message["Message-ID"]
    assert message["Date"]
    assert message.get_body(("plain",)).get_content() == TEXT  # type: ignore[union-attr]
    assert message.get_body(("html",)).get_content().strip() == HTML  # type: ignore[union-attr]
    assert smtp_server.envelopes[0].rcpt_tos == [TO]
    assert await find(sessionmaker, mail_id) is None


# Real mails whose subjects Python's default folding used to close up ("VysočinaNováček").
@pytest.mark.parametrize(
    ("template", "name"),
    [
        ("member_added", "Strojírny Vysočina Nováček a.s."),
        ("new_report", "Základní škola Nováček, příspěvková organizace"),
    ],
)
async def test_a_long_czech_subject_arrives_with_every_space_between_its_words(
    sessionmaker: Sessionmaker,
    settings: Settings,
    smtp_server: SMTPServer,
    template: str,
    name: str,
) -> None:
    settings = smtp_settings(settings, smtp_server.port)
    subject, text = render_mail(template, organisation=SimpleNamespace(name=name), link="-")
    async with sessionmaker() as session, session.begin():
        await mail.enqueue(session, settings, kind="test", to=TO, subject=subject, text=text)

    assert await mail.deliver_due(sessionmaker, settings) == 1

    [message] = smtp_server.messages
    assert f"organizace {name}" in subject or f"organizaci {name}" in subject
    assert len(subject) > 78
    assert message["Subject"] == subject


async def test_nothing_is_sent_when_nothing_is_due(
    sessionmaker: Sessionmaker, settings: Settings, smtp_server: SMTPServer
) -> None:
    assert await mail.deliver_due(sessionmaker, smtp_settings(settings, smtp_server.port)) == 0
    assert smtp_server.messages == []


async def test_database_never_holds_recipient_or_subject_in_clear(
    sessionmaker: Sessionmaker, settings: Settings
) -> None:
    await queue(sessionmaker, settings, html=HTML)

    async with sessionmaker() as session:
        rows = (await session.execute(text("SELECT * FROM outbox_mail"))).all()
    assert len(rows) == 1
    raw = b"".join(value if isinstance(value, bytes) else str(value).encode() for value in rows[0])
    for secret in (TO, "poverena", SUBJECT, "oznámení", TEXT, HTML):
        assert secret.encode() not in raw
        assert secret.encode("utf-16-le") not in raw
    # It is the server key that opens it: the mail is there, only sealed.
    async with sessionmaker() as session:
        row = (await session.scalars(select(OutboxMail))).one()
    assert mail.open_mail(settings, row.sealed_message, row.kind, row.seal_id).to == TO


async def test_a_sealed_message_opens_only_in_its_own_row_and_for_its_own_kind(
    sessionmaker: Sessionmaker, settings: Settings, smtp_server: SMTPServer
) -> None:
    settings = smtp_settings(settings, smtp_server.port)
    first = await load(sessionmaker, await queue(sessionmaker, settings))
    second = await queue(sessionmaker, settings, to="other@example.cz")

    with pytest.raises(crypto.CryptoError):
        mail.open_mail(settings, first.sealed_message, "invitation", first.seal_id)
    with pytest.raises(crypto.CryptoError):
        mail.open_mail(settings, first.sealed_message, first.kind, uuid.uuid4())
    # Someone who can write to the database copies the first mail over the second row.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(OutboxMail)
            .where(OutboxMail.id == second)
            .values(sealed_message=first.sealed_message)
        )
        await session.execute(delete(OutboxMail).where(OutboxMail.id == first.id))

    assert await mail.deliver_due(sessionmaker, settings) == 0
    assert smtp_server.messages == []
    row = await load(sessionmaker, second)
    assert row.attempts == 1
    assert row.last_error is not None
    assert row.last_error.startswith("CryptoError")


async def test_enqueue_belongs_to_the_callers_transaction(
    sessionmaker: Sessionmaker, settings: Settings
) -> None:
    async with sessionmaker() as session:
        row = await mail.enqueue(session, settings, kind="test", to=TO, subject=SUBJECT, text=TEXT)
        assert row.id is not None
        await session.rollback()

    async with sessionmaker() as session:
        assert await session.scalar(select(OutboxMail.id)) is None


async def test_enqueue_refuses_a_line_break_in_a_header(
    sessionmaker: Sessionmaker, settings: Settings
) -> None:
    async with sessionmaker() as session:
        with pytest.raises(ValueError, match="To"):
            await mail.enqueue(
                session, settings, kind="test", to=f"{TO}\r\nBcc: x@example.cz", subject="", text=""
            )
        with pytest.raises(ValueError, match="Subject"):
            await mail.enqueue(
                session, settings, kind="test", to=TO, subject="Hi\nBcc: x@example.cz", text=""
            )


async def test_mail_is_retried_after_backoff_when_smtp_was_down(
    sessionmaker: Sessionmaker, settings: Settings, free_port: int
) -> None:
    settings = smtp_settings(settings, free_port)
    mail_id = await queue(sessionmaker, settings)
    server = SMTPServer(port=free_port)
    start = utcnow()

    assert await mail.deliver_due(sessionmaker, settings, now=start) == 0

    row = await load(sessionmaker, mail_id)
    assert row.attempts == 1
    assert row.last_error is not None
    assert row.last_error.startswith("SMTPConnect")
    assert TO not in row.last_error
    assert row.leased_until is None
    assert row.next_attempt_at == start + mail.backoff(1)

    server.start()
    try:
        # Not before the backoff has passed, even though the server is back.
        assert await mail.deliver_due(sessionmaker, settings, now=start) == 0
        later = start + mail.backoff(1) + timedelta(seconds=1)
        assert await mail.deliver_due(sessionmaker, settings, now=later) == 1
        await server.wait_for(1)
        assert await mail.deliver_due(sessionmaker, settings, now=later + timedelta(hours=2)) == 0
        await asyncio.sleep(0.1)
        assert len(server.messages) == 1
        assert server.messages[0]["To"] == TO
    finally:
        server.stop()
    assert await find(sessionmaker, mail_id) is None


async def test_one_unreachable_server_stops_the_run_without_touching_other_mails(
    sessionmaker: Sessionmaker, settings: Settings, free_port: int
) -> None:
    settings = smtp_settings(settings, free_port)
    ids = [await queue(sessionmaker, settings) for _ in range(3)]

    assert await mail.deliver_due(sessionmaker, settings) == 0

    attempts = [(await load(sessionmaker, mail_id)).attempts for mail_id in ids]
    assert attempts == [1, 0, 0]


async def test_a_mail_given_up_after_its_last_attempt_is_deleted(
    sessionmaker: Sessionmaker, settings: Settings, free_port: int, smtp_server: SMTPServer
) -> None:
    mail_id = await queue(sessionmaker, settings)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(OutboxMail)
            .where(OutboxMail.id == mail_id)
            .values(attempts=mail.MAX_ATTEMPTS - 1)
        )

    assert await mail.deliver_due(sessionmaker, smtp_settings(settings, free_port)) == 0
    later = utcnow() + timedelta(days=1)
    working = smtp_settings(settings, smtp_server.port)
    assert await mail.deliver_due(sessionmaker, working, now=later) == 0

    assert smtp_server.messages == []
    assert await find(sessionmaker, mail_id) is None


async def test_two_workers_at_once_send_each_mail_exactly_once(
    sessionmaker: Sessionmaker, settings: Settings, smtp_server: SMTPServer
) -> None:
    settings = smtp_settings(settings, smtp_server.port)
    recipients = [f"dp{number}@example.cz" for number in range(20)]
    for recipient in recipients:
        await queue(sessionmaker, settings, to=recipient)

    sent = await asyncio.gather(
        mail.deliver_due(sessionmaker, settings), mail.deliver_due(sessionmaker, settings)
    )

    assert sum(sent) == 20
    assert Counter(message["To"] for message in smtp_server.messages) == Counter(recipients)
    async with sessionmaker() as session:
        assert await session.scalar(select(OutboxMail.id)) is None


async def test_mail_whose_lease_expired_is_taken_again(
    sessionmaker: Sessionmaker, settings: Settings, smtp_server: SMTPServer
) -> None:
    settings = smtp_settings(settings, smtp_server.port)
    mail_id = await queue(sessionmaker, settings)
    claimed_at = utcnow()
    # A worker claimed it and crashed before sending: the lease stays behind.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(OutboxMail)
            .where(OutboxMail.id == mail_id)
            .values(leased_until=claimed_at + mail.LEASE)
        )

    assert await mail.deliver_due(sessionmaker, settings, now=claimed_at) == 0
    assert smtp_server.messages == []

    after_lease = claimed_at + mail.LEASE + timedelta(seconds=1)
    assert await mail.deliver_due(sessionmaker, settings, now=after_lease) == 1
    assert [message["To"] for message in smtp_server.messages] == [TO]


def test_last_error_does_not_name_the_recipient() -> None:
    refused = aiosmtplib.SMTPRecipientRefused(
        550, f"5.1.1 <{TO.upper()}>: Recipient address rejected", TO
    )

    error = mail.describe_error(aiosmtplib.SMTPRecipientsRefused([refused]), f"DP <{TO}>")

    assert error.startswith("SMTPRecipientsRefused")
    assert "Recipient address rejected" in error
    assert TO.lower() not in error.lower()


async def test_worker_delivers_queued_mail_and_stops_promptly(
    sessionmaker: Sessionmaker, settings: Settings, smtp_server: SMTPServer
) -> None:
    # A long interval: stopping must cut the wait short, not sit it out.
    settings = smtp_settings(settings, smtp_server.port, worker_interval_seconds=60)
    await queue(sessionmaker, settings)
    await queue(sessionmaker, settings, to="second@example.cz")
    stop = asyncio.Event()

    task = asyncio.create_task(worker.run_worker(sessionmaker, settings, stop))
    try:
        await smtp_server.wait_for(2)
        stop.set()
        await asyncio.wait_for(task, timeout=2)
    finally:
        task.cancel()

    assert sorted(message["To"] for message in smtp_server.messages) == sorted(
        [TO, "second@example.cz"]
    )


async def test_worker_goes_on_after_a_failing_job_and_logs_no_recipient(
    sessionmaker: Sessionmaker,
    settings: Settings,
    smtp_server: SMTPServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = smtp_settings(settings, smtp_server.port, worker_interval_seconds=0.01)
    calls = 0

    async def failing_job(sessionmaker: Sessionmaker, settings: Settings) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError(f"could not write to {TO}")

    monkeypatch.setattr(worker, "JOBS", [failing_job, worker.deliver_mail])
    await queue(sessionmaker, settings)
    stop = asyncio.Event()

    with caplog.at_level(logging.INFO, logger="pistalka"):
        task = asyncio.create_task(worker.run_worker(sessionmaker, settings, stop))
        try:
            await smtp_server.wait_for(1)
            while calls < 2:
                await asyncio.sleep(0.01)
            stop.set()
            await asyncio.wait_for(task, timeout=2)
        finally:
            task.cancel()

    assert "failing_job failed: RuntimeError" in caplog.text
    assert TO not in caplog.text
    assert SUBJECT not in caplog.text


async def test_served_app_runs_the_worker_in_process(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    served = settings.model_copy(
        update={"smtp_port": smtp_server.port, "worker_interval_seconds": 0.05}
    )
    app = create_app(served, run_background_worker=True)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            registered = await register(client)
        messages = await smtp_server.wait_for(1)
    assert messages[0]["To"] == registered["email"]
