"""Reasons of access: sealed to the organisation key, shown only to its designated persons.

A designated person types a reason when opening a case and when exporting. The audit trail keeps
only a commitment to it in the chain; the reason itself is sealed to the organisation's public
key, so the database, the operator and other organisations never read it.
"""

from typing import Any

import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import crypto
from app.models import AuditEvent, Organisation
from app.services import audit
from tests.factories import login, register, submit, verified_organisation
from tests.test_operator import operator_login, totp_secret

__all__ = ["totp_secret"]  # the operator's fixture, used by name

Sessionmaker = async_sessionmaker[AsyncSession]
CASE_REASON = "Prověrka podezření na Nováka, spis 17/2026"
REGISTER_REASON = "Výroční kontrola evidence pro jednatele"
EXPORT_REASON = "Předání dat nové příslušné osobě Dvořákové"
REASONS = (CASE_REASON, REGISTER_REASON, EXPORT_REASON)


@pytest.fixture
async def org(client: httpx.AsyncClient, sessionmaker: Sessionmaker) -> dict[str, Any]:
    """An organisation with one case, opened, the register and all data exported with reasons."""
    registered = await verified_organisation(client, sessionmaker)
    await submit(client, registered["slug"])
    assert (await login(client, registered["email"])).status_code == 200
    case_id = (await client.get("/api/v1/cases")).json()["items"][0]["id"]
    headers = {b"X-Access-Reason": CASE_REASON.encode()}
    assert (await client.get(f"/api/v1/cases/{case_id}", headers=headers)).status_code == 200
    headers = {b"X-Access-Reason": REGISTER_REASON.encode()}
    assert (await client.get("/api/v1/register", headers=headers)).status_code == 200
    headers = {b"X-Access-Reason": EXPORT_REASON.encode()}
    exported = await client.get(
        f"/api/v1/organisations/{registered['slug']}/export", headers=headers
    )
    assert exported.status_code == 200
    return {**registered, "case_id": case_id}


async def _raw_audit_rows(sessionmaker: Sessionmaker) -> list[tuple[Any, ...]]:
    async with sessionmaker() as session:
        return [tuple(row) for row in await session.execute(text("SELECT * FROM audit_event"))]


def _contains(value: object, needle: str) -> bool:
    if isinstance(value, bytes | bytearray | memoryview):
        return needle.encode() in bytes(value)
    return needle in str(value)


async def test_reasons_of_access_are_not_in_the_database_in_clear(
    org: dict[str, Any], sessionmaker: Sessionmaker
) -> None:
    rows = await _raw_audit_rows(sessionmaker)

    assert len(rows) >= 3
    for reason in REASONS:
        for word in (reason, reason.split()[0]):
            assert not any(_contains(value, word) for row in rows for value in row), word
    async with sessionmaker() as session:
        sealed = (
            await session.scalars(select(AuditEvent).where(AuditEvent.sealed_reason.is_not(None)))
        ).all()
    assert {event.action for event in sealed} == {
        "case.read",
        "register.export",
        "organisation.export",
    }
    assert all(audit.is_sealed(event.detail) for event in sealed)


async def test_the_audit_page_shows_the_reasons_to_a_designated_person(
    client: httpx.AsyncClient, org: dict[str, Any]
) -> None:
    page = await client.get(f"/organisations/{org['slug']}/audit?lang=en")

    assert page.status_code == 200
    for reason in REASONS:
        assert reason in page.text
    assert "sealed:" not in page.text


async def test_the_case_timeline_shows_the_reason_of_opening_it(
    client: httpx.AsyncClient, org: dict[str, Any]
) -> None:
    page = await client.get(f"/cases/{org['case_id']}?lang=en")

    assert page.status_code == 200
    assert CASE_REASON in page.text
    assert "sealed:" not in page.text


async def test_the_audit_page_shows_the_chain_head_and_each_events_hash(
    client: httpx.AsyncClient, org: dict[str, Any], sessionmaker: Sessionmaker
) -> None:
    page = (await client.get(f"/organisations/{org['slug']}/audit?lang=en")).text

    async with sessionmaker() as session:
        events = (
            await session.scalars(
                select(AuditEvent)
                .join(Organisation, Organisation.id == AuditEvent.organisation_id)
                .where(Organisation.slug == org["slug"])
                .order_by(AuditEvent.seq)
            )
        ).all()
    newest = events[-1]
    assert f"Event {newest.seq} has the hash {newest.hash[:8].hex()}" in page
    assert all(f"<code>{event.hash[:8].hex()}</code>" in page for event in events)


async def test_another_organisations_person_sees_no_reason(
    client: httpx.AsyncClient, org: dict[str, Any]
) -> None:
    other = await register(client)
    client.cookies.clear()
    assert (await login(client, other["email"])).status_code == 200

    for url in (f"/organisations/{org['slug']}/audit", f"/cases/{org['case_id']}"):
        response = await client.get(f"{url}?lang=en")
        assert response.status_code == 404, url
        assert not any(reason in response.text for reason in REASONS)


async def test_the_operator_sees_no_reason(
    client: httpx.AsyncClient, org: dict[str, Any], totp_secret: str
) -> None:
    client.cookies.clear()
    await operator_login(client, totp_secret)

    for url in (f"/organisations/{org['slug']}/audit", f"/cases/{org['case_id']}", "/operator"):
        response = await client.get(f"{url}?lang=en")
        assert not any(reason in response.text for reason in REASONS), url


async def test_a_designated_person_without_access_to_the_reports_sees_the_reasons_sealed(
    client: httpx.AsyncClient, org: dict[str, Any]
) -> None:
    newcomer = await register(client)
    client.cookies.clear()
    assert (await login(client, org["email"])).status_code == 200
    invited = await client.post(
        f"/api/v1/organisations/{org['slug']}/members", json={"email": newcomer["email"]}
    )
    assert invited.status_code == 202, invited.text
    client.cookies.clear()
    assert (await login(client, newcomer["email"])).status_code == 200

    page = await client.get(f"/organisations/{org['slug']}/audit?lang=en")

    assert page.status_code == 200
    assert "the chain of" in page.text
    assert not any(reason in page.text for reason in REASONS)
    assert page.text.count("Sealed reason") == 3


async def test_a_reason_sealed_anew_by_sql_is_not_shown(
    client: httpx.AsyncClient, org: dict[str, Any], sessionmaker: Sessionmaker
) -> None:
    # The public key is public: anyone can seal a text of their own to it, but it does not fit
    # the commitment the chain holds.
    async with sessionmaker() as session, session.begin():
        event = await session.scalar(select(AuditEvent).where(AuditEvent.action == "case.read"))
        assert event is not None
        public_key = await session.scalar(
            select(Organisation.public_key).where(Organisation.id == event.organisation_id)
        )
        assert public_key is not None
        forged = crypto.seal_to(
            public_key, bytes(16) + b"Routine check", b"audit-reason|" + event.id.bytes
        )
        await session.execute(
            update(AuditEvent).where(AuditEvent.id == event.id).values(sealed_reason=forged)
        )

    page = (await client.get(f"/organisations/{org['slug']}/audit?lang=en")).text

    assert "Routine check" not in page
    assert CASE_REASON not in page
    assert REGISTER_REASON in page
    assert page.count("Sealed reason") == 1


async def test_a_reason_moved_to_another_event_does_not_open_there(
    sessionmaker: Sessionmaker, client: httpx.AsyncClient, org: dict[str, Any]
) -> None:
    # A ciphertext moved to another event with the same organisation does not open there.
    async with sessionmaker() as session, session.begin():
        events = (
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.sealed_reason.is_not(None))
                .order_by(AuditEvent.seq)
            )
        ).all()
        first, second = events[0], events[1]
        await session.execute(
            update(AuditEvent)
            .where(AuditEvent.id == second.id)
            .values(sealed_reason=first.sealed_reason)
        )

    page = (await client.get(f"/organisations/{org['slug']}/audit?lang=en")).text

    assert page.count(CASE_REASON) == 1
    assert REGISTER_REASON not in page
    assert page.count("Sealed reason") == 1
