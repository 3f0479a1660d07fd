"""The designated person's case pages: the list, the reason of access and each action's form."""

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.main import create_app
from app.models import AuditEvent, Report
from app.models.base import utcnow
from app.services import deadlines
from tests.factories import access_reasons, login, register, submit, verified_organisation

Sessionmaker = async_sessionmaker[AsyncSession]
REASON = "initial assessment"


@pytest.fixture
async def case(client: httpx.AsyncClient, sessionmaker: Sessionmaker) -> dict[str, str]:
    """A verified organisation with one report, its designated person logged in."""
    organisation = await verified_organisation(client, sessionmaker)
    submitted = await submit(client, organisation["slug"], email="whistle@example.org")
    assert (await login(client, organisation["email"])).status_code == 200
    items = (await client.get("/api/v1/cases")).json()["items"]
    return {**organisation, "id": items[0]["id"], "code": submitted["tracking_code"]}


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


async def _open(client: httpx.AsyncClient, case_id: str) -> str:
    """Give the reason of access; the case page's HTML."""
    asked = await client.get(f"/cases/{case_id}?lang=en")
    opened = await client.post(
        f"/cases/{case_id}/open?lang=en", data={"csrf": _csrf(asked.text), "reason": REASON}
    )
    assert opened.status_code == 303
    page = await client.get(f"/cases/{case_id}?lang=en")
    assert page.status_code == 200
    return page.text


async def _act(
    client: httpx.AsyncClient, case_id: str, action: str, **fields: str
) -> httpx.Response:
    """Send one action's form with the token from the case page."""
    page = await client.get(f"/cases/{case_id}?lang=en")
    return await client.post(
        f"/cases/{case_id}/{action}?lang=en", data={"csrf": _csrf(page.text), **fields}
    )


async def _whistleblower_messages(client: httpx.AsyncClient, code: str) -> list[str]:
    view = await client.get("/api/v1/public/reports/self", headers={"X-Tracking-Code": code})
    assert view.status_code == 200
    return [m["body"] for m in view.json()["messages"]]


async def test_case_list_shows_the_case(client: httpx.AsyncClient, case: dict[str, str]) -> None:
    page = await client.get("/cases?lang=en")
    assert page.status_code == 200
    assert f'href="/cases/{case["id"]}?lang=en"' in page.text
    assert case["name"] in page.text
    assert "Web form" in page.text
    assert "Received" in page.text
    assert "days left" in page.text
    assert "Overdue" not in page.text


async def test_case_list_filters_by_status_without_javascript(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    page = await client.get(f"/cases?lang=en&organisation={case['slug']}&status=closed&outcome=")
    assert page.status_code == 200
    assert case["id"] not in page.text
    assert "No cases match the filter." in page.text
    assert '<option value="closed" selected>' in page.text


async def test_overdue_case_is_marked_and_listed_first(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, case: dict[str, str]
) -> None:
    await submit(client, case["slug"])
    async with sessionmaker() as session, session.begin():
        late = await session.scalar(select(Report).where(Report.reference_number == 2))
        assert late is not None
        await session.execute(
            update(Report)
            .where(Report.id == late.id)
            .values(assessment_due_on=late.assessment_due_on - timedelta(days=40))
        )
    page = (await client.get("/cases?lang=en")).text
    rows = re.findall(r'<tr class="case( overdue)?">\s*<td><a href="/cases/([^"?]+)', page)
    assert [(marked, case_id) for marked, case_id in rows][1] == ("", case["id"])
    assert rows[0][0] == " overdue"
    assert "Overdue" in page


async def test_dashboard_counts_cases_and_links_to_them(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    page = (await client.get("/dashboard?lang=en")).text
    assert "1 case" in page
    assert f"/cases?organisation={case['slug']}" in page


async def test_first_open_asks_for_the_reason_then_shows_the_case(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, case: dict[str, str]
) -> None:
    asked = await client.get(f"/cases/{case['id']}?lang=en")
    assert asked.status_code == 200
    assert "Reason of access" in asked.text
    assert "The director approved" not in asked.text

    page = await _open(client, case["id"])
    assert "The director approved invoices for work never done." in page
    assert "whistle@example.org" in page
    assert await access_reasons(sessionmaker, "case.read") == [REASON]


async def test_too_short_a_reason_is_refused_on_the_page(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    response = await _act(client, case["id"], "open", reason="x")
    assert response.status_code == 422
    assert "Write the reason for opening the case" in response.text
    assert "The director approved" not in response.text


async def test_acknowledgement_form_is_prefilled_and_reaches_the_whistleblower(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    page = await _open(client, case["id"])
    prefilled = re.search(r'<textarea id="acknowledgement"[^>]*>([^<]*)</textarea>', page)
    assert prefilled is not None
    assert "Potvrzujeme" in prefilled.group(1)
    assert "We confirm" in prefilled.group(1)

    response = await _act(client, case["id"], "acknowledge", message="Received, thank you.")
    assert response.status_code == 303
    assert response.headers["location"] == f"/cases/{case['id']}?done=acknowledged&lang=en"
    page = (await client.get(response.headers["location"])).text
    assert "Receipt acknowledged" in page
    assert 'id="case-status">Acknowledged' in page
    assert await _whistleblower_messages(client, case["code"]) == ["Received, thank you."]


async def test_acknowledgement_can_be_waived_for_a_statutory_reason(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    await _open(client, case["id"])
    response = await _act(client, case["id"], "acknowledge", waive="would_reveal_identity")
    assert response.status_code == 303
    page = (await client.get(response.headers["location"])).text
    assert "Waived: An acknowledgement would reveal the whistleblower's identity" in page
    assert await _whistleblower_messages(client, case["code"]) == []


async def test_extension_tells_the_whistleblower_the_reason(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    await _open(client, case["id"])
    response = await _act(client, case["id"], "extend", reason="Witnesses are on leave.")
    assert response.status_code == 303
    page = (await client.get(response.headers["location"])).text
    assert "The deadline was extended" in page
    assert 'id="extensions">1 of 2' in page
    messages = await _whistleblower_messages(client, case["code"])
    assert "Witnesses are on leave." in messages[0]


async def test_extension_needs_a_reason(client: httpx.AsyncClient, case: dict[str, str]) -> None:
    await _open(client, case["id"])
    response = await _act(client, case["id"], "extend", reason="  ")
    assert response.status_code == 422
    assert "Write the reason for the extension" in response.text


async def test_third_extension_shows_the_error_on_the_page(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    await _open(client, case["id"])
    for _ in range(2):
        assert (await _act(client, case["id"], "extend", reason="Complex.")).status_code == 303
    page = (await client.get(f"/cases/{case['id']}?lang=en")).text
    assert 'id="extend-reason"' not in page  # no form for what the Act does not allow

    third = await _act(client, case["id"], "extend", reason="Even more complex.")
    assert third.status_code == 409
    assert 'role="alert">The deadline was already extended twice' in third.text
    assert 'id="extensions">2 of 2' in third.text
    assert len(await _whistleblower_messages(client, case["code"])) == 2


async def test_not_valid_decision_tells_the_whistleblower_about_the_external_channel(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    await _open(client, case["id"])
    await _act(client, case["id"], "acknowledge", waive="would_reveal_identity")
    page = (await client.get(f"/cases/{case['id']}?lang=en")).text
    assert "the statutory instruction is appended" in page
    response = await _act(client, case["id"], "decision", outcome="not_valid", message="")
    assert response.status_code == 303
    page = (await client.get(response.headers["location"])).text
    assert 'id="case-outcome">Not valid' in page
    assert 'id="decision-message"' not in page  # decided: no second decision
    [message] = await _whistleblower_messages(client, case["code"])
    assert "not valid" in message
    assert "https://oznamovatel.justice.cz/" in message
    assert "Ministry of Justice" in message


async def test_the_decision_form_waits_for_the_acknowledgement(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    page = await _open(client, case["id"])
    assert 'id="acknowledgement-first"' in page
    assert 'id="decision-message"' not in page
    assert (await _act(client, case["id"], "acknowledge")).status_code == 303
    page = (await client.get(f"/cases/{case['id']}")).text
    assert 'id="acknowledgement-first"' not in page
    assert 'id="decision-message"' in page


async def test_decision_needs_an_outcome(client: httpx.AsyncClient, case: dict[str, str]) -> None:
    await _open(client, case["id"])
    response = await _act(client, case["id"], "decision", outcome="maybe")
    assert response.status_code == 422
    assert "Choose the outcome" in response.text


async def test_measures_then_closing_after_a_valid_report(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    await _open(client, case["id"])
    assert (await _act(client, case["id"], "acknowledge")).status_code == 303
    assert (await _act(client, case["id"], "decision", outcome="valid")).status_code == 303
    proposed = await _act(
        client, case["id"], "measures", kind="proposed", body="Stop paying the supplier."
    )
    assert proposed.status_code == 303
    measures = await _act(
        client,
        case["id"],
        "measures",
        kind="taken",
        body="The invoices were stopped.",
        tell_whistleblower="yes",
    )
    assert measures.status_code == 303
    page = (await client.get(measures.headers["location"])).text
    assert "Measures proposed by the designated person" in page
    assert "Stop paying the supplier." in page
    closed = await _act(client, case["id"], "close")
    assert closed.status_code == 303
    page = (await client.get(closed.headers["location"])).text
    assert "The case is closed." in page
    assert 'id="case-status">Closed' in page
    messages = await _whistleblower_messages(client, case["code"])
    assert messages[-1] == "The invoices were stopped."


async def test_measures_before_a_decision_show_the_conflict(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    await _open(client, case["id"])
    response = await _act(client, case["id"], "measures", body="Too early.")
    assert response.status_code == 409
    assert "Measures follow only a valid report." in response.text


async def test_note_is_not_visible_to_the_whistleblower(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    await _open(client, case["id"])
    response = await _act(client, case["id"], "notes", body="Check with the auditor first.")
    assert response.status_code == 303
    page = (await client.get(response.headers["location"])).text
    assert "Check with the auditor first." in page
    view = await client.get(
        "/api/v1/public/reports/self", headers={"X-Tracking-Code": case["code"]}
    )
    assert "Check with the auditor" not in view.text
    assert view.json()["messages"] == []


async def test_message_with_a_file_and_its_download(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, case: dict[str, str]
) -> None:
    page = await _open(client, case["id"])
    response = await client.post(
        f"/cases/{case['id']}/messages?lang=en",
        data={"csrf": _csrf(page), "body": "The contract is attached."},
        files=[("files", ("contract.txt", b"contract text", "text/plain"))],
    )
    assert response.status_code == 303
    page = (await client.get(response.headers["location"])).text
    assert "Message sent to the whistleblower." in page
    link = re.search(rf'href="(/cases/{case["id"]}/files/[^"?]+)', page)
    assert link is not None
    download = await client.get(link.group(1))
    assert download.status_code == 200
    assert download.content == b"contract text"
    assert "attachment" in download.headers["content-disposition"]
    assert await _whistleblower_messages(client, case["code"]) == ["The contract is attached."]
    async with sessionmaker() as session:
        actions = list(await session.scalars(select(AuditEvent.action)))
    assert "case.file" in actions


async def test_file_download_needs_the_reason_first(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    response = await client.get(f"/cases/{case['id']}/files/{case['id']}?lang=en")
    assert response.status_code == 303
    assert response.headers["location"] == f"/cases/{case['id']}?lang=en"


async def test_unknown_file_is_not_found(client: httpx.AsyncClient, case: dict[str, str]) -> None:
    await _open(client, case["id"])
    assert (await client.get(f"/cases/{case['id']}/files/{case['id']}")).status_code == 404
    assert (await client.get(f"/cases/{case['id']}/files/nonsense")).status_code == 404


@pytest.fixture
async def small_files_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"max_file_bytes": 8}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await app.state.engine.dispose()


async def test_refused_file_leaves_no_half_sent_message(
    client: httpx.AsyncClient, small_files_client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    assert (await login(small_files_client, case["email"])).status_code == 200
    page = await _open(small_files_client, case["id"])
    response = await small_files_client.post(
        f"/cases/{case['id']}/messages?lang=en",
        data={"csrf": _csrf(page), "body": "Half of this must not arrive."},
        files=[("files", ("big.txt", b"more than eight bytes", "text/plain"))],
    )
    assert response.status_code == 413
    assert 'role="alert"' in response.text
    assert "The director approved" in response.text  # the case page, with the error
    assert await _whistleblower_messages(client, case["code"]) == []


async def test_forms_need_the_csrf_token(client: httpx.AsyncClient, case: dict[str, str]) -> None:
    await _open(client, case["id"])
    for action in ("notes", "messages"):
        response = await client.post(f"/cases/{case['id']}/{action}", data={"body": "Forged."})
        assert response.status_code == 403
    assert await _whistleblower_messages(client, case["code"]) == []


async def test_another_organisations_case_is_not_found(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    other = await register(client)
    assert (await login(client, other["email"])).status_code == 200
    assert (await client.get(f"/cases/{case['id']}")).status_code == 404
    listing = await client.get("/cases")
    assert case["id"] not in listing.text
    page = await client.get("/dashboard")
    note = await client.post(
        f"/cases/{case['id']}/notes", data={"csrf": _csrf(page.text), "body": "Peeking."}
    )
    assert note.status_code == 404
    download = await client.get(f"/cases/{case['id']}/files/{case['id']}")
    assert download.status_code == 404
    assert (await client.get("/cases?organisation=" + case["slug"])).status_code == 404


async def test_not_logged_in_goes_to_the_login(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    client.cookies.clear()
    for path in ("/cases?lang=en", f"/cases/{case['id']}?lang=en"):
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == "/login?lang=en"
    posted = await client.post(f"/cases/{case['id']}/notes", data={"body": "Anonymous."})
    assert posted.status_code == 303
    assert posted.headers["location"] == "/login"


async def test_shifted_deadline_shows_the_safe_target(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, case: dict[str, str]
) -> None:
    async with sessionmaker() as session:
        report = await session.scalar(select(Report))
        assert report is not None
        received = deadlines.local_date(report.received_at)
    page = await _open(client, case["id"])
    due = deadlines.deadline(received, 30)
    assert due.due_on.strftime("%d. %m. %Y") in page
    if due.shifted:
        assert f"Aim for {due.unshifted_on.strftime('%d. %m. %Y')}" in page
    else:
        assert "Aim for" not in page


async def test_pages_are_in_czech_by_default(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    asked = await client.get(f"/cases/{case['id']}")
    assert "Důvod přístupu" in asked.text
    await _open(client, case["id"])
    page = (await client.get(f"/cases/{case['id']}")).text
    assert "Posouzení důvodnosti" in page
    assert "Interní poznámky" in page
    listing = (await client.get("/cases")).text
    assert "zbývá" in listing or "zbývají" in listing
    assert "1 případ" in (await client.get("/dashboard")).text


async def _record(client: httpx.AsyncClient, slug: str, **fields: str) -> httpx.Response:
    """Send the form for a report received another way, with the token from its page."""
    form = await client.get(f"/cases/new?organisation={slug}&lang=en")
    assert form.status_code == 200
    return await client.post(
        f"/cases/new?organisation={slug}&lang=en",
        data={"csrf": _csrf(form.text), **fields},
        # The written record as a file: a recording would need the whistleblower's consent.
        files=[("files", ("record.txt", b"Signed written record.", "text/plain"))],
    )


async def test_case_list_links_to_the_form_for_a_report_received_another_way(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    page = (await client.get("/cases?lang=en")).text
    assert f'href="/cases/new?organisation={case["slug"]}&amp;lang=en"' in page
    form = await client.get(f"/cases/new?organisation={case['slug']}&lang=en")
    assert 'name="recording_consent"' in form.text
    assert '<option value="telephone" selected>Telephone</option>' in form.text


async def test_recorded_report_opens_a_case_and_shows_the_tracking_code_once(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    response = await _record(
        client,
        case["slug"],
        channel="in_person",
        received_on=deadlines.local_date(utcnow()).isoformat(),
        recording_consent="false",
        description="Written record of the meeting: overtime is not paid.",
        anonymous="true",
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    code = re.search(r'id="tracking-code">([^<]+)<', response.text)
    assert code is not None
    assert f"/track#{code.group(1)}" in response.text
    assert "-0002" in response.text
    link = re.search(r'href="(/cases/[^"?]+)\?lang=en" id="case-link"', response.text)
    assert link is not None

    view = await client.get(
        "/api/v1/public/reports/self", headers={"X-Tracking-Code": code.group(1)}
    )
    assert view.json()["report"]["description"].startswith("Written record of the meeting")
    case_id = link.group(1).rsplit("/", 1)[1]
    page = await _open(client, case_id)
    assert 'id="record-consent">Not given: a written record only' in page
    assert "In person" in page
    assert "record.txt" in page
    assert "Recorded a report received in another way" in page  # the timeline


async def test_recorded_report_without_a_record_keeps_the_values(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    response = await _record(
        client, case["slug"], channel="post", description=" ", location="Brno warehouse"
    )
    assert response.status_code == 422
    assert "Write the record or the summary of the report" in response.text
    assert 'value="Brno warehouse"' in response.text
    assert '<option value="post" selected>' in response.text
    assert len((await client.get("/api/v1/cases")).json()["items"]) == 1


async def test_recorded_report_of_another_organisation_is_not_found(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    other = await register(client)
    assert (await login(client, other["email"])).status_code == 200
    assert (await client.get(f"/cases/new?organisation={case['slug']}")).status_code == 404


async def _recorded_case(client: httpx.AsyncClient, slug: str) -> str:
    created = await client.post(
        f"/api/v1/cases?organisation={slug}",
        json={"channel": "telephone", "description": "Record of the call.", "anonymous": True},
    )
    assert created.status_code == 201, created.text
    case_id: str = created.json()["id"]
    return case_id


async def test_whistleblowers_comments_on_the_record_are_stored(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    case_id = await _recorded_case(client, case["slug"])
    await _open(client, case_id)
    response = await _act(client, case_id, "record-comments", body="Add that it began in May.")
    assert response.status_code == 303
    page = (await client.get(response.headers["location"])).text
    assert "The whistleblower's comments on the record were stored." in page
    assert 'id="record-comments"' in page
    assert "Add that it began in May." in page
    assert "Written down by a designated person" in page
    assert "Stored the whistleblower's comments on the record" in page


async def test_web_report_has_no_record_to_comment_on(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    page = await _open(client, case["id"])
    assert 'id="record"' not in page
    response = await _act(client, case["id"], "record-comments", body="Nothing to comment.")
    assert response.status_code == 409
    assert "This case was not taken down from an oral report." in response.text


async def test_identity_revealed_later_is_recorded_on_the_page(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    page = await _open(client, case["id"])
    assert 'id="identity"' in page
    response = await _act(
        client,
        case["id"],
        "identity",
        name="Jana Dvořáková",
        birth_date="1985-04-03",
        contact_address="Lidická 1, Brno",
    )
    assert response.status_code == 303
    page = (await client.get(response.headers["location"])).text
    assert "The whistleblower's identity was recorded." in page
    assert "Jana Dvořáková" in page
    assert "03. 04. 1985" in page
    assert 'id="identity"' not in page  # no longer anonymous


async def test_identity_needs_a_name(client: httpx.AsyncClient, case: dict[str, str]) -> None:
    await _open(client, case["id"])
    response = await _act(client, case["id"], "identity", name=" ", birth_date="1985-04-03")
    assert response.status_code == 422
    assert "Write the name" in response.text
    assert "Anonymous" in response.text


async def test_requested_meeting_is_planned_in_prague_time(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, case: dict[str, str]
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Report).values(
                meeting_requested=True, meeting_due_on=deadlines.local_date(utcnow())
            )
        )
    page = await _open(client, case["id"])
    assert "at most 14 days" in page
    response = await _act(
        client, case["id"], "meeting", when="2026-12-01T09:30", place="Room 12, Brno"
    )
    assert response.status_code == 303
    page = (await client.get(response.headers["location"])).text
    assert "The meeting was planned" in page
    assert 'id="meeting-planned">Planned for 01. 12. 2026 09:30' in page
    assert 'id="meeting-when"' not in page
    [message] = await _whistleblower_messages(client, case["code"])
    assert "01. 12. 2026 09:30" in message
    assert "Room 12, Brno" in message


async def test_meeting_nobody_asked_for_is_refused(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    page = await _open(client, case["id"])
    assert 'id="meeting-when"' not in page
    response = await _act(client, case["id"], "meeting", when="2026-12-01T09:30", place="Here")
    assert response.status_code == 409
    assert "The whistleblower did not ask for a meeting." in response.text


async def test_meeting_needs_a_place(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, case: dict[str, str]
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Report).values(meeting_requested=True))
    await _open(client, case["id"])
    response = await _act(client, case["id"], "meeting", when="2026-12-01T09:30", place="")
    assert response.status_code == 422
    assert "Choose the date and time of the meeting" in response.text


async def test_timeline_lists_the_cases_events_newest_first(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    await _open(client, case["id"])
    assert (await _act(client, case["id"], "notes", body="Secret note text.")).status_code == 303
    page = (await client.get(f"/cases/{case['id']}?lang=en")).text
    timeline = page[page.index('id="timeline"') :]
    rows = re.findall(r'<tr class="event">(.*?)</tr>', timeline, re.S)
    assert len(rows) == 2
    assert "Added an internal note" in rows[0]
    assert "Opened the case" in rows[1]
    assert REASON in rows[1]
    assert case["email"] in rows[0]
    assert "Secret note text." not in timeline


async def test_triage_form_keeps_the_values(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    await _open(client, case["id"])
    saved = await _act(
        client,
        case["id"],
        "triage",
        priority="high",
        completeness="needs_more_information",
        retaliation_risk="medium",
        protection_plan="Keep the name out of the team meeting.",
    )
    assert saved.status_code == 303
    page = (await client.get(f"/cases/{case['id']}?lang=en")).text
    assert '<option value="high" selected>' in page
    assert '<option value="medium" selected>' in page
    assert "Keep the name out of the team meeting." in page
    refused = await _act(client, case["id"], "triage", priority="urgent")
    assert refused.status_code == 422
