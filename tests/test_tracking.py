"""The whistleblower's way back: tracking links that keep the code out of requests, the tracking
page's state, outcome and deadlines, and an organisation's tracking pages inside its frame."""

import re
from datetime import datetime

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.main import create_app
from app.models import Organisation
from app.services import deadlines
from tests.factories import login, submit, verified_organisation
from tests.test_intake import _form_fields

Sessionmaker = async_sessionmaker[AsyncSession]
REASON = {"X-Access-Reason": "initial assessment"}
ORIGINS = "https://www.firma.cz\nhttps://intranet.firma.cz"


@pytest.fixture
async def organisation(client: httpx.AsyncClient, sessionmaker: Sessionmaker) -> dict[str, str]:
    return await verified_organisation(client, sessionmaker)


async def _case_for_its_designated_person(
    client: httpx.AsyncClient, organisation: dict[str, str], **fields: object
) -> dict[str, str]:
    """A report, and its designated person logged in on the same client, the case read."""
    code = (await submit(client, organisation["slug"], **fields))["tracking_code"]
    assert (await login(client, organisation["email"])).status_code == 200
    case_id = (await client.get("/api/v1/cases")).json()["items"][0]["id"]
    assert (await client.get(f"/api/v1/cases/{case_id}", headers=REASON)).status_code == 200
    return {"code": code, "id": case_id}


def _shown(page: httpx.Response, element_id: str) -> str | None:
    found = re.search(rf'id="{element_id}">([^<]*)<', page.text)
    return found.group(1).strip() if found else None


async def test_a_tracking_link_carries_the_code_only_in_its_fragment(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    organisation: dict[str, str],
    smtp_server: object,
) -> None:
    # The receipt goes from the web process itself, with its SMTP settings.
    smtp_settings = settings.model_copy(update={"smtp_port": smtp_server.port})  # type: ignore[attr-defined]
    app = create_app(smtp_settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as sender:
        submitted = await submit(sender, organisation["slug"], email="whistle@example.org")
    await app.state.engine.dispose()
    code = submitted["tracking_code"]
    assert submitted["tracking_url"] == f"http://testserver/track#{code}"

    receipt = await client.post(
        f"/{organisation['slug']}", data=_form_fields(settings, description="Cash for orders.")
    )
    page_code = re.search(r'id="tracking-code">([^<]+)<', receipt.text)
    assert page_code is not None
    link = f"http://testserver/{organisation['slug']}/track#{page_code.group(1)}"
    assert f'href="{link}"' in receipt.text

    await smtp_server.wait_for(1)  # type: ignore[attr-defined]
    (receipt_mail,) = [m for m in smtp_server.messages if m["To"] == "whistle@example.org"]  # type: ignore[attr-defined]
    text = receipt_mail.get_body(("plain",)).get_content()
    assert f"http://testserver/track#{code}" in text
    assert f"/{code}" not in text

    # What a browser or a mail client's preview requests for the link: no code, no case.
    opened = await client.get(submitted["tracking_url"])
    assert opened.request.url.raw_path == b"/track"  # the request line: no fragment
    assert "The director approved" not in opened.text


async def test_an_old_tracking_link_fills_the_form_and_opens_no_case(
    client: httpx.AsyncClient, organisation: dict[str, str]
) -> None:
    code = (await submit(client, organisation["slug"]))["tracking_code"]

    page = await client.get(f"/track/{code}?lang=en")

    assert page.status_code == 200
    assert "The director approved" not in page.text
    assert f'name="code" value="{code}"' in page.text
    assert 'action="/track?lang=en"' in page.text
    assert page.text.count(code) == 1  # not in a language link either
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    opened = await client.post("/track?lang=en", data={"code": code})
    assert "The director approved" in opened.text


async def test_the_tracking_page_names_the_state_and_outcome_in_the_readers_language(
    client: httpx.AsyncClient, organisation: dict[str, str]
) -> None:
    case = await _case_for_its_designated_person(client, organisation)
    await client.post(f"/api/v1/cases/{case['id']}/acknowledge", json={})
    decided = await client.post(f"/api/v1/cases/{case['id']}/decision", json={"outcome": "valid"})
    assert decided.status_code == 200

    english = await client.post("/track?lang=en", data={"code": case["code"]})
    czech = await client.post("/track", data={"code": case["code"]})

    assert _shown(english, "status") == "Assessed"
    assert (_shown(english, "outcome") or "").startswith("Valid")
    assert _shown(czech, "status") == "Posouzeno"
    assert (_shown(czech, "outcome") or "").startswith("Důvodné")
    # Decided: no deadline is still running.
    assert _shown(english, "assessment-due") is None


async def test_the_acknowledgement_deadline_is_gone_once_acknowledged(
    client: httpx.AsyncClient, organisation: dict[str, str]
) -> None:
    case = await _case_for_its_designated_person(client, organisation)
    before = await client.post("/track?lang=en", data={"code": case["code"]})
    assert _shown(before, "acknowledgement-due") is not None
    assert _shown(before, "status") == "Received"

    acknowledged = await client.post(f"/api/v1/cases/{case['id']}/acknowledge", json={})
    assert acknowledged.status_code == 200
    after = await client.post("/track?lang=en", data={"code": case["code"]})

    assert _shown(after, "status") == "Acknowledged"
    assert _shown(after, "acknowledgement-due") is None
    assert "Acknowledgement of receipt by" not in after.text
    assert _shown(after, "assessment-due") is not None


async def test_the_tracking_page_shows_the_extended_assessment_and_the_meeting_deadline(
    client: httpx.AsyncClient, organisation: dict[str, str]
) -> None:
    case = await _case_for_its_designated_person(client, organisation, meeting_requested=True)
    received = deadlines.local_date(
        datetime.fromisoformat(
            (await client.get(f"/api/v1/cases/{case['id']}")).json()["received_at"]
        )
    )
    extended = await client.post(
        f"/api/v1/cases/{case['id']}/extend", json={"reason": "Witnesses are on leave."}
    )
    assert extended.status_code == 200

    page = await client.post("/track?lang=en", data={"code": case["code"]})

    assessment = deadlines.deadline(received, 60).due_on.strftime("%d. %m. %Y")
    meeting = deadlines.deadline(received, 14).due_on.strftime("%d. %m. %Y")
    assert _shown(page, "assessment-due") == f"{assessment} (extended once)"
    assert _shown(page, "meeting-due") == meeting


async def test_the_form_the_information_page_and_the_home_page_lead_back_to_tracking(
    client: httpx.AsyncClient, organisation: dict[str, str]
) -> None:
    slug = organisation["slug"]
    for path, target in ((f"/{slug}", f"/{slug}/track"), (f"/{slug}/info", f"/{slug}/track"),
                         ("/", "/track")):  # fmt: skip
        page = await client.get(path)
        assert re.search(
            rf'<a href="{target}" id="track-link">Už jste oznamovali\? Zadejte kód<', page.text
        ), path
        assert (await client.get(target)).status_code == 200


async def test_an_organisations_tracking_pages_are_framed_where_its_form_is(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, organisation: dict[str, str]
) -> None:
    slug = organisation["slug"]
    code = (await submit(client, slug))["tracking_code"]
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Organisation).where(Organisation.slug == slug).values(embed_origins=ORIGINS)
        )
    allowed = "frame-ancestors https://www.firma.cz https://intranet.firma.cz"

    entry = await client.get(f"/{slug}/track")
    case = await client.post("/track", data={"code": code, "organisation": slug})
    wrong = await client.post("/track", data={"code": "WRONG-CODE", "organisation": slug})
    for page in (entry, case, wrong):
        assert allowed in page.headers["content-security-policy"]
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-store"
    assert case.status_code == 200
    assert wrong.status_code == 404
    assert 'name="organisation"' in entry.text
    # The service's own tracking page belongs to no organisation: nobody frames it.
    assert (
        "frame-ancestors 'none'" in (await client.get("/track")).headers["content-security-policy"]
    )
    # The information page is not framed: the form opens it in a new tab, keeping what was typed.
    form = await client.get(f"/{slug}")
    assert f'href="/{slug}/info" target="_blank" rel="noopener noreferrer"' in form.text


async def test_the_whistleblower_asks_for_a_meeting_on_the_tracking_page(
    client: httpx.AsyncClient, organisation: dict[str, str]
) -> None:
    code = (await submit(client, organisation["slug"]))["tracking_code"]
    page = await client.post("/track?lang=en", data={"code": code})
    assert 'id="ask-meeting"' in page.text
    asked = await client.post("/track/meeting?lang=en", data={"code": code})
    assert asked.status_code == 200
    assert "You asked for a personal meeting" in asked.text
    assert 'id="ask-meeting"' not in asked.text
    assert _shown(asked, "meeting-due") is not None
    again = await client.post("/track/meeting?lang=en", data={"code": code})
    assert again.status_code == 409
    wrong = await client.post("/track/meeting?lang=en", data={"code": "X" * 30})
    assert wrong.status_code == 404


async def test_the_whistleblower_comments_on_the_record_on_the_tracking_page(
    client: httpx.AsyncClient, organisation: dict[str, str]
) -> None:
    assert (await login(client, organisation["email"])).status_code == 200
    created = await client.post(
        f"/api/v1/cases?organisation={organisation['slug']}",
        json={"channel": "telephone", "description": "Written record of the call."},
    )
    assert created.status_code == 201, created.text
    code = created.json()["tracking_code"]
    client.cookies.clear()
    page = await client.post("/track?lang=en", data={"code": code})
    assert 'id="record"' in page.text
    stored = await client.post(
        "/track/record-comments?lang=en", data={"code": code, "body": "It began in May."}
    )
    assert stored.status_code == 200
    assert "Your comments on the record were stored." in stored.text
    assert "It began in May." in stored.text
    empty = await client.post("/track/record-comments?lang=en", data={"code": code, "body": ""})
    assert empty.status_code == 422
