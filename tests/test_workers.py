"""Two `pistalka worker` processes at once, as two machines would run them: nothing twice."""

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.models import AuditEvent, OutboxMail, PurgedReport, Report
from app.services import mail
from tests.conftest import TEST_SECRET
from tests.factories import submit, verified_organisation
from tests.served import SOURCE
from tests.smtp import SMTPServer

Sessionmaker = async_sessionmaker[AsyncSession]
PISTALKA = str(Path(sys.executable).with_name("pistalka"))
MAILS = 30
EXPIRED = 6


def _start_worker(settings: Settings, smtp_port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PISTALKA_")}
    env.update(
        PISTALKA_DATABASE_URL=settings.database_url or "",
        PISTALKA_DATA_DIR=str(settings.data_dir),
        PISTALKA_SECRET_KEY=TEST_SECRET,
        PISTALKA_SMTP_HOST="127.0.0.1",
        PISTALKA_SMTP_PORT=str(smtp_port),
        PISTALKA_WORKER_INTERVAL_SECONDS="0.1",
        PYTHONPATH=str(SOURCE),
    )
    with log.open("ab") as output:
        return subprocess.Popen(  # noqa: S603 - our own command
            [PISTALKA, "worker"],
            cwd=settings.data_dir,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


async def _count(sessionmaker: Sessionmaker, query: object) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(query) or 0)  # type: ignore[call-overload]


async def test_two_worker_processes_send_each_mail_once_and_purge_each_report_once(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    smtp_server: SMTPServer,
    tmp_path: Path,
) -> None:
    organisation = await verified_organisation(client, sessionmaker)
    for _ in range(EXPIRED):
        await submit(client, organisation["slug"])
    async with sessionmaker() as session, session.begin():
        # Received six years ago: past the five-year retention.
        await session.execute(
            update(Report).values(received_at=datetime(2020, 1, 10, 9, tzinfo=UTC))
        )
        for n in range(MAILS):
            await mail.enqueue(
                session,
                settings,
                kind="test",
                to=f"person{n}@example.org",
                subject=f"Mail {n}",
                text="Hello.",
            )
    queued = await _count(
        sessionmaker,
        select(func.count()).select_from(OutboxMail),
    )
    assert queued >= MAILS

    workers = [
        _start_worker(settings, smtp_server.port, tmp_path / f"worker{n}.log") for n in (1, 2)
    ]
    try:
        await smtp_server.wait_for(queued, timeout=60)
        # A few more rounds of both workers, so a mail sent twice would have arrived by now.
        await asyncio.sleep(1.5)
        for process in workers:
            assert process.poll() is None, (tmp_path / "worker1.log").read_text()
    finally:
        for process in workers:
            process.terminate()
        deadline = time.monotonic() + 15
        for process in workers:
            process.wait(timeout=max(1, deadline - time.monotonic()))

    message_ids = [message["Message-ID"] for message in smtp_server.messages]
    assert len(message_ids) == queued
    assert len(set(message_ids)) == queued
    subjects = [message["Subject"] for message in smtp_server.messages]
    assert sorted(s for s in subjects if s.startswith("Mail ")) == sorted(
        f"Mail {n}" for n in range(MAILS)
    )
    assert await _count(sessionmaker, select(func.count()).select_from(Report)) == 0
    assert await _count(sessionmaker, select(func.count()).select_from(PurgedReport)) == EXPIRED
    purged_events = select(func.count()).where(AuditEvent.action == "report.purged")
    assert await _count(sessionmaker, purged_events) == EXPIRED
    for n in (1, 2):
        log = (tmp_path / f"worker{n}.log").read_text()
        assert "Traceback" not in log
        assert " failed" not in log  # a job that failed is logged by class and stack
