"""The § 21 register of reports: JSON, CSV and the page, on SQLite and PostgreSQL."""

import csv
import io
from datetime import date
from typing import Any

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import AuditEvent
from app.models.base import utcnow
from app.services import deadlines
from app.services.reports import summarise
from tests.factories import access_reasons, login, register, submit, verified_organisation

Sessionmaker = async_sessionmaker[AsyncSession]
REASON = {"X-Access-Reason": "annual review of the register"}
CSV = {**REASON, "Accept": "text/csv"}
PAGE = "/register-of-reports"
FORMULA = '=HYPERLINK("https://evil.example/","Click here")'
LONG_DESCRIPTION = FORMULA + " The invoices were paid twice" + " and again" * 40 + "."
NAMED = {
    "anonymous": False,
    "name": "Jana Nováková",
    "birth_date": "1985-03-14",
    "contact_address": "Dlouhá 1, 110 00 Praha 1",
    "phone": "+420 601 234 567",
    "person_concerned": "Karel Vedoucí, the director",
    "persons_involved": "Petra Svědková, the accountant, saw it",
    "description": "The director approved invoices for work never done.",
}


@pytest.fixture
async def org(client: httpx.AsyncClient, sessionmaker: Sessionmaker) -> dict[str, Any]:
    """An anonymous report, then a named one assessed as not valid; the DP logged in."""
    organisation = await verified_organisation(client, sessionmaker)
    await submit(client, organisation["slug"], description=LONG_DESCRIPTION)
    await submit(client, organisation["slug"], **NAMED)
    assert (await login(client, organisation["email"])).status_code == 200
    items = (await client.get("/api/v1/cases")).json()["items"]
    named = next(item for item in items if item["reference"].endswith("-0002"))
    assert (await client.get(f"/api/v1/cases/{named['id']}", headers=REASON)).status_code == 200
    acknowledged = await client.post(f"/api/v1/cases/{named['id']}/acknowledge", json={})
    assert acknowledged.status_code == 200
    decided = await client.post(
        f"/api/v1/cases/{named['id']}/decision", json={"outcome": "not_valid"}
    )
    assert decided.status_code == 200, decided.text
    return organisation


def _parse(response: httpx.Response) -> list[list[str]]:
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:]), delimiter=";"))


def _today() -> date:
    return deadlines.local_date(utcnow())


def _csrf(page: httpx.Response) -> str:
    return page.text.split('name="csrf" value="')[1].split('"')[0]


async def _exports(sessionmaker: Sessionmaker) -> list[str]:
    return await access_reasons(sessionmaker, "register.export")


async def test_register_lists_reports_oldest_first_with_identity_only_when_known(
    client: httpx.AsyncClient, org: dict[str, Any]
) -> None:
    response = await client.get("/api/v1/register", headers=REASON)
    assert response.status_code == 200, response.text
    anonymous, named = response.json()["items"]
    year = _today().year
    assert [anonymous["reference"], named["reference"]] == [f"{year}-0001", f"{year}-0002"]
    assert anonymous["organisation"] == named["organisation"] == org["slug"]
    assert anonymous["name"] is anonymous["birth_date"] is anonymous["contact_address"] is None
    assert named["name"] == "Jana Nováková"
    assert named["birth_date"] == "1985-03-14"
    assert named["contact_address"] == "Dlouhá 1, 110 00 Praha 1"
    assert named["other_identity"] == "+420 601 234 567"
    assert named["person_concerned"] == "Karel Vedoucí, the director"
    assert "Svědková" not in str(named)  # a witness is not the person concerned
    assert named["summary"] == NAMED["description"]
    assert anonymous["received_on"] <= named["received_on"]


async def test_register_shows_the_date_and_result_of_the_assessment(
    client: httpx.AsyncClient, org: dict[str, Any]
) -> None:
    anonymous, named = (await client.get("/api/v1/register", headers=REASON)).json()["items"]
    assert anonymous["assessed_on"] is None
    assert anonymous["outcome"] is None
    assert named["assessed_on"] == _today().isoformat()
    assert named["outcome"] == "not_valid"


async def test_summary_is_the_first_300_characters_cut_at_a_word(
    client: httpx.AsyncClient, org: dict[str, Any]
) -> None:
    anonymous = (await client.get("/api/v1/register", headers=REASON)).json()["items"][0]
    summary = anonymous["summary"]
    assert summary.endswith("…")
    assert len(summary) <= 301
    assert LONG_DESCRIPTION.startswith(summary[:-1])
    assert LONG_DESCRIPTION[len(summary) - 1] == " "  # the cut falls between words


def test_summarise_keeps_short_texts_and_cuts_long_words() -> None:
    assert summarise("Short\n\ntext.") == "Short text."
    assert summarise("x" * 400) == "x" * 300 + "…"
    assert summarise("word " * 100) == ("word " * 60).strip() + "…"


async def test_csv_parses_back_with_a_czech_header_by_default(
    client: httpx.AsyncClient, org: dict[str, Any]
) -> None:
    response = await client.get("/api/v1/register", headers=CSV)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == (
        f'attachment; filename="evidence-oznameni-{_today():%Y-%m-%d}.csv"'
    )
    header, anonymous, named = _parse(response)
    assert header[:3] == ["Organizace", "Číslo oznámení", "Datum přijetí"]
    assert header[-1] == "Výsledek posouzení"
    assert anonymous[3:6] == ["", "", ""]
    assert named[0] == org["name"]
    assert header[3:10] == [
        "Jméno a příjmení oznamovatele",
        "Datum narození",
        "Kontaktní adresa",
        "Další údaje, z nichž lze dovodit totožnost",
        "Shrnutí obsahu oznámení",
        "Osoba, proti níž oznámení směřuje",
        "Datum ukončení posouzení",
    ]
    assert anonymous[3:7] == ["", "", "", ""]
    assert named[0] == org["name"]
    assert named[3:7] == [
        "Jana Nováková",
        "14.03.1985",
        "Dlouhá 1, 110 00 Praha 1",
        "'+420 601 234 567",
    ]
    assert named[8] == "Karel Vedoucí, the director"
    assert named[9:] == [f"{_today():%d.%m.%Y}", "Nedůvodné"]


async def test_csv_language_follows_lang(client: httpx.AsyncClient, org: dict[str, Any]) -> None:
    header, _, named = _parse(await client.get("/api/v1/register?lang=en", headers=CSV))
    assert header[:3] == ["Organisation", "Reference", "Date of receipt"]
    assert named[-1] == "Not valid"


async def test_csv_neutralises_formulas(client: httpx.AsyncClient, org: dict[str, Any]) -> None:
    _, anonymous, _ = _parse(await client.get("/api/v1/register", headers=CSV))
    assert anonymous[7].startswith("'=HYPERLINK(")


async def test_export_without_a_reason_is_refused(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, org: dict[str, Any]
) -> None:
    for headers in ({}, {"Accept": "text/csv"}, {"X-Access-Reason": "  x "}):
        response = await client.get("/api/v1/register", headers=headers)
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "access_reason_required"
    assert await _exports(sessionmaker) == []


async def test_each_export_is_audited_with_its_reason(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, org: dict[str, Any]
) -> None:
    await client.get("/api/v1/register", headers=REASON)
    # Sent as raw UTF-8, as curl sends it.
    utf8 = {b"Accept": b"text/csv", b"X-Access-Reason": "kontrola úřadu".encode()}
    await client.get("/api/v1/register", headers=utf8)
    assert await _exports(sessionmaker) == ["annual review of the register", "kontrola úřadu"]


async def test_another_organisations_slug_is_404(
    client: httpx.AsyncClient, org: dict[str, Any]
) -> None:
    other = await register(client)
    own = await client.get(f"/api/v1/register?organisation={org['slug']}", headers=REASON)
    assert len(own.json()["items"]) == 2
    response = await client.get(f"/api/v1/register?organisation={other['slug']}", headers=REASON)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_not_logged_in_is_401(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/register", headers=REASON)).status_code == 401


async def test_page_asks_for_a_reason_then_shows_the_table(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, org: dict[str, Any]
) -> None:
    form = await client.get(f"{PAGE}?lang=en")
    assert form.status_code == 200
    assert 'name="reason"' in form.text
    assert "<table" not in form.text
    assert "Nováková" not in form.text

    refused = await client.post(f"{PAGE}?lang=en", data={"csrf": _csrf(form), "reason": ""})
    assert refused.status_code == 422
    assert "Give the reason for the export" in refused.text

    shown = await client.post(
        f"{PAGE}?lang=en", data={"csrf": _csrf(form), "reason": "audit", "format": "table"}
    )
    assert shown.status_code == 200
    assert "<table" in shown.text
    assert "Jana Nováková" in shown.text
    assert "Not valid" in shown.text
    assert "Anonymous" in shown.text
    assert await _exports(sessionmaker) == ["audit"]
    items = (await client.get("/api/v1/cases")).json()["items"]
    for item in items:  # each row links to its case
        assert f'<a href="/cases/{item["id"]}?lang=en">{item["reference"]}</a>' in shown.text


async def test_the_designated_person_writes_the_summary_the_register_shows(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, org: dict[str, Any]
) -> None:
    anonymous = (await client.get("/api/v1/register", headers=REASON)).json()["items"][0]
    case = (await client.get(f"/api/v1/cases/{anonymous['report_id']}", headers=REASON)).json()
    assert case["register_summary"] == anonymous["summary"]  # prefilled from the report
    assert case["register_summary_written"] is False
    short = await client.post(f"/api/v1/cases/{case['id']}/summary", json={"summary": "x"})
    assert short.status_code == 422
    written = await client.post(
        f"/api/v1/cases/{case['id']}/summary",
        json={"summary": "Invoices paid twice to one supplier in 2026."},
    )
    assert written.status_code == 200
    assert written.json()["register_summary_written"] is True
    rows = (await client.get("/api/v1/register", headers=REASON)).json()["items"]
    assert rows[0]["summary"] == "Invoices paid twice to one supplier in 2026."
    async with sessionmaker() as session:
        actions = list(await session.scalars(select(AuditEvent.action)))
    assert "case.summary" in actions


async def test_the_register_prints_as_a_pdf_record(
    client: httpx.AsyncClient, org: dict[str, Any]
) -> None:
    response = await client.get("/api/v1/register", headers={**REASON, "Accept": "application/pdf"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="evidence-oznameni-{_today():%Y-%m-%d}.pdf"'
    )
    text = " ".join(
        " ".join(page.extract_text().split())
        for page in PdfReader(io.BytesIO(response.content)).pages
    )
    assert "Evidence oznámení" in text
    assert org["name"] in text
    assert org["email"] in text  # who exported it
    assert f"{_today():%d. %m. %Y}" in text  # when
    assert "Jana Nováková" in text
    assert "Karel Vedoucí" in text
    assert f"{_today().year}-0002" in text


async def test_the_page_downloads_the_pdf(client: httpx.AsyncClient, org: dict[str, Any]) -> None:
    form = await client.get(PAGE)
    response = await client.post(
        PAGE, data={"csrf": _csrf(form), "reason": "kontrola", "format": "pdf"}
    )
    assert response.status_code == 200
    assert response.content.startswith(b"%PDF-")


async def test_page_downloads_the_csv(client: httpx.AsyncClient, org: dict[str, Any]) -> None:
    form = await client.get(PAGE)
    response = await client.post(
        PAGE, data={"csrf": _csrf(form), "reason": "kontrola", "format": "csv"}
    )
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment;")
    header, *rows = _parse(response)
    assert header[0] == "Organizace"
    assert len(rows) == 2


async def test_page_needs_the_csrf_token(client: httpx.AsyncClient, org: dict[str, Any]) -> None:
    response = await client.post(PAGE, data={"csrf": "forged", "reason": "audit"})
    assert response.status_code == 403


async def test_page_refuses_another_organisation(
    client: httpx.AsyncClient, org: dict[str, Any]
) -> None:
    other = await register(client)
    form = await client.get(PAGE)
    response = await client.post(
        PAGE, data={"csrf": _csrf(form), "reason": "audit", "organisation": other["slug"]}
    )
    assert response.status_code == 404
