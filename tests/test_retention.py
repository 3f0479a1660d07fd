"""Five-year retention: the purge, legal holds and the dashboard's notice."""

import asyncio
import dataclasses
import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import cli, worker
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.deps import session_cookie_name
from app.errors import NotFound
from app.main import create_app
from app.models import (
    Attachment,
    AttachmentChunk,
    AuditEvent,
    CaseNote,
    Organisation,
    PurgedReport,
    Report,
    ReportMessage,
)
from app.models.base import utcnow
from app.services import audit, auth, cases, deadlines, retention
from tests.conftest import TEST_SECRET
from tests.factories import login, submit, twice_at_once, verified_organisation

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
        json={"body": "More details."},
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
    results = await twice_at_once(settings, lambda made: retention.purge(made, AS_OF))
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


def test_the_exact_bound_keeps_what_expires_on_keeps() -> None:
    # Every receipt day around two leap days and a DST change: the SQL bound agrees with
    # expires_on, so no expired report is left for a later batch to find.
    for as_of in (date(2031, 6, 15), date(2033, 2, 28), date(2033, 3, 1), date(2032, 2, 29)):
        first_kept = retention.first_kept_day(as_of)
        for offset in range(-10, 11):
            day = retention.add_years(as_of, -5) + timedelta(days=offset)
            for hour in (0, 12, 23):
                moment = datetime.combine(day, time(hour), retention.PRAGUE).astimezone(UTC)
                expired = retention.expires_on(moment) < as_of
                assert expired == (day < first_kept), (as_of, day)


def test_retention_period_comes_from_the_jurisdiction_profile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ten_years = dataclasses.replace(deadlines.CZECH, retention_years=10)
    monkeypatch.setattr(deadlines, "CZECH", ten_years)
    assert retention.expires_on(received(date(2026, 3, 1))) == date(2036, 3, 1)
    assert retention.first_kept_day(date(2036, 3, 2)) == date(2026, 3, 2)


async def test_purge_goes_on_past_a_batch_that_held_a_report_still_kept(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    organisation: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = await verified_organisation(client, sessionmaker)
    for slug in (organisation["slug"], organisation["slug"], other["slug"], other["slug"]):
        await submit(client, slug)
    async with sessionmaker() as session:
        first_id, second_id = list(
            await session.scalars(select(Organisation.id).order_by(Organisation.id))
        )
        # The purge takes reports by organisation: the first one's come first.
        first = list(
            await session.scalars(select(Report.id).where(Report.organisation_id == first_id))
        )
        second = list(
            await session.scalars(select(Report.id).where(Report.organisation_id == second_id))
        )
    boundary = retention.add_years(AS_OF, -5)
    await _set_received(sessionmaker, first[0], boundary - timedelta(days=1))
    await _set_received(sessionmaker, first[1], boundary)  # kept: its last day is AS_OF
    for report_id in second:
        await _set_received(sessionmaker, report_id, date(2020, 1, 10))
    monkeypatch.setattr(retention, "BATCH", 2)

    assert await retention.purge(sessionmaker, AS_OF) == 3
    async with sessionmaker() as session:
        assert list(await session.scalars(select(Report.id))) == [first[1]]


async def test_purge_refuses_a_date_after_today_unless_dry_run(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    organisation: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await submit(client, organisation["slug"])
    today = deadlines.local_date(datetime.now(UTC))
    # Received five years ago today: kept now, gone for a purge as of tomorrow.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Report).values(received_at=received(retention.add_years(today, -5)))
        )
    monkeypatch.setenv("PISTALKA_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("PISTALKA_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PISTALKA_SECRET_KEY", TEST_SECRET)
    tomorrow = (today + timedelta(days=1)).isoformat()

    with pytest.raises(SystemExit) as refused:
        await asyncio.to_thread(cli.main, ["purge", "--as-of", tomorrow])
    assert refused.value.code == 2
    assert f"--as-of {tomorrow} is after today" in capsys.readouterr().err
    assert await _count(sessionmaker, Report) == 1

    await asyncio.to_thread(cli.main, ["purge", "--as-of", tomorrow, "--dry-run"])
    assert "Dry run: 1 reports" in capsys.readouterr().out
    await asyncio.to_thread(cli.main, ["purge", "--as-of", today.isoformat()])
    assert "Erased 0 reports" in capsys.readouterr().out
    assert await _count(sessionmaker, Report) == 1


async def test_purged_ciphertext_is_not_left_in_the_sqlite_file(
    backend: str, settings: Settings, sessionmaker: Sessionmaker
) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite's file; PostgreSQL's dead rows go with VACUUM")
    path = Path(settings.resolved_database_url.split("///", 1)[1])
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        registered = await verified_organisation(client, sessionmaker)
        response = await client.post(
            f"/api/v1/public/{registered['slug']}/reports",
            data={"description": "Invoices for work never done.", "anonymous": "true"},
            files=[("files", ("ledger.txt", b"ledger " * 20000, "text/plain"))],
        )
        assert response.status_code == 201, response.text
    await app.state.engine.dispose()
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Report).values(received_at=received(date(2020, 1, 10))))
        report = await session.scalar(select(Report))
        chunk = await session.scalar(select(AttachmentChunk.data).limit(1))
    assert report is not None
    assert chunk is not None
    sealed = [report.sealed_content, report.key_for_organisation, chunk[-64:]]

    def on_disk() -> bytes:
        # The database file with its write-ahead log and shared memory, if any.
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))

    await sessionmaker.kw["bind"].dispose()
    assert all(value in on_disk() for value in sealed)
    assert await retention.purge(sessionmaker, AS_OF) == 1
    stored_before_reclaim = on_disk()
    await retention.reclaim(sessionmaker, reports=1, organisations=0)  # as the worker does
    stored = on_disk()  # with the service still connected: the log is there if not truncated
    assert any(value in stored_before_reclaim for value in sealed)  # the log held them
    assert not any(value in stored for value in sealed)


async def test_worker_purges_once_a_day_and_again_after_a_failure(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    organisation: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker, "_purged_on", None)
    long_ago = received(date(2020, 1, 10))
    await submit(client, organisation["slug"])
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Report).values(received_at=long_ago))
    unreachable = settings.model_copy(
        update={"database_url": f"sqlite:///{tmp_path / 'missing' / 'pistalka.db'}"}
    )
    engine = create_engine(unreachable)
    try:
        with pytest.raises(OperationalError):
            await worker.purge_expired(create_sessionmaker(engine), settings)
    finally:
        await engine.dispose()

    # The failed run does not count as today's: the next round purges.
    assert await worker.purge_expired(sessionmaker, settings) == 1
    await submit(client, organisation["slug"])
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Report).values(received_at=long_ago))
    assert await worker.purge_expired(sessionmaker, settings) == 0
    assert await _count(sessionmaker, Report) == 1
    tomorrow = utcnow() + timedelta(days=1)
    monkeypatch.setattr(worker, "utcnow", lambda: tomorrow)
    assert await worker.purge_expired(sessionmaker, settings) == 1
    assert await _count(sessionmaker, Report) == 0


async def test_a_second_hold_is_refused_and_the_first_reason_stays(
    client: httpx.AsyncClient, organisation: dict[str, str]
) -> None:
    case_id = await _full_report(client, organisation["slug"])
    first = "Court proceedings 12 C 34/2031"
    held = await client.post(f"/api/v1/cases/{case_id}/legal-hold", json={"reason": first})
    assert held.status_code == 200
    again = await client.post(
        f"/api/v1/cases/{case_id}/legal-hold", json={"reason": "Another lawsuit"}
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_on_hold"
    read = await client.get(f"/api/v1/cases/{case_id}")
    assert read.json()["legal_hold_reason"] == first


async def test_hold_on_a_case_erased_meanwhile_is_not_found(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    organisation: dict[str, str],
) -> None:
    case_id = await _full_report(client, organisation["slug"])
    cookie = client.cookies[session_cookie_name(settings)]
    async with sessionmaker() as session, session.begin():
        current = await auth.resolve_session(session, settings, cookie)
    assert current is not None
    async with sessionmaker() as session:
        access, report = await cases.open_case(session, current, str(case_id))
        # The daily purge erases the case while the designated person's request is running.
        await _set_received(sessionmaker, case_id, date(2020, 1, 10))
        assert await retention.purge(sessionmaker, AS_OF) == 1
        with pytest.raises(NotFound):
            await cases.hold(session, access, report, "Court proceedings")
        await session.rollback()
    missing = await client.post(
        f"/api/v1/cases/{case_id}/legal-hold", json={"reason": "Court proceedings"}
    )
    assert missing.status_code == 404


async def test_releasing_a_legal_hold_is_audited(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, organisation: dict[str, str]
) -> None:
    case_id = await _full_report(client, organisation["slug"])
    held = await client.post(f"/api/v1/cases/{case_id}/legal-hold", json={"reason": "Lawsuit"})
    assert held.status_code == 200
    assert (await client.delete(f"/api/v1/cases/{case_id}/legal-hold")).status_code == 200
    async with sessionmaker() as session:
        actions = list(
            await session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.report_id == case_id)
                .order_by(AuditEvent.seq)
            )
        )
        report = await session.get(Report, case_id)
        assert report is not None
        verified = await audit.verify(session, report.organisation_id)
    assert actions[-2:] == ["case.legal_hold", "case.legal_hold_released"]
    assert verified.ok


async def _vacuums(sessionmaker: Sessionmaker) -> dict[str, int]:
    async with sessionmaker() as session:
        rows = await session.execute(text("SELECT relname, vacuum_count FROM pg_stat_user_tables"))
        return {name: int(count) for name, count in rows.all()}


async def test_purge_vacuums_what_it_erased_from_on_postgresql(
    backend: str,
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    organisation: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if backend != "postgres":
        pytest.skip("PostgreSQL keeps dead rows until VACUUM")
    await _full_report(client, organisation["slug"])
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Report).values(received_at=received(date(2020, 1, 10))))
    monkeypatch.setenv("PISTALKA_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("PISTALKA_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PISTALKA_SECRET_KEY", TEST_SECRET)
    before = await _vacuums(sessionmaker)

    await asyncio.to_thread(cli.main, ["purge"])
    assert "Erased 1 reports and 0 cancelled organisations" in capsys.readouterr().out
    after = await _vacuums(sessionmaker)
    for table in ("report", "report_message", "case_note", "attachment", "attachment_chunk"):
        assert after[table] == before[table] + 1, table
    assert after["organisation"] == before["organisation"]

    # Nothing erased, nothing to vacuum.
    await asyncio.to_thread(cli.main, ["purge"])
    assert await _vacuums(sessionmaker) == after
