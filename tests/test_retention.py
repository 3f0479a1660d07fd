"""Five-year retention: the purge, legal holds and the dashboard's notice."""

import asyncio
import uuid
from datetime import UTC, date, datetime, time, timedelta

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import cli
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.main import create_app
from app.models import (
    Attachment,
    AttachmentChunk,
    AuditEvent,
    CaseNote,
    PurgedReport,
    Report,
    ReportMessage,
)
from app.services import audit, deadlines, retention
from tests.conftest import TEST_SECRET
from tests.factories import login, submit, verified_organisation

Sessionmaker = async_sessionmaker[AsyncSession]
AS_OF = date(2031, 6, 15)
READ = {"X-Access-Reason": "retention check"}


def received(day: date) -> datetime:
    """Noon in Prague on `day`."""
    return datetime.combine(day, time(12), retention.PRAGUE).astimezone(UTC)


async def _full_report(client: httpx.AsyncClient, slug: str) -> uuid.UUID:
    """A report with a file, a message each way and a note, as a designated person sees it."""
    before = {item["id"] for item in (await client.get("/api/v1/cases")).json()["items"]}
    response = await client.post(
        f"/api/v1/public/{slug}/reports",
        data={"description": "Invoices for work never done.", "anonymous": "true"},
        files=[("files", ("ledger.txt", b"ledger " * 20000, "text/plain"))],
    )
    assert response.status_code == 201, response.text
    code = response.json()["tracking_code"]
    sent = await client.post(
        "/api/v1/public/reports/self/messages",
        data={"body": "More details."},
        headers={"X-Tracking-Code": code},
    )
    assert sent.status_code in (200, 201), sent.text
    cases = (await client.get("/api/v1/cases")).json()["items"]
    (case_id,) = {item["id"] for item in cases} - before
    assert (await client.get(f"/api/v1/cases/{case_id}", headers=READ)).status_code == 200
    for path, body in (("messages", {"body": "Thank you."}), ("notes", {"body": "Call HR."})):
        answer = await client.post(f"/api/v1/cases/{case_id}/{path}", json=body, headers=READ)
        assert answer.status_code in (200, 201), answer.text
    return uuid.UUID(case_id)


async def _set_received(sessionmaker: Sessionmaker, report_id: uuid.UUID, day: date) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Report).where(Report.id == report_id).values(received_at=received(day))
        )


async def _count(sessionmaker: Sessionmaker, model: type, **where: object) -> int:
    async with sessionmaker() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(await session.scalar(query) or 0)


@pytest.fixture
async def organisation(client: httpx.AsyncClient, sessionmaker: Sessionmaker) -> dict[str, str]:
    registered = await verified_organisation(client, sessionmaker)
    assert (await login(client, registered["email"])).status_code == 200
    return registered


def test_retention_ends_five_years_after_receipt() -> None:
    assert retention.add_years(date(2026, 3, 1), 5) == date(2031, 3, 1)
    assert retention.add_years(date(2028, 2, 29), 5) == date(2033, 2, 28)
    # 23:30 UTC on 31 December is already 1 January in Prague: the local day counts.
    assert retention.expires_on(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == date(2032, 1, 1)
    assert retention.expires_on(datetime(2026, 12, 31, 22, 30, tzinfo=UTC)) == date(2031, 12, 31)


async def test_purge_erases_exactly_what_is_past_retention_and_not_held(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, organisation: dict[str, str]
) -> None:
    slug = organisation["slug"]
    expired = await _full_report(client, slug)
    kept = await _full_report(client, slug)
    held = await _full_report(client, slug)
    five_years_before = retention.add_years(AS_OF, -5)
    await _set_received(sessionmaker, expired, five_years_before - timedelta(days=1))
    await _set_received(sessionmaker, kept, five_years_before + timedelta(days=1))
    await _set_received(sessionmaker, held, five_years_before - timedelta(days=1))
    hold = await client.post(
        f"/api/v1/cases/{held}/legal-hold", json={"reason": "Court proceedings 12 C 34/2031"}
    )
    assert hold.status_code == 200, hold.text
    assert hold.json()["legal_hold"] is True
    async with sessionmaker() as session:
        reference = (await session.get(Report, expired)).reference  # type: ignore[union-attr]
    assert await _count(sessionmaker, AttachmentChunk) > 3

    async with sessionmaker() as session:
        assert [item.id for item in await retention.expired_reports(session, AS_OF)] == [expired]
    assert await retention.purge(sessionmaker, AS_OF) == 1

    # Every row of the expired case is gone; the other two are whole.
    assert await _count(sessionmaker, Report, id=expired) == 0
    for model in (ReportMessage, CaseNote, Attachment):
        assert await _count(sessionmaker, model, report_id=expired) == 0
        assert await _count(sessionmaker, model, report_id=kept) > 0
        assert await _count(sessionmaker, model, report_id=held) > 0
    async with sessionmaker() as session:
        chunks = await session.scalar(
            select(func.count())
            .select_from(AttachmentChunk)
            .join(Attachment, Attachment.id == AttachmentChunk.attachment_id)
        )
        all_chunks = await session.scalar(select(func.count()).select_from(AttachmentChunk))
        tombstone = await session.get(PurgedReport, expired)
        events = list(
            await session.scalars(
                select(AuditEvent).where(
                    AuditEvent.report_id == expired, AuditEvent.action == "report.purged"
                )
            )
        )
        organisation_id = tombstone.organisation_id if tombstone else None
        assert organisation_id is not None
        verified = await audit.verify(session, organisation_id)
    assert chunks == all_chunks  # no chunk outlived its file
    assert tombstone is not None
    assert (tombstone.reference, tombstone.channel) == (reference, "web")
    assert [event.detail for event in events] == [reference]
    assert verified.ok

    # The case list no longer shows it; a second purge finds nothing.
    listed = {item["id"] for item in (await client.get("/api/v1/cases")).json()["items"]}
    assert listed == {str(kept), str(held)}
    assert await retention.purge(sessionmaker, AS_OF) == 0
    assert await _count(sessionmaker, PurgedReport) == 1

    # Released, the held case goes at the next purge.
    released = await client.delete(f"/api/v1/cases/{held}/legal-hold")
    assert released.status_code == 200
    assert released.json()["legal_hold"] is False
    assert await retention.purge(sessionmaker, AS_OF) == 1
    assert await _count(sessionmaker, Report) == 1


async def test_legal_hold_needs_a_reason_is_sealed_and_audited(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, organisation: dict[str, str]
) -> None:
    case_id = await _full_report(client, organisation["slug"])
    refused = await client.post(f"/api/v1/cases/{case_id}/legal-hold", json={"reason": " "})
    assert refused.status_code == 422
    reason = "Trestní řízení sp. zn. 3 T 12/2031"
    held = await client.post(f"/api/v1/cases/{case_id}/legal-hold", json={"reason": reason})
    assert held.status_code == 200
    read = await client.get(f"/api/v1/cases/{case_id}")
    assert read.json()["legal_hold_reason"] == reason
    async with sessionmaker() as session:
        report = await session.get(Report, case_id)
        assert report is not None
        assert report.sealed_legal_hold is not None
        assert reason.encode() not in report.sealed_legal_hold
        actions = list(
            await session.scalars(select(AuditEvent.action).where(AuditEvent.report_id == case_id))
        )
    assert "case.legal_hold" in actions
    not_held = await client.delete(f"/api/v1/cases/{case_id}/legal-hold")
    assert not_held.status_code == 200
    again = await client.delete(f"/api/v1/cases/{case_id}/legal-hold")
    assert again.status_code == 409


async def test_two_purges_at_once_erase_each_report_once(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    organisation: dict[str, str],
) -> None:
    other = await verified_organisation(client, sessionmaker)
    app = create_app(settings.model_copy(update={"submissions_per_hour": 100}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as many:
        for _ in range(12):
            await submit(many, organisation["slug"])
            await submit(many, other["slug"])
    await app.state.engine.dispose()
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Report).values(received_at=received(date(2020, 1, 10))))
    engines = [create_engine(settings) for _ in range(2)]
    try:
        results = await asyncio.gather(
            *(retention.purge(create_sessionmaker(engine), AS_OF) for engine in engines)
        )
    finally:
        for engine in engines:
            await engine.dispose()
    assert sum(results) == 24
    assert await _count(sessionmaker, Report) == 0
    assert await _count(sessionmaker, PurgedReport) == 24
    assert await _count(sessionmaker, AuditEvent, action="report.purged") == 24
    async with sessionmaker() as session:
        assert all(result.ok for result in (await audit.verify_all(session)).values())


async def test_dry_run_lists_and_changes_nothing(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    organisation: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await submit(client, organisation["slug"])
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Report).values(received_at=received(date(2020, 1, 10))))
        reference = (await session.scalar(select(Report))).reference  # type: ignore[union-attr]
    monkeypatch.setenv("PISTALKA_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("PISTALKA_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PISTALKA_SECRET_KEY", TEST_SECRET)

    await asyncio.to_thread(cli.main, ["purge", "--as-of", "2025-01-10", "--dry-run"])
    assert "Dry run: 0 reports" in capsys.readouterr().out
    await asyncio.to_thread(cli.main, ["purge", "--as-of", "2025-01-11", "--dry-run"])
    out = capsys.readouterr().out
    assert f"report {organisation['slug']} {reference}" in out
    assert "Dry run: 1 reports" in out
    assert await _count(sessionmaker, Report) == 1
    await asyncio.to_thread(cli.main, ["purge", "--as-of", "2025-01-11"])
    assert "Erased 1 reports" in capsys.readouterr().out
    assert await _count(sessionmaker, Report) == 0


async def test_dashboard_counts_cases_purged_within_90_days(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, organisation: dict[str, str]
) -> None:
    slug = organisation["slug"]
    for _ in range(3):
        await submit(client, slug)
    today = deadlines.local_date(datetime.now(UTC))
    async with sessionmaker() as session, session.begin():
        ids = list(await session.scalars(select(Report.id).order_by(Report.reference_number)))
    soon = retention.add_years(today, -5) + timedelta(days=30)
    await _set_received(sessionmaker, ids[0], soon)
    await _set_received(sessionmaker, ids[1], soon)
    await _set_received(sessionmaker, ids[2], retention.add_years(today, -5) + timedelta(days=120))
    page = await client.get("/dashboard?lang=en")
    assert page.status_code == 200
    assert f'id="purge-soon-{slug}"' in page.text
    assert "2 cases reach the end of their five-year retention within 90 days" in page.text
    assert (await client.get(f"/api/v1/cases/{ids[0]}", headers=READ)).status_code == 200
    hold = await client.post(f"/api/v1/cases/{ids[0]}/legal-hold", json={"reason": "Lawsuit"})
    assert hold.status_code == 200
    page = await client.get("/dashboard?lang=en")
    assert "1 case reaches the end of its five-year retention within 90 days" in page.text
