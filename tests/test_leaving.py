"""An organisation leaving: cancellation closes the form, 80 days to export, then erasure."""

import asyncio
import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import cli
from app.config import Settings
from app.models import (
    AttachmentChunk,
    AuditEvent,
    Member,
    Membership,
    OperatorEvent,
    Organisation,
    OutboxMail,
    Report,
)
from app.models.base import utcnow
from app.services import leaving, mail
from tests.conftest import TEST_SECRET
from tests.factories import login, register, submit, twice_at_once, verified_organisation
from tests.smtp import SMTPServer

Sessionmaker = async_sessionmaker[AsyncSession]


async def _count(sessionmaker: Sessionmaker, model: type) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_cancel_closes_the_form_warns_and_can_be_withdrawn(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    smtp_server: SMTPServer,
) -> None:
    registered = await verified_organisation(client, sessionmaker)
    slug = registered["slug"]
    await submit(client, slug)
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(OutboxMail))
    assert (await login(client, registered["email"])).status_code == 200

    page = await client.get(f"/organisations/{slug}/leave?lang=en")
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert token is not None
    unconfirmed = await client.post(
        f"/organisations/{slug}/leave?lang=en", data={"csrf": token.group(1), "confirm": "x"}
    )
    assert unconfirmed.status_code == 422
    cancelled = await client.post(
        f"/organisations/{slug}/leave", data={"csrf": token.group(1), "confirm": slug}
    )
    assert cancelled.status_code == 303
    state = (await client.get(f"/api/v1/organisations/{slug}/cancellation")).json()
    assert state["cancelled_at"] is not None

    refused = await client.post(f"/api/v1/public/{slug}/reports", json={"description": "x" * 20})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "organisation_cancelled"
    form = await client.get(f"/{slug}?lang=en")
    assert form.status_code == 409
    # The data stays readable and exportable.
    cases = await client.get("/api/v1/cases")
    assert len(cases.json()["items"]) == 1
    exported = await client.get(
        f"/api/v1/organisations/{slug}/export", headers={"X-Access-Reason": "leaving"}
    )
    assert exported.status_code == 200

    await mail.deliver_due(
        sessionmaker, settings.model_copy(update={"smtp_port": smtp_server.port})
    )
    assert [message["To"] for message in smtp_server.messages] == [registered["email"]]
    body = smtp_server.messages[0].get_body(("plain",))
    assert body is not None
    assert f"/organisations/{slug}/export" in body.get_content()
    again = await client.post(f"/api/v1/organisations/{slug}/cancellation")
    assert again.status_code == 409

    withdrawn = await client.delete(f"/api/v1/organisations/{slug}/cancellation")
    assert withdrawn.status_code == 200
    assert withdrawn.json()["cancelled_at"] is None
    await submit(client, slug)


async def test_erasure_after_the_export_window_leaves_only_the_operator_record(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    leaving_org = await verified_organisation(client, sessionmaker)
    staying = await verified_organisation(client, sessionmaker)
    response = await client.post(
        f"/api/v1/public/{leaving_org['slug']}/reports",
        data={"description": "Leaving with a file.", "anonymous": "true"},
        files=[("files", ("a.txt", b"evidence " * 10000, "text/plain"))],
    )
    assert response.status_code == 201
    await submit(client, staying["slug"])
    assert (await login(client, leaving_org["email"])).status_code == 200
    assert (
        await client.post(f"/api/v1/organisations/{leaving_org['slug']}/cancellation")
    ).status_code == 200
    async with sessionmaker() as session:
        organisation = await session.scalar(
            select(Organisation).where(Organisation.slug == leaving_org["slug"])
        )
    assert organisation is not None
    assert organisation.cancelled_at is not None
    window_end = organisation.cancelled_at + timedelta(days=leaving.EXPORT_WINDOW_DAYS)

    assert await leaving.erase_cancelled(sessionmaker, window_end - timedelta(minutes=1)) == 0
    assert await _count(sessionmaker, Organisation) == 2
    assert await leaving.erase_cancelled(sessionmaker, window_end + timedelta(minutes=1)) == 1
    assert await leaving.erase_cancelled(sessionmaker, window_end + timedelta(days=1)) == 0

    async with sessionmaker() as session:
        slugs = list(await session.scalars(select(Organisation.slug)))
        emails = list(await session.scalars(select(Member.email)))
        reports = await session.scalar(
            select(func.count()).where(Report.organisation_id == organisation.id)
        )
        audit = await session.scalar(
            select(func.count()).where(AuditEvent.organisation_id == organisation.id)
        )
        memberships = await session.scalar(
            select(func.count()).where(Membership.organisation_id == organisation.id)
        )
        record = await session.scalar(
            select(OperatorEvent).where(OperatorEvent.action == "organisation.erased")
        )
    assert slugs == [staying["slug"]]
    assert emails == [staying["email"]]
    assert (reports, audit, memberships) == (0, 0, 0)
    assert await _count(sessionmaker, AttachmentChunk) == 0
    assert await _count(sessionmaker, Report) == 1
    assert record is not None
    assert record.organisation_id == organisation.id
    assert leaving_org["slug"] in record.detail


async def test_cancellation_warns_every_designated_person(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    smtp_server: SMTPServer,
) -> None:
    registered = await verified_organisation(client, sessionmaker)
    colleague = await register(client, email="colleague@example.org")
    assert (await login(client, registered["email"])).status_code == 200
    added = await client.post(
        f"/api/v1/organisations/{registered['slug']}/members", json={"email": colleague["email"]}
    )
    assert added.status_code == 202
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(OutboxMail))

    cancelled = await client.post(f"/api/v1/organisations/{registered['slug']}/cancellation")
    assert cancelled.status_code == 200
    await mail.deliver_due(
        sessionmaker, settings.model_copy(update={"smtp_port": smtp_server.port})
    )
    recipients = sorted(message["To"] for message in smtp_server.messages)
    assert recipients == sorted([registered["email"], "colleague@example.org"])
    for message in smtp_server.messages:
        body = message.get_body(("plain",))
        assert body is not None
        assert f"/organisations/{registered['slug']}/export" in body.get_content()


async def _cancelled_days_ago(sessionmaker: Sessionmaker, slug: str, days: int) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Organisation)
            .where(Organisation.slug == slug)
            .values(cancelled_at=utcnow() - timedelta(days=days))
        )


async def test_dry_run_lists_the_cancelled_organisations_past_their_window(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    past = await verified_organisation(client, sessionmaker)
    within = await verified_organisation(client, sessionmaker)
    staying = await verified_organisation(client, sessionmaker)
    await _cancelled_days_ago(sessionmaker, past["slug"], leaving.EXPORT_WINDOW_DAYS + 2)
    await _cancelled_days_ago(sessionmaker, within["slug"], leaving.EXPORT_WINDOW_DAYS - 2)
    monkeypatch.setenv("PISTALKA_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("PISTALKA_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PISTALKA_SECRET_KEY", TEST_SECRET)

    await asyncio.to_thread(cli.main, ["purge", "--dry-run"])
    out = capsys.readouterr().out
    assert f"organisation {past['slug']}\n" in out
    assert within["slug"] not in out
    assert staying["slug"] not in out
    assert "Dry run: 0 reports and 1 cancelled organisations would be erased" in out
    assert await _count(sessionmaker, Organisation) == 3
    assert await _count(sessionmaker, OperatorEvent) == 0


async def test_two_workers_at_once_erase_each_organisation_once(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, settings: Settings
) -> None:
    # Six organisations, each registered from its own office: registrations are limited per address.
    app = client._transport.app  # type: ignore[attr-defined]
    slugs = []
    for n in range(6):
        office = httpx.ASGITransport(app=app, client=(f"192.0.2.{n + 1}", 1234))
        async with httpx.AsyncClient(transport=office, base_url="http://testserver") as registrant:
            slugs.append((await verified_organisation(registrant, sessionmaker))["slug"])
    for slug in slugs:
        await submit(client, slug)
        await _cancelled_days_ago(sessionmaker, slug, leaving.EXPORT_WINDOW_DAYS + 1)
    results = await twice_at_once(settings, leaving.erase_cancelled)
    assert sum(results) == 6
    assert await _count(sessionmaker, Organisation) == 0
    assert await _count(sessionmaker, Report) == 0
    async with sessionmaker() as session:
        erased = list(
            await session.scalars(
                select(OperatorEvent.organisation_id).where(
                    OperatorEvent.action == "organisation.erased"
                )
            )
        )
    assert len(erased) == 6
    assert len(set(erased)) == 6
