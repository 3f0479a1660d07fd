"""An organisation leaving: cancellation closes the form, 80 days to export, then erasure."""

import re
from datetime import timedelta

import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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
from app.services import leaving, mail
from tests.factories import login, submit, verified_organisation
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
