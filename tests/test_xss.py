"""Hostile text in Chromium: markup in every field is shown as text and never runs.

The pages' Content-Security-Policy would stop an inline script even if escaping failed, so each
page is checked both ways: the payload did not run, and it is shown literally as text (which it
could not be had the browser parsed it as markup).
"""

import re
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pyotp
import pytest
from jinja2 import meta
from playwright.async_api import Browser, Page, expect
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.main import create_app
from app.models import Organisation
from app.models.base import utcnow
from app.services import mail, operator
from app.templating import environment, render_mail
from tests.factories import DESIGNATED_PERSONS, PASSWORD, login, register
from tests.smtp import SMTPServer

Sessionmaker = async_sessionmaker[AsyncSession]
SCRIPT = "<script>window.__pwned=1</script>"
IMG = "<img src=x onerror=window.__pwned=2>"
SVG = '"><svg onload=window.__pwned=3>'
PAYLOAD = f"{SCRIPT}{IMG}{SVG}"
MAIL_TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "mail"


def hostile(field: str) -> str:
    return f"{field} {PAYLOAD}"


@pytest.fixture
async def hostile_case(live_server: str, sessionmaker: Sessionmaker) -> dict[str, Any]:
    """An organisation, its settings, a report, messages and a note, all full of markup."""
    async with httpx.AsyncClient(base_url=live_server) as client:
        organisation = await register(client, name=hostile("Firma"))
        async with sessionmaker() as session, session.begin():
            await session.execute(
                update(Organisation)
                .where(Organisation.slug == organisation["slug"])
                .values(email_verified_at=utcnow(), info_designated_persons=hostile("persons"))
            )
        report = {
            "description": hostile("description"),
            "occurred_at": hostile("when"),
            "location": hostile("where"),
            "person_concerned": hostile("against"),
            "persons_involved": hostile("who"),
            "relationship": "employee",
            "anonymous": False,
            "name": hostile("name"),
            "contact_address": hostile("address"),
            "phone": IMG,
        }
        submitted = await client.post(f"/api/v1/public/{organisation['slug']}/reports", json=report)
        assert submitted.status_code == 201, submitted.text
        code = submitted.json()["tracking_code"]
        wrote = await client.post(
            "/api/v1/public/reports/self/messages",
            json={"body": hostile("whistleblower")},
            headers={"X-Tracking-Code": code},
        )
        assert wrote.status_code == 201
        assert (await login(client, organisation["email"])).status_code == 200
        settings = await client.put(
            f"/api/v1/organisations/{organisation['slug']}/settings",
            json={
                "accepts_anonymous": True,
                "only_own_people": False,
                "embed_origins": [],
                "info_how_to_report": hostile("how"),
                "info_designated_persons": hostile("persons"),
            },
        )
        assert settings.status_code == 200, settings.text
        case_id = (await client.get("/api/v1/cases")).json()["items"][0]["id"]
        headers = {"X-Access-Reason": "Reading the report"}
        assert (await client.get(f"/api/v1/cases/{case_id}", headers=headers)).status_code == 200
        for kind, status in (("messages", 201), ("notes", 201)):
            response = await client.post(
                f"/api/v1/cases/{case_id}/{kind}", json={"body": hostile(kind)}
            )
            assert response.status_code == status, response.text
    return {**organisation, "code": code, "case_id": case_id}


async def _assert_shown_as_text(page: Page, *texts: str) -> None:
    assert await page.evaluate("window.__pwned") is None
    shown = await page.evaluate("document.body.innerText")
    for text in texts:
        assert text in shown, text
    # No element came out of the payload's markup.
    assert await page.locator("img[src='x'], svg[onload]").count() == 0


async def test_the_whistleblowers_pages_show_markup_as_text(
    browser: Browser, live_server: str, hostile_case: dict[str, Any]
) -> None:
    page = await browser.new_page()
    slug = hostile_case["slug"]
    await page.goto(f"{live_server}/{slug}?lang=en")
    await _assert_shown_as_text(page, hostile("Firma"))

    await page.goto(f"{live_server}/{slug}/info?lang=en")
    await _assert_shown_as_text(page, hostile("how"), hostile("persons"))

    await page.goto(f"{live_server}/track/{hostile_case['code']}?lang=en")
    await _assert_shown_as_text(
        page,
        hostile("description"),
        hostile("where"),
        hostile("whistleblower"),
        hostile("messages"),
    )
    assert hostile("notes") not in await page.evaluate("document.body.innerText")

    # The receipt of a report written in the browser.
    await page.goto(f"{live_server}/{slug}?lang=en")
    await page.get_by_label("What happened?").fill(hostile("typed"))
    await page.get_by_role("button", name="Send the report").click()
    await expect(page.locator("#tracking-code")).to_be_visible()
    await _assert_shown_as_text(page, hostile("Firma"))
    await page.close()


async def test_the_designated_persons_pages_show_markup_as_text(
    browser: Browser, live_server: str, hostile_case: dict[str, Any]
) -> None:
    page = await browser.new_page()
    await page.goto(f"{live_server}/login?lang=en")
    await page.get_by_label("E-mail").fill(hostile_case["email"])
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in", exact=True).click()
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    await _assert_shown_as_text(page, hostile("Firma"))

    await page.goto(f"{live_server}/cases/{hostile_case['case_id']}?lang=en")
    reason = page.get_by_label("Reason of access")
    if await reason.count():
        await reason.fill("Reading the report")
        await page.get_by_role("button", name="Open the case").click()
    await expect(page.locator("#report > p.prewrap")).to_have_text(hostile("description"))
    await _assert_shown_as_text(
        page,
        hostile("description"),
        hostile("when"),
        hostile("against"),
        hostile("who"),
        hostile("name"),
        hostile("address"),
        IMG,
        hostile("whistleblower"),
        hostile("messages"),
        hostile("notes"),
    )
    await page.goto(f"{live_server}/organisations/{hostile_case['slug']}/settings?lang=en")
    assert await page.evaluate("window.__pwned") is None
    assert await page.get_by_label("How to report").input_value() == hostile("how")
    await page.close()


async def test_the_registration_page_shows_rejected_markup_as_text(
    browser: Browser, live_server: str
) -> None:
    page = await browser.new_page()
    await page.goto(f"{live_server}/register?lang=en")
    await page.get_by_label("Organisation name").fill(hostile("Firma"))
    await page.get_by_label("IČO (company number)").fill(
        "12345678"
    )  # a wrong check digit: the page comes back
    await page.get_by_role("button", name="Register", exact=True).click()
    await expect(page.get_by_label("Organisation name")).to_have_value(hostile("Firma"))
    assert await page.evaluate("window.__pwned") is None
    assert await page.locator("img[src='x'], svg[onload]").count() == 0
    await page.close()


async def test_mails_built_from_markup_are_plain_text_with_one_line_headers(
    settings: Settings, sessionmaker: Sessionmaker, smtp_server: SMTPServer
) -> None:
    served = settings.model_copy(update={"smtp_port": smtp_server.port})
    app = create_app(served)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        organisation = await register(client, name=hostile("Firma"))
        async with sessionmaker() as session, session.begin():
            await session.execute(
                update(Organisation).values(
                    email_verified_at=utcnow(), info_designated_persons=DESIGNATED_PERSONS
                )
            )
        response = await client.post(
            f"/api/v1/public/{organisation['slug']}/reports",
            json={"description": hostile("description"), "email": "wb@example.org"},
        )
        assert response.status_code == 201
    await app.state.engine.dispose()
    while await mail.deliver_due(sessionmaker, served):
        pass
    messages = await smtp_server.wait_for(3)
    for message in messages:
        assert message.get_content_type() == "text/plain"
        assert not message.is_multipart()
        assert "\n" not in str(message["Subject"])
        assert hostile("description") not in message.get_content()
    receipt = next(m for m in messages if m["To"] == "wb@example.org")
    assert hostile("Firma") in receipt.get_content()


async def _log_in(page: Page, live_server: str, email: str) -> None:
    await page.goto(f"{live_server}/login?lang=en")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in", exact=True).click()
    await expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


async def test_the_lists_registers_and_records_show_markup_as_text(
    browser: Browser, live_server: str, hostile_case: dict[str, Any]
) -> None:
    slug = hostile_case["slug"]
    async with httpx.AsyncClient(base_url=live_server) as client:
        assert (await login(client, hostile_case["email"])).status_code == 200
        opened = await client.get(
            f"/api/v1/cases/{hostile_case['case_id']}",
            headers={"X-Access-Reason": hostile("reason")},
        )
        assert opened.status_code == 200
        [me] = (await client.get(f"/api/v1/organisations/{slug}/members")).json()["items"]
        recorded = await client.put(
            f"/api/v1/organisations/{slug}/members/{me['member_id']}/appointment",
            json={"instruction_document": hostile("document")},
        )
        assert recorded.status_code == 204, recorded.text
    page = await browser.new_page()
    await _log_in(page, live_server, hostile_case["email"])

    await page.goto(f"{live_server}/cases?lang=en")
    await _assert_shown_as_text(page, hostile("Firma"))

    await page.goto(f"{live_server}/organisations/{slug}/audit?lang=en")
    await _assert_shown_as_text(page, hostile("Firma"), hostile("reason"))

    await page.goto(f"{live_server}/organisations/{slug}/statistics?lang=en")
    await _assert_shown_as_text(page, hostile("Firma"))

    await page.goto(f"{live_server}/organisations/{slug}/team?lang=en")
    await _assert_shown_as_text(page, hostile("Firma"))
    assert await page.locator("input[name='instruction_document']").input_value() == hostile(
        "document"
    )

    await page.goto(f"{live_server}/profile?lang=en")
    await _assert_shown_as_text(page, hostile_case["email"])

    await page.goto(f"{live_server}/register-of-reports?lang=en")
    await page.get_by_label("Reason for viewing the register").fill(hostile("register"))
    await page.get_by_role("button", name="Show the register").click()
    await expect(page.get_by_role("heading", name="Reports", exact=True)).to_be_visible()
    await _assert_shown_as_text(page, hostile("name"), hostile("address"), hostile("against"))
    reason = page.get_by_label("Reason for viewing the register")
    assert await reason.input_value() == hostile("register")
    await page.close()


async def test_the_invitation_page_and_the_operators_console_show_markup_as_text(
    browser: Browser,
    live_server: str,
    hostile_case: dict[str, Any],
    settings: Settings,
    sessionmaker: Sessionmaker,
    smtp_server: SMTPServer,
) -> None:
    async with httpx.AsyncClient(base_url=live_server) as client:
        assert (await login(client, hostile_case["email"])).status_code == 200
        invited = await client.post(
            f"/api/v1/organisations/{hostile_case['slug']}/members",
            json={"email": "invitee@example.org"},
        )
        assert invited.status_code == 202, invited.text
    mailing = settings.model_copy(update={"smtp_port": smtp_server.port, "public_url": live_server})
    while await mail.deliver_due(sessionmaker, mailing):
        pass
    messages = await smtp_server.wait_for(1)
    invitation = next(m for m in messages if m["To"] == "invitee@example.org")
    assert hostile("Firma") in invitation.get_content()  # the organisation's name, as text
    link = re.search(r"(/invite/\S+)", invitation.get_content())
    assert link is not None

    page = await browser.new_page()
    await page.goto(f"{live_server}{link.group(1)}?lang=en")
    await _assert_shown_as_text(page, "invitee@example.org")

    async with sessionmaker() as session, session.begin():
        created = await operator.create_operator(
            session, settings, "operator@example.org", "operator password 1"
        )
    await page.goto(f"{live_server}/operator/login?lang=en")
    await page.get_by_label("E-mail").fill("operator@example.org")
    await page.get_by_label("Password").fill("operator password 1")
    await page.get_by_label("Authenticator code").fill(pyotp.TOTP(created.totp_secret).now())
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{live_server}/operator**")
    await _assert_shown_as_text(page, hostile("Firma"))
    await page.close()


def _mail_context(name: str, kind: str) -> dict[str, Any]:
    """Every value a mail template asks for, full of markup (dates as real dates)."""
    source = environment.loader.get_source(environment, f"mail/{name}.txt")[0]  # type: ignore[union-attr]
    wanted = meta.find_undeclared_variables(environment.parse(source)) - {"_", "ngettext", "lang"}
    context: dict[str, Any] = {key: hostile(key) for key in wanted}
    if "organisation" in wanted:
        context["organisation"] = SimpleNamespace(name=hostile("Firma"), ico=hostile("ico"))
    if "received_on" in wanted:
        context["received_on"] = date(2026, 1, 2)
    if "kind" in wanted:
        context["kind"] = kind
    if "no_acknowledgement" in wanted:  # a flag: both of its texts across the kinds
        context["no_acknowledgement"] = kind == "acknowledgement"
    return context


@pytest.mark.parametrize("name", sorted(p.stem for p in MAIL_TEMPLATES.glob("*.txt")))
def test_every_mail_template_renders_markup_as_plain_text(name: str) -> None:
    shown: set[str] = set()
    for kind in ("acknowledgement", "assessment", "meeting"):
        context = _mail_context(name, kind)
        subject, body = render_mail(name, **context)
        assert "\n" not in subject
        # Plain text: markup comes out exactly as given, neither escaped nor dropped.
        assert "&lt;" not in subject + body
        assert "&#" not in subject + body
        assert "&gt;" not in subject + body
        shown |= {
            key
            for key, value in context.items()
            if isinstance(value, str) and value in subject + body
        }
        if "organisation" in context:
            assert hostile("Firma") in subject + body
    strings = {
        key for key, value in _mail_context(name, "meeting").items() if isinstance(value, str)
    }
    assert shown - {"kind"} == strings - {"kind"}
