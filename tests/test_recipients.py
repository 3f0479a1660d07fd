"""Who is written to about an organisation's account."""

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Organisation
from app.services.recipients import organisation_recipients
from tests.factories import login, register


async def _recipients(sessionmaker: async_sessionmaker[AsyncSession], slug: str) -> list[str]:
    async with sessionmaker() as session:
        organisation = await session.scalar(select(Organisation).where(Organisation.slug == slug))
        assert organisation is not None
        return await organisation_recipients(session, organisation)


async def test_an_organisation_is_written_to_at_its_address_and_each_designated_persons_once(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    first = await register(client, email="zz-first@example.org")
    second = await register(client, email="aa-second@example.org")
    assert (await login(client, first["email"])).status_code == 200
    added = await client.post(
        f"/api/v1/organisations/{first['slug']}/members", json={"email": second["email"]}
    )
    assert added.status_code == 202

    # The first organisation's address is also its registrant's: one mail, not two.
    assert await _recipients(sessionmaker, first["slug"]) == [second["email"], first["email"]]
    assert await _recipients(sessionmaker, second["slug"]) == [second["email"]]
