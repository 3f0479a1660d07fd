"""Whistleblower intake through the JSON API and the pages, on SQLite and PostgreSQL."""

import re
import time
from datetime import date, datetime

import httpx
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import crypto
from app.config import Settings
from app.main import create_app
from app.models import Organisation, OutboxMail, Report
from app.models.base import utcnow
from app.routers.intake import _form_token
from app.services import deadlines, mail
from tests.factories import register, submit, verified_organisation
from tests.test_privacy import dump_database

Sessionmaker = async_sessionmaker[AsyncSession]
DESCRIPTION = "The director approved invoices for work never done."


@pytest.fixture
async def organisation(client: httpx.AsyncClient, sessionmaker: Sessionmaker) -> dict[str, str]:
    return await verified_organisation(client, sessionmaker)


async def test_submission_answers_a_tracking_code_link_and_date(
    client: httpx.AsyncClient, organisation: dict[str, str]
) -> None:
    response = await client.post(
        f"/api/v1/public/{organisation['slug']}/reports", json={"description": DESCRIPTION}
    )

    assert response.status_code == 201
    body = response.json()
    code = body["tracking_code"]
    normalised = crypto.normalise_tracking_code(code)
    assert normalised is not None
    assert len(normalised) * 5 >= 128  # bits of secret
    assert re.fullmatch(r"([2-9A-Z]{4}-)+[2-9A-Z]{1,4}", code)
    assert body["tracking_url"] == f"http://testserver/track#{code}"
    assert body["received_at"]


async def test_the_code_opens_the_case_with_its_deadlines(
    client: httpx.AsyncClient, organisation: dict[str, str]
) -> None:
    submitted = await submit(client, organisation["slug"], category="tax", location="Brno")
    code = submitted["tracking_code"]

    response = await client.get(
        "/api/v1/public/reports/self", headers={"X-Tracking-Code": code.lower().replace("-", " ")}
    )

    assert response.status_code == 200
    view = response.json()
    assert view["report"]["description"] == DESCRIPTION
    assert view["report"]["location"] == "Brno"
    assert view["status"] == "received"
    received = deadlines.local_date(datetime.fromisoformat(view["received_at"]))
    assert view["acknowledgement_due_on"] == str(deadlines.deadline(received, 7).due_on)
    assert view["assessment_due_on"] == str(deadlines.deadline(received, 30).due_on)
    assert view["messages"] == []


async def test_no_acknowledgement_means_no_acknowledgement_deadline(
    client: httpx.AsyncClient, organisation: dict[str, str]
) -> None:
    submitted = await submit(client, organisation["slug"], no_acknowledgement=True)
    view = (
        await client.get(
            "/api/v1/public/reports/self", headers={"X-Tracking-Code": submitted["tracking_code"]}
        )
    ).json()
    assert view["acknowledgement_due_on"] is None
    assert view["report"]["no_acknowledgement"] is True


async def test_wrong_codes_get_one_answer_whatever_they_resemble(
    client: httpx.AsyncClient, organisation: dict[str, str]
) -> None:
    code = (await submit(client, organisation["slug"]))["tracking_code"]
    normalised = crypto.normalise_tracking_code(code)
    assert normalised is not None
    half = len(normalised) // 2
    same_first_half = (
        normalised[:half] + ("2" if normalised[half] != "2" else "3") + normalised[half + 1 :]
    )
    answers = []
    for wrong in (same_first_half, crypto.new_tracking_code(), "garbage", ""):
        response = await client.get(
            "/api/v1/public/reports/self", headers={"X-Tracking-Code": wrong}
        )
        answers.append((response.status_code, response.json()))
    assert all(answer == answers[0] for answer in answers)
    assert answers[0][0] == 404


async def test_whistleblower_writes_and_reads_the_thread(
    client: httpx.AsyncClient, organisation: dict[str, str]
) -> None:
    code = (await submit(client, organisation["slug"]))["tracking_code"]
    response = await client.post(
        "/api/v1/public/reports/self/messages",
        json={"body": "One more detail: the invoices are from March."},
        headers={"X-Tracking-Code": code},
    )
    assert response.status_code == 201
    messages = response.json()["messages"]
    assert [m["body"] for m in messages] == ["One more detail: the invoices are from March."]
    assert messages[0]["author"] == "whistleblower"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"description": ""}, "description"),
        ({"description": "x" * 20001}, "description"),
        ({"description": "ok", "category": "aliens"}, "category"),
        ({"description": "ok", "email": "not-mail"}, "email"),
        ({"description": "ok", "name": "n" * 201, "anonymous": False}, "name"),
        ({"description": "ok", "unknown": 1}, "unknown"),
        ({"description": "ok", "birth_date": "31. 2. 1990"}, "birth_date"),
    ],
)
async def test_bad_reports_get_422_naming_the_field(
    client: httpx.AsyncClient, organisation: dict[str, str], fields: dict[str, object], field: str
) -> None:
    response = await client.post(f"/api/v1/public/{organisation['slug']}/reports", json=fields)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


async def test_oversized_json_is_413(
    client: httpx.AsyncClient, organisation: dict[str, str]
) -> None:
    response = await client.post(
        f"/api/v1/public/{organisation['slug']}/reports",
        content=b'{"description": "' + b"x" * 300_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


async def test_unknown_slug_is_404_and_unverified_is_409(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    response = await client.post("/api/v1/public/nobody/reports", json={"description": "x"})
    assert response.status_code == 404
    unverified = await register(client)
    response = await client.post(
        f"/api/v1/public/{unverified['slug']}/reports", json={"description": "x"}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "organisation_not_verified"


async def test_blocked_organisation_refuses_reports(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, organisation: dict[str, str]
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Organisation)
            .where(Organisation.slug == organisation["slug"])
            .values(blocked_at=utcnow())
        )
    response = await client.post(
        f"/api/v1/public/{organisation['slug']}/reports", json={"description": "x"}
    )
    assert response.status_code == 409
    page = await client.get(f"/{organisation['slug']}?lang=en")
    assert page.status_code == 409
    assert "suspended" in page.text


async def test_anonymous_report_refused_where_not_accepted(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, organisation: dict[str, str]
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Organisation)
            .where(Organisation.slug == organisation["slug"])
            .values(accepts_anonymous=False, only_own_people=True)
        )
    url = f"/api/v1/public/{organisation['slug']}/reports"
    anonymous = await client.post(url, json={"description": "x", "relationship": "employee"})
    assert anonymous.status_code == 422
    assert anonymous.json()["error"]["field"] == "anonymous"
    outsider = await client.post(
        url, json={"description": "x", "anonymous": False, "name": "Jana", "relationship": "other"}
    )
    assert outsider.status_code == 422
    assert outsider.json()["error"]["field"] == "relationship"
    employee = await client.post(
        url,
        json={"description": "x", "anonymous": False, "name": "Jana", "relationship": "employee"},
    )
    assert employee.status_code == 201


async def test_anonymous_report_drops_identity_fields(
    client: httpx.AsyncClient, organisation: dict[str, str]
) -> None:
    code = (await submit(client, organisation["slug"], anonymous=True, name="Jan Novák"))[
        "tracking_code"
    ]
    view = (
        await client.get("/api/v1/public/reports/self", headers={"X-Tracking-Code": code})
    ).json()
    assert view["report"]["name"] is None


async def test_organisation_is_told_and_whistleblower_gets_a_receipt_without_content(
    sessionmaker: Sessionmaker,
    settings: Settings,
    organisation: dict[str, str],
    smtp_server: object,
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(OutboxMail))
    smtp_settings = settings.model_copy(update={"smtp_port": smtp_server.port})  # type: ignore[attr-defined]
    # The receipt goes from the web process itself, with its SMTP settings.
    app = create_app(smtp_settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        submitted = await submit(client, organisation["slug"], email="whistle@example.org")
    await app.state.engine.dispose()
    assert await mail.deliver_due(sessionmaker, smtp_settings) == 1  # the organisation's notice
    await smtp_server.wait_for(2)  # type: ignore[attr-defined]
    by_recipient = {m["To"]: m for m in smtp_server.messages}  # type: ignore[attr-defined]
    to_organisation = by_recipient[organisation["email"]].get_body(("plain",)).get_content()
    receipt = by_recipient["whistle@example.org"].get_body(("plain",)).get_content()
    assert DESCRIPTION not in to_organisation
    assert submitted["tracking_code"] not in to_organisation
    assert "http://testserver/login" in to_organisation
    assert submitted["tracking_url"] in receipt
    assert DESCRIPTION not in receipt


async def test_submissions_are_rate_limited_per_address(
    client: httpx.AsyncClient, settings: Settings, organisation: dict[str, str]
) -> None:
    url = f"/api/v1/public/{organisation['slug']}/reports"
    for _ in range(settings.submissions_per_hour):
        assert (await client.post(url, json={"description": "x"})).status_code == 201
    limited = await client.post(url, json={"description": "x"})
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0


async def test_code_lookups_are_rate_limited(
    client: httpx.AsyncClient, settings: Settings, organisation: dict[str, str]
) -> None:
    for _ in range(settings.lookups_per_10_minutes):
        response = await client.get(
            "/api/v1/public/reports/self", headers={"X-Tracking-Code": crypto.new_tracking_code()}
        )
        assert response.status_code == 404
    response = await client.get(
        "/api/v1/public/reports/self", headers={"X-Tracking-Code": crypto.new_tracking_code()}
    )
    assert response.status_code == 429


async def test_database_holds_no_code_and_no_report_text(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, organisation: dict[str, str]
) -> None:
    secret_texts = [
        "Invoices 4711 signed by Ing. Petr Dvořák",
        "Jan Novák",
        "whistle@example.org",
        "Sokolská 12, Brno",
        "+420 777 123 456",
        "Second message: payments in cash",
    ]
    submitted = await submit(
        client,
        organisation["slug"],
        description=secret_texts[0],
        anonymous=False,
        name=secret_texts[1],
        email=secret_texts[2],
        contact_address=secret_texts[3],
        phone=secret_texts[4],
        birth_date="1980-02-29",
    )
    code = submitted["tracking_code"]
    await client.post(
        "/api/v1/public/reports/self/messages",
        json={"body": secret_texts[5]},
        headers={"X-Tracking-Code": code},
    )
    dump = await dump_database(sessionmaker)
    for text in [*secret_texts, code, code.replace("-", ""), "1980-02-29"]:
        assert text.encode() not in dump, text


async def test_form_page_is_czech_and_framable_only_by_allowed_origins(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, organisation: dict[str, str]
) -> None:
    page = await client.get(f"/{organisation['slug']}")
    assert page.status_code == 200
    assert "Co se stalo?" in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "set-cookie" not in page.headers
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Organisation)
            .where(Organisation.slug == organisation["slug"])
            .values(embed_origins="https://www.firma.cz\nhttps://intranet.firma.cz")
        )
    page = await client.get(f"/{organisation['slug']}")
    assert (
        "frame-ancestors https://www.firma.cz https://intranet.firma.cz"
        in page.headers["content-security-policy"]
    )


def _form_fields(settings: Settings, **fields: str) -> dict[str, str]:
    return {"started": _form_token(settings, int(time.time()) - 10), "website": "", **fields}


async def test_html_form_submission_shows_the_receipt(
    client: httpx.AsyncClient, settings: Settings, organisation: dict[str, str]
) -> None:
    response = await client.post(
        f"/{organisation['slug']}?lang=en",
        data=_form_fields(
            settings, description=DESCRIPTION, anonymous="true", meeting_requested="on"
        ),
        files={"files": ("", b"", "application/octet-stream")},
    )
    assert response.status_code == 201, response.text
    code = re.search(r'id="tracking-code">([^<]+)<', response.text)
    assert code is not None
    assert "cannot be recovered" in response.text
    assert date.today().strftime("%Y") in response.text
    case = await client.post("/track?lang=en", data={"code": code.group(1)})
    assert case.status_code == 200
    assert DESCRIPTION in case.text
    assert case.headers["cache-control"] == "no-store"
    assert case.headers["referrer-policy"] == "no-referrer"


async def test_html_form_refuses_bots(
    client: httpx.AsyncClient,
    settings: Settings,
    sessionmaker: Sessionmaker,
    organisation: dict[str, str],
) -> None:
    url = f"/{organisation['slug']}"
    honeypot = await client.post(
        url, data=_form_fields(settings, description="x", website="http://spam")
    )
    too_fast = await client.post(
        url, data={"started": _form_token(settings, int(time.time())), "description": "x"}
    )
    forged = await client.post(
        url, data={"started": f"{int(time.time()) - 60}.bad", "description": "x"}
    )
    assert honeypot.status_code == too_fast.status_code == forged.status_code == 422
    async with sessionmaker() as session:
        assert await session.scalar(select(Report)) is None


async def test_html_form_keeps_input_and_marks_errors(
    client: httpx.AsyncClient, settings: Settings, organisation: dict[str, str]
) -> None:
    response = await client.post(
        f"/{organisation['slug']}?lang=en",
        data=_form_fields(settings, description="", location="Brno-střed", email="bad"),
    )
    assert response.status_code == 422
    assert "Brno-střed" in response.text
    assert "Describe what happened" in response.text
    assert "Enter a valid e-mail address" in response.text


async def test_tracking_link_and_message_form(
    client: httpx.AsyncClient, organisation: dict[str, str]
) -> None:
    code = (await submit(client, organisation["slug"]))["tracking_code"]
    page = await client.post("/track?lang=en", data={"code": code})
    assert page.status_code == 200
    assert "No messages yet." in page.text
    sent = await client.post(
        "/track/messages?lang=en",
        data={"code": code, "body": "A follow-up from the page."},
        files={"files": ("", b"", "application/octet-stream")},
    )
    assert sent.status_code == 200
    assert "Message sent." in sent.text
    assert "A follow-up from the page." in sent.text
    wrong = await client.post("/track?lang=en", data={"code": "WRONG-CODE"})
    assert wrong.status_code == 404
    assert "No report matches this tracking code" in wrong.text


async def test_nothing_identifying_reaches_the_logs(
    client: httpx.AsyncClient, organisation: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    submitted = await submit(client, organisation["slug"], email="whistle@example.org")
    code = submitted["tracking_code"]
    await client.get(f"/track/{code}")
    await client.post("/track", data={"code": code})
    await client.get("/api/v1/public/reports/self", headers={"X-Tracking-Code": code})
    # Everything the service and its libraries logged (the test's own HTTP client excluded).
    server = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    logged = "".join(f"{r.getMessage()} {r.args}" for r in server)
    for secret in (code, code.replace("-", ""), "127.0.0.1", "whistle@example.org", "python-httpx"):
        assert secret not in logged


async def test_receipt_page_offers_no_link_that_loses_the_code(
    client: httpx.AsyncClient, settings: Settings, organisation: dict[str, str]
) -> None:
    response = await client.post(
        f"/{organisation['slug']}", data=_form_fields(settings, description=DESCRIPTION)
    )
    assert response.status_code == 201
    assert 'class="lang"' not in response.text


async def test_html_form_of_a_blocked_organisation_takes_no_report(
    client: httpx.AsyncClient,
    settings: Settings,
    sessionmaker: Sessionmaker,
    organisation: dict[str, str],
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Organisation)
            .where(Organisation.slug == organisation["slug"])
            .values(blocked_at=utcnow(), blocked_reason="False company data")
        )
    url = f"/{organisation['slug']}"
    page = await client.get(url)
    assert page.status_code == 409
    assert "Oznamovací systém této organizace je pozastaven" in page.text
    assert "Ministerstva spravedlnosti" in page.text
    assert 'name="description"' not in page.text
    # The operator's reason is for the organisation, not for the public.
    assert "False company data" not in page.text

    sent = await client.post(
        f"{url}?lang=en",
        data=_form_fields(settings, description=DESCRIPTION, anonymous="true"),
        files={"files": ("", b"", "application/octet-stream")},
    )
    assert sent.status_code == 409
    assert "reporting channel is suspended" in sent.text
    assert "Ministry of Justice" in sent.text
    assert 'id="tracking-code"' not in sent.text
    async with sessionmaker() as session:
        assert await session.scalar(select(Report)) is None


async def test_after_an_error_the_form_says_attached_files_must_be_attached_again(
    client: httpx.AsyncClient, settings: Settings, organisation: dict[str, str]
) -> None:
    response = await client.post(
        f"/{organisation['slug']}?lang=en",
        data=_form_fields(settings, description=""),
        files={"files": ("invoice.txt", b"Invoice 4711", "text/plain")},
    )
    assert response.status_code == 422
    assert "The files you attached were not kept: attach them again" in response.text
    without_files = await client.post(
        f"/{organisation['slug']}?lang=en", data=_form_fields(settings, description="")
    )
    assert "attach them again" not in without_files.text


async def test_the_submission_limit_counts_accepted_reports_not_refused_forms(
    client: httpx.AsyncClient, settings: Settings, organisation: dict[str, str]
) -> None:
    url = f"/{organisation['slug']}?lang=en"
    for _ in range(settings.submissions_per_hour + 2):
        refused = await client.post(url, data=_form_fields(settings, description=""))
        assert refused.status_code == 422
    for _ in range(settings.submissions_per_hour):
        accepted = await client.post(url, data=_form_fields(settings, description=DESCRIPTION))
        assert accepted.status_code == 201
    limited = await client.post(url, data=_form_fields(settings, description="One more case."))
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert "Too many reports were sent from your connection" in limited.text
    # The answer is the organisation's form again, with what was written.
    assert f'action="/{organisation["slug"]}?lang=en"' in limited.text
    assert "One more case." in limited.text


async def test_a_form_caught_as_a_bot_also_names_the_real_field_errors(
    client: httpx.AsyncClient, settings: Settings, organisation: dict[str, str]
) -> None:
    too_fast = await client.post(
        f"/{organisation['slug']}?lang=en",
        data={"started": _form_token(settings, int(time.time())), "description": "",
              "email": "not-mail"},
    )  # fmt: skip
    assert too_fast.status_code == 422
    assert "The form could not be sent. Wait a moment" in too_fast.text
    assert '<a href="#description">Describe what happened' in too_fast.text
    assert '<a href="#email">Enter a valid e-mail address' in too_fast.text
    honeypot = await client.post(
        f"/{organisation['slug']}?lang=en",
        data=_form_fields(settings, description="x", anonymous="false", website="http://spam"),
    )
    assert "The form could not be sent" in honeypot.text
    assert '<a href="#name">Give your name, or choose to stay anonymous.' in honeypot.text
