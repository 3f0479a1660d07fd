"""Control characters and line breaks are refused where a value is one line (names, addresses,
e-mails: what may reach a mail header) and, but for LF and TAB, in texts of several lines."""

import time

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.models import Organisation, OutboxMail, Report
from app.routers.intake import _form_token
from tests.factories import organisation_data, verified_organisation

BREAKS = ["\r", "\n", "\r\n", "\u2028", "\u2029", "\x00", "\x1b", "\x7f", "\x85", "\x9b", "\t"]
HEADER_INJECTION = "Acme s.r.o.\r\nBcc: everyone@example.org"


@pytest.mark.parametrize("character", BREAKS)
async def test_an_organisation_name_with_a_control_character_is_refused(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], character: str
) -> None:
    data = organisation_data(name=f"Acme{character}Bcc: everyone@example.org")
    response = await client.post("/api/v1/organisations", json=data)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "name"
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Organisation)) == 0
        assert await session.scalar(select(func.count()).select_from(OutboxMail)) == 0


@pytest.mark.parametrize("field", ["address", "email"])
async def test_the_address_and_email_of_a_registration_are_one_line(
    client: httpx.AsyncClient, field: str
) -> None:
    data = organisation_data()
    data[field] = data[field].replace("@", "\n@") if field == "email" else "Street 1\r\nPraha"
    response = await client.post("/api/v1/organisations", json=data)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


async def test_the_registration_page_refuses_a_name_with_a_line_break(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = organisation_data(name=HEADER_INJECTION)
    response = await client.post(
        "/register?lang=en", data={**data, "password_again": data["password"]}
    )
    assert response.status_code == 422
    assert "text/html" in response.headers["content-type"]
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxMail)) == 0


@pytest.mark.parametrize("field", ["name", "phone", "location", "occurred_at"])
async def test_one_line_fields_of_a_report_refuse_line_breaks(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], field: str
) -> None:
    organisation = await verified_organisation(client, sessionmaker)
    body = {"description": "Invoices for work never done.", "anonymous": False, field: "a\u2028b"}
    response = await client.post(f"/api/v1/public/{organisation['slug']}/reports", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


async def test_a_report_keeps_its_line_breaks_and_tabs_but_no_other_control(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    organisation = await verified_organisation(client, sessionmaker)
    url = f"/api/v1/public/{organisation['slug']}/reports"
    refused = await client.post(url, json={"description": "Invoices\x00 never paid."})
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "description"
    accepted = await client.post(url, json={"description": "Invoices:\r\n\t1. never paid."})
    assert accepted.status_code == 201
    own_view = await client.get(
        "/api/v1/public/reports/self",
        headers={"X-Tracking-Code": accepted.json()["tracking_code"]},
    )
    assert own_view.json()["report"]["description"] == "Invoices:\n\t1. never paid."


async def test_the_report_form_page_refuses_a_name_with_a_line_break(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    organisation = await verified_organisation(client, sessionmaker)
    form = {
        "started": _form_token(settings, int(time.time()) - 10),
        "website": "",
        "description": "Invoices for work never done.",
        "name": "Jan\rNovák",
    }
    response = await client.post(f"/{organisation['slug']}?lang=en", data=form)
    assert response.status_code == 422
    assert "text/html" in response.headers["content-type"]
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Report)) == 0
