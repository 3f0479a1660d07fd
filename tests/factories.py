"""Factories for tests: an organisation registered through the API, a logged-in client."""

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import crypto
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.models import AuditEvent, Member, Membership, Organisation, Plan, Subscription
from app.models.base import utcnow
from app.services import audit, keys

_counter = itertools.count(1)
# Valid IČOs (check digit per the mod-11 rule) to spread over organisations.
VALID_ICOS = ("26843820", "26262525", "05588600", "00006947", "45274649", "25596641")
PASSWORD = "correct horse battery"


def organisation_data(**overrides: Any) -> dict[str, Any]:
    n = next(_counter)
    data = {
        "slug": f"org-{n}",
        "name": f"Organisation {n} s.r.o.",
        "ico": VALID_ICOS[n % len(VALID_ICOS)],
        "address": f"Street {n}, 110 00 Praha 1",
        "email": f"dp{n}@example.cz",
        "password": PASSWORD,
    }
    data.update(overrides)
    return data


async def register(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    """Register an organisation through the API; the answer plus the data sent."""
    data = organisation_data(**overrides)
    response = await client.post("/api/v1/organisations", json=data)
    assert response.status_code == 201, response.text
    return {**data, **response.json()}


async def login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, totp: str | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"email": email, "password": password}
    if totp is not None:
        body["totp"] = totp
    return await client.post("/api/v1/auth/login", json=body)


DESIGNATED_PERSONS = "Mgr. Jana Příslušná, tel. 601 234 567, prislusna@example.cz"


async def verified_organisation(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], **overrides: Any
) -> dict[str, Any]:
    """A registered organisation whose address is verified and whose designated persons are
    published (§ 9), so its form accepts reports."""
    registered = await register(client, **overrides)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Organisation)
            .where(Organisation.slug == registered["slug"])
            .values(email_verified_at=utcnow(), info_designated_persons=DESIGNATED_PERSONS)
        )
    return registered


async def submit(client: httpx.AsyncClient, slug: str, **fields: Any) -> dict[str, Any]:
    """Submit a report through the JSON API; the answer (tracking code, link, date)."""
    body = {"description": "The director approved invoices for work never done.", **fields}
    response = await client.post(f"/api/v1/public/{slug}/reports", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def on_plan(
    sessionmaker: async_sessionmaker[AsyncSession], slug: str, code: str = "premium"
) -> None:
    """Put the organisation on a paid plan for a year from today, as a recorded payment would."""
    async with sessionmaker() as session, session.begin():
        organisation_id = await session.scalar(
            select(Organisation.id).where(Organisation.slug == slug)
        )
        plan_id = await session.scalar(select(Plan.id).where(Plan.code == code))
        assert organisation_id is not None
        assert plan_id is not None
        today = date.today()
        session.add(
            Subscription(
                organisation_id=organisation_id,
                plan_id=plan_id,
                term="year",
                starts_on=today - timedelta(days=1),
                paid_until=today + timedelta(days=365),
            )
        )


async def twice_at_once(
    settings: Settings, job: Callable[[async_sessionmaker[AsyncSession]], Awaitable[int]]
) -> list[int]:
    """Run a job from two engines at the same moment, as two workers would."""
    engines = [create_engine(settings) for _ in range(2)]
    try:
        makers = [create_sessionmaker(engine, settings) for engine in engines]
        return list(await asyncio.gather(*(job(maker) for maker in makers)))
    finally:
        for engine in engines:
            await engine.dispose()


async def access_reasons(sessionmaker: async_sessionmaker[AsyncSession], action: str) -> list[str]:
    """The reasons of access of the `action` events, opened with a designated person's key."""
    async with sessionmaker() as session:
        events = (
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == action)
                .order_by(AuditEvent.created_at, AuditEvent.seq)
            )
        ).all()
        holders = await session.execute(
            select(Membership.org_key_grant, Member, Organisation)
            .join(Member, Member.id == Membership.member_id)
            .join(Organisation, Organisation.id == Membership.organisation_id)
            .where(Membership.org_key_grant.is_not(None))
        )
        private_keys: dict[uuid.UUID, dict[int, bytes]] = {}
        for grant, member, organisation in holders:
            if grant is None or organisation.id in private_keys:
                continue
            derived = await keys.derive_password_keys(
                PASSWORD, member.password_salt, crypto.Argon2Params.decode(member.password_params)
            )
            member_key = keys.unwrap_member_key(derived, member.id, member.wrapped_private_key)
            private_keys[organisation.id] = {
                organisation.key_version: keys.open_grant(
                    grant, member_key, organisation.id, member.id
                )
            }
    opened: dict[uuid.UUID, str] = {}
    for organisation_id, found in private_keys.items():
        of_organisation = [event for event in events if event.organisation_id == organisation_id]
        opened |= audit.open_reasons(of_organisation, found)
    return [opened.get(event.id, event.detail) for event in events]
