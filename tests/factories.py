"""Factories for tests: an organisation registered through the API, a logged-in client."""

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.models import Organisation, Plan, Subscription
from app.models.base import utcnow

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
        return list(await asyncio.gather(*(job(create_sessionmaker(engine)) for engine in engines)))
    finally:
        for engine in engines:
            await engine.dispose()
