"""Case management by a designated person through the JSON API, on SQLite and PostgreSQL."""

import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.main import create_app
from app.models import AuditEvent, Organisation, PurgedReport, Report
from app.schemas.report import RecordRead
from app.services import deadlines
from app.templating import render_mail
from tests.factories import access_reasons, login, register, submit, verified_organisation

Sessionmaker = async_sessionmaker[AsyncSession]
REASON = {"X-Access-Reason": "initial assessment"}
PRAGUE = ZoneInfo("Europe/Prague")


@pytest.fixture
async def case(client: httpx.AsyncClient, sessionmaker: Sessionmaker) -> dict[str, str]:
    """A verified organisation with one report, its designated person logged in."""
    organisation = await verified_organisation(client, sessionmaker)
    submitted = await submit(client, organisation["slug"], email="whistle@example.org")
    assert (await login(client, organisation["email"])).status_code == 200
    items = (await client.get("/api/v1/cases")).json()["items"]
    return {**organisation, "id": items[0]["id"], "code": submitted["tracking_code"]}


async def _whistleblower_messages(client: httpx.AsyncClient, code: str) -> list[str]:
    view = await client.get("/api/v1/public/reports/self", headers={"X-Tracking-Code": code})
    return [m["body"] for m in view.json()["messages"]]


async def test_case_list_shows_metadata_and_deadlines(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    items = (await client.get("/api/v1/cases")).json()["items"]
    assert len(items) == 1
    item = items[0]
    year = item["received_at"][:4]
    assert item["reference"] == f"{year}-0001"
    assert item["status"] == "received"
    assert item["channel"] == "web"
    assert item["acknowledge_by"]
    assert item["assess_by"]
    assert item["extensions"] == 0
    assert item["overdue"] is False
    assert item["organisation"] == case["slug"]


async def test_references_count_per_organisation(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    await submit(client, case["slug"])
    references = sorted(i["reference"] for i in (await client.get("/api/v1/cases")).json()["items"])
    assert [r[-4:] for r in references] == ["0001", "0002"]


async def test_a_purged_reports_reference_is_never_given_again(
    client: httpx.AsyncClient, case: dict[str, str], sessionmaker: Sessionmaker
) -> None:
    async with sessionmaker() as session, session.begin():
        report = await session.get_one(Report, uuid.UUID(case["id"]))
        # A report recorded with an old date of receipt, purged since, held number 7 of its year.
        session.add(
            PurgedReport(
                id=uuid.uuid4(),
                organisation_id=report.organisation_id,
                reference_year=report.reference_year,
                reference_number=7,
                channel="post",
                received_at=report.received_at,
            )
        )
    await submit(client, case["slug"])
    references = sorted(i["reference"] for i in (await client.get("/api/v1/cases")).json()["items"])
    assert [r[-4:] for r in references] == ["0001", "0008"]


async def test_first_read_needs_a_reason_which_is_audited(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, case: dict[str, str]
) -> None:
    refused = await client.get(f"/api/v1/cases/{case['id']}")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "access_reason_required"

    opened = await client.get(f"/api/v1/cases/{case['id']}", headers=REASON)
    assert opened.status_code == 200
    assert opened.json()["report"]["description"].startswith("The director")
    assert (await client.get(f"/api/v1/cases/{case['id']}")).status_code == 200  # same session
    assert await access_reasons(sessionmaker, "case.read") == ["initial assessment"]


async def test_acknowledgement_writes_to_the_whistleblower_and_mails_them(
    sessionmaker: Sessionmaker,
    settings: Settings,
    smtp_server: object,
    case: dict[str, str],
) -> None:
    # The mail to the whistleblower goes from the web process itself, with its SMTP settings.
    app = create_app(settings.model_copy(update={"smtp_port": smtp_server.port}))  # type: ignore[attr-defined]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        assert (await login(client, case["email"])).status_code == 200
        await client.get(f"/api/v1/cases/{case['id']}", headers=REASON)
        response = await client.post(f"/api/v1/cases/{case['id']}/acknowledge", json={})
        assert response.status_code == 200
        assert response.json()["status"] == "acknowledged"
        messages = await _whistleblower_messages(client, case["code"])
        assert "Potvrzujeme" in messages[0]
        assert "We confirm" in messages[0]

        await smtp_server.wait_for(1)  # type: ignore[attr-defined]
        to_whistleblower = [m for m in smtp_server.messages if m["To"] == "whistle@example.org"]  # type: ignore[attr-defined]
        body = to_whistleblower[-1].get_body(("plain",)).get_content()
        assert "wrote to you" in body
        assert "Potvrzujeme" not in body
        assert case["code"] not in body

        again = await client.post(f"/api/v1/cases/{case['id']}/acknowledge", json={})
        assert again.status_code == 409
    await app.state.engine.dispose()


async def test_acknowledgement_can_be_waived_for_a_statutory_reason(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    await client.get(f"/api/v1/cases/{case['id']}", headers=REASON)
    response = await client.post(
        f"/api/v1/cases/{case['id']}/acknowledge", json={"waive": "would_reveal_identity"}
    )
    assert response.json()["acknowledgement_waived"] == "would_reveal_identity"
    assert await _whistleblower_messages(client, case["code"]) == []
    bad = await client.post(f"/api/v1/cases/{case['id']}/acknowledge", json={"waive": "busy"})
    assert bad.status_code == 422


async def _received_before_a_shifted_deadline(sessionmaker: Sessionmaker) -> date:
    """Move the report's receipt to the latest recent day whose 30-day deadline a weekend or
    holiday moves, so each extension's start depends on that shift."""
    received = deadlines.local_date(datetime.now(UTC))
    while not deadlines.deadline(received, 30).shifted:
        received -= timedelta(days=1)
    first = deadlines.deadline(received, 30)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Report).values(
                received_at=datetime.combine(received, time(12), tzinfo=PRAGUE),
                assessment_due_on=first.due_on,
                assessment_unshifted_on=first.unshifted_on,
            )
        )
    return received


async def test_an_extension_runs_from_the_end_of_the_shifted_deadline(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, case: dict[str, str]
) -> None:
    received = await _received_before_a_shifted_deadline(sessionmaker)
    await client.get(f"/api/v1/cases/{case['id']}", headers=REASON)
    due = deadlines.deadline(received, 30).due_on
    for n in (1, 2):
        response = await client.post(
            f"/api/v1/cases/{case['id']}/extend", json={"reason": "Witnesses are on leave."}
        )
        assert response.status_code == 200
        assert response.json()["extensions"] == n
        # shift(shift(receipt + 30) + 30), not shift(receipt + 60)
        extended = deadlines.deadline(due, 30)
        assert response.json()["assess_by"] == str(extended.due_on)
        assert response.json()["assess_by_unshifted"] == str(extended.unshifted_on)
        due = extended.due_on
    third = await client.post(f"/api/v1/cases/{case['id']}/extend", json={"reason": "More."})
    assert third.status_code == 409
    assert third.json()["error"]["code"] == "extensions_exhausted"
    messages = await _whistleblower_messages(client, case["code"])
    assert len(messages) == 2
    assert "Witnesses are on leave." in messages[0]
    assert due.strftime("%d. %m. %Y") in messages[1]


async def test_the_designated_person_chooses_the_length_of_an_extension(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    await client.get(f"/api/v1/cases/{case['id']}", headers=REASON)
    before = (await client.get(f"/api/v1/cases/{case['id']}")).json()["assess_by"]
    for days in (0, 31, "thirty"):
        refused = await client.post(
            f"/api/v1/cases/{case['id']}/extend", json={"reason": "Complex.", "days": days}
        )
        assert refused.status_code == 422
    response = await client.post(
        f"/api/v1/cases/{case['id']}/extend", json={"reason": "Complex.", "days": 10}
    )
    assert response.status_code == 200
    expected = deadlines.deadline(date.fromisoformat(before), 10)
    assert response.json()["assess_by"] == str(expected.due_on)


async def test_extension_after_the_deadline_is_refused(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, case: dict[str, str]
) -> None:
    async with sessionmaker() as session, session.begin():
        report = await session.scalar(select(Report))
        assert report is not None
        await session.execute(
            update(Report).values(assessment_due_on=report.assessment_due_on - timedelta(days=40))
        )
    response = await client.post(f"/api/v1/cases/{case['id']}/extend", json={"reason": "Late."})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "deadline_passed"
    items = (await client.get("/api/v1/cases")).json()["items"]
    assert items[0]["overdue"] is True


async def test_a_case_cannot_be_decided_before_its_acknowledgement(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    await client.get(f"/api/v1/cases/{case['id']}", headers=REASON)
    early = await client.post(f"/api/v1/cases/{case['id']}/decision", json={"outcome": "valid"})
    assert early.status_code == 409
    assert early.json()["error"]["code"] == "acknowledgement_first"
    assert (await client.get(f"/api/v1/cases/{case['id']}")).json()["status"] == "received"
    waived = await client.post(
        f"/api/v1/cases/{case['id']}/acknowledge", json={"waive": "would_reveal_identity"}
    )
    assert waived.status_code == 200
    decided = await client.post(f"/api/v1/cases/{case['id']}/decision", json={"outcome": "valid"})
    assert decided.status_code == 200


async def test_a_case_whose_whistleblower_asked_for_no_acknowledgement_can_be_decided(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    await submit(client, case["slug"], no_acknowledgement=True)
    items = (await client.get("/api/v1/cases")).json()["items"]
    quiet = next(item for item in items if item["acknowledge_by"] is None)
    await client.get(f"/api/v1/cases/{quiet['id']}", headers=REASON)
    decided = await client.post(f"/api/v1/cases/{quiet['id']}/decision", json={"outcome": "valid"})
    assert decided.status_code == 200


async def test_not_valid_decision_tells_about_the_external_channel(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    await client.get(f"/api/v1/cases/{case['id']}", headers=REASON)
    await client.post(
        f"/api/v1/cases/{case['id']}/acknowledge", json={"waive": "would_reveal_identity"}
    )
    response = await client.post(
        f"/api/v1/cases/{case['id']}/decision",
        json={"outcome": "not_valid", "message": "We found no such invoices."},
    )
    assert response.status_code == 200
    assert response.json()["outcome"] == "not_valid"
    assert response.json()["status"] == "assessed"
    message = (await _whistleblower_messages(client, case["code"]))[-1]
    assert message.startswith("We found no such invoices.")
    assert "https://oznamovatel.justice.cz/" in message
    measures = await client.post(f"/api/v1/cases/{case['id']}/measures", json={"body": "x"})
    assert measures.status_code == 409


async def test_not_a_report_notice_points_to_the_external_channel_without_denying_protection(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    path = f"/api/v1/cases/{case['id']}"
    await client.get(path, headers=REASON)
    await client.post(f"{path}/acknowledge", json={})
    decided = await client.post(f"{path}/decision", json={"outcome": "not_a_report"})
    assert decided.status_code == 200
    notice = (await _whistleblower_messages(client, case["code"]))[-1]
    assert "https://oznamovatel.justice.cz/" in notice
    assert "does not fall under Act No. 171/2023 Sb." in notice
    assert "nespadá pod zákon č. 171/2023 Sb." in notice
    assert "protection" not in notice  # no flat statement that no protection applies


def test_a_receipt_mail_asked_without_acknowledgement_is_the_whistleblowers_own_receipt() -> None:
    organisation = Organisation(name="Strojírny Vysočina a.s.")
    kwargs = {
        "organisation": organisation,
        "link": "https://x.example/track",
        "received_on": date(2026, 12, 4),
    }
    subject, text = render_mail("report_receipt", no_acknowledgement=True, **kwargs)
    assert "received" not in subject
    assert "přijal" not in subject
    assert "received your report" not in text
    assert "not an acknowledgement of receipt" in text
    subject, text = render_mail("report_receipt", no_acknowledgement=False, **kwargs)
    assert "was received" in subject


async def test_valid_decision_measures_and_close(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    await client.get(f"/api/v1/cases/{case['id']}", headers=REASON)
    assert (await client.post(f"/api/v1/cases/{case['id']}/close")).status_code == 409
    await client.post(
        f"/api/v1/cases/{case['id']}/acknowledge", json={"waive": "would_reveal_identity"}
    )
    decided = await client.post(f"/api/v1/cases/{case['id']}/decision", json={"outcome": "valid"})
    assert decided.json()["outcome"] == "valid"
    measures = await client.post(
        f"/api/v1/cases/{case['id']}/measures", json={"body": "The contract was terminated."}
    )
    assert measures.status_code == 200
    closed = await client.post(f"/api/v1/cases/{case['id']}/close")
    assert closed.json()["status"] == "closed"
    assert (
        await client.post(f"/api/v1/cases/{case['id']}/extend", json={"reason": "x"})
    ).status_code == 409
    messages = await _whistleblower_messages(client, case["code"])
    assert messages[-1] == "The contract was terminated."


async def test_measures_proposed_and_taken_are_separate_dated_entries(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    path = f"/api/v1/cases/{case['id']}"
    await client.get(path, headers=REASON)
    await client.post(f"{path}/acknowledge", json={})
    await client.post(f"{path}/decision", json={"outcome": "valid"})
    proposed = await client.post(
        f"{path}/measures",
        json={
            "kind": "proposed",
            "body": "Stop the payments; audit the supplier.",
            "tell_whistleblower": False,
        },
    )
    assert proposed.status_code == 200
    taken = await client.post(
        f"{path}/measures", json={"kind": "taken", "body": "The contract was terminated."}
    )
    assert taken.status_code == 200
    measures = taken.json()["measures"]
    assert [(m["kind"], m["body"], m["told_whistleblower"]) for m in measures] == [
        ("proposed", "Stop the payments; audit the supplier.", False),
        ("taken", "The contract was terminated.", True),
    ]
    assert measures[0]["created_at"] <= measures[1]["created_at"]
    messages = await _whistleblower_messages(client, case["code"])
    assert "Stop the payments; audit the supplier." not in messages
    assert messages[-1] == "The contract was terminated."
    wrong = await client.post(f"{path}/measures", json={"kind": "planned", "body": "x"})
    assert wrong.status_code == 422


async def test_notes_stay_internal(client: httpx.AsyncClient, case: dict[str, str]) -> None:
    await client.get(f"/api/v1/cases/{case['id']}", headers=REASON)
    response = await client.post(
        f"/api/v1/cases/{case['id']}/notes", json={"body": "Check with the auditor first."}
    )
    assert response.status_code == 201
    assert [n["body"] for n in response.json()["notes"]] == ["Check with the auditor first."]
    assert await _whistleblower_messages(client, case["code"]) == []


async def test_messages_both_ways(client: httpx.AsyncClient, case: dict[str, str]) -> None:
    await client.get(f"/api/v1/cases/{case['id']}", headers=REASON)
    await client.post(
        "/api/v1/public/reports/self/messages",
        json={"body": "Any news?"},
        headers={"X-Tracking-Code": case["code"]},
    )
    response = await client.post(
        f"/api/v1/cases/{case['id']}/messages", json={"body": "We are on it."}
    )
    assert response.status_code == 201
    assert [(m["author"], m["body"]) for m in response.json()["messages"]] == [
        ("whistleblower", "Any news?"),
        ("member", "We are on it."),
    ]
    assert await _whistleblower_messages(client, case["code"]) == ["Any news?", "We are on it."]


async def test_another_organisations_case_is_404(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, case: dict[str, str]
) -> None:
    await client.post("/api/v1/auth/logout")
    other = await register(client)
    await login(client, other["email"])
    assert (await client.get("/api/v1/cases")).json()["items"] == []
    attempts: list[tuple[str, str, dict[str, str] | None]] = [
        ("GET", "", None),
        ("POST", "/acknowledge", {}),
        ("POST", "/extend", {"reason": "Witnesses are on leave."}),
        ("POST", "/decision", {"outcome": "valid"}),
        ("POST", "/measures", {"body": "x"}),
        ("POST", "/messages", {"body": "x"}),
        ("POST", "/notes", {"body": "x"}),
        ("POST", "/close", None),
    ]
    for method, path, body in attempts:
        response = await client.request(
            method, f"/api/v1/cases/{case['id']}{path}", headers=REASON, json=body
        )
        assert response.status_code == 404, (path, response.text)
    assert (await client.get("/api/v1/cases/not-a-uuid", headers=REASON)).status_code == 404
    assert (await client.get(f"/api/v1/cases?organisation={case['slug']}")).status_code == 404


async def test_not_logged_in_is_401(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/cases")).status_code == 401


async def test_case_from_a_telephone_report_with_consent_and_comments(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    response = await client.post(
        f"/api/v1/cases?organisation={case['slug']}",
        data={
            "channel": "telephone",
            "received_on": "2026-11-02",
            "description": "Written record of the call: overtime is not paid.",
            "recording_consent": "true",
        },
        files=[("files", ("call.ogg", b"OggS fake audio", "audio/ogg"))],
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["reference"].endswith("-0002")
    opened = await client.get(f"/api/v1/cases/{created['id']}", headers=REASON)
    body = opened.json()
    assert body["channel"] == "telephone"
    assert body["received_at"].startswith("2026-11-02")
    assert body["record"] == {"recording_consent": True, "comments": []}
    assert [a["name"] for a in body["attachments"]] == ["call.ogg"]
    commented = await client.post(
        f"/api/v1/cases/{created['id']}/record-comments",
        json={"body": "The record is accurate; I add that it started in May."},
    )
    [first] = commented.json()["record"]["comments"]
    assert first["text"].startswith("The record is accurate")
    assert first["by"] == "member"
    assert first["at"]
    # The whistleblower can follow the recorded case with the code the person handed over,
    # read the record and comment on it; earlier comments stay.
    tracking = {"X-Tracking-Code": created["tracking_code"]}
    view = await client.get("/api/v1/public/reports/self", headers=tracking)
    assert view.json()["report"]["description"].startswith("Written record")
    assert view.json()["record"]["comments"][0]["text"] == first["text"]
    own = await client.post(
        "/api/v1/public/reports/self/record-comments",
        json={"body": "It was in May, not June."},
        headers=tracking,
    )
    assert own.status_code == 200
    comments = (await client.get(f"/api/v1/cases/{created['id']}")).json()["record"]["comments"]
    assert [(c["by"], c["text"][:9]) for c in comments] == [
        ("member", "The recor"),
        ("whistleblower", "It was in"),
    ]
    assert comments[0]["at"] <= comments[1]["at"]


async def test_a_recording_is_refused_without_the_whistleblowers_consent(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    for consent in ("false", ""):
        response = await client.post(
            f"/api/v1/cases?organisation={case['slug']}",
            data={
                "channel": "in_person",
                "description": "Written record of the meeting.",
                "recording_consent": consent,
            },
            files=[("files", ("meeting.m4a", b"\x00\x00\x00\x18ftypM4A audio", "audio/mp4"))],
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "recording_without_consent"
    items = (await client.get("/api/v1/cases")).json()["items"]
    assert len(items) == 1  # nothing was recorded
    written = await client.post(
        f"/api/v1/cases?organisation={case['slug']}",
        data={
            "channel": "in_person",
            "description": "Written record.",
            "recording_consent": "false",
        },
        files=[("files", ("record.txt", b"Signed written record.", "text/plain"))],
    )
    assert written.status_code == 201, written.text


def test_a_record_of_an_earlier_version_reads_its_comments_as_one_undated_entry() -> None:
    old = RecordRead.model_validate({"recording_consent": False, "comments": "Accurate."})
    assert [(c.text, c.at, c.by) for c in old.comments] == [("Accurate.", None, "member")]
    assert RecordRead.model_validate({"comments": ""}).comments == []


async def test_web_case_has_no_record_to_comment(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    await client.get(f"/api/v1/cases/{case['id']}", headers=REASON)
    response = await client.post(f"/api/v1/cases/{case['id']}/record-comments", json={"body": "x"})
    assert response.status_code == 409


async def test_identity_revealed_later_is_recorded(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    await client.get(f"/api/v1/cases/{case['id']}", headers=REASON)
    response = await client.post(
        f"/api/v1/cases/{case['id']}/identity",
        json={"name": "Jana Dvořáková", "birth_date": "1985-04-03"},
    )
    report = response.json()["report"]
    assert report["anonymous"] is False
    assert report["name"] == "Jana Dvořáková"
    assert report["birth_date"] == "1985-04-03"


async def test_meeting_is_planned_and_told(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, case: dict[str, str]
) -> None:
    await client.get(f"/api/v1/cases/{case['id']}", headers=REASON)
    plan = {"when": "2026-12-01T09:30:00+01:00", "place": "Room 12, Brno"}
    refused = await client.post(f"/api/v1/cases/{case['id']}/meeting", json=plan)
    assert refused.status_code == 409  # no meeting was asked for
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Report).values(meeting_requested=True))
    planned = await client.post(f"/api/v1/cases/{case['id']}/meeting", json=plan)
    assert planned.status_code == 200
    planned_at = datetime.fromisoformat(planned.json()["meeting_planned_at"])
    assert planned_at == datetime.fromisoformat(plan["when"])
    messages = await _whistleblower_messages(client, case["code"])
    assert "01. 12. 2026 09:30" in messages[-1]
    assert "Room 12, Brno" in messages[-1]


async def test_a_meeting_after_its_deadline_needs_a_reason_and_shows_late(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, case: dict[str, str]
) -> None:
    path = f"/api/v1/cases/{case['id']}"
    await client.get(path, headers=REASON)
    today = deadlines.local_date(datetime.now(UTC))
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Report).values(meeting_requested=True, meeting_due_on=today + timedelta(days=3))
        )
    late = datetime.combine(today + timedelta(days=20), time(10), tzinfo=PRAGUE).isoformat()
    refused = await client.post(f"{path}/meeting", json={"when": late, "place": "Room 1"})
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "meeting_late_reason_required"
    planned = await client.post(
        f"{path}/meeting",
        json={"when": late, "place": "Room 1", "late_reason": "The whistleblower is abroad."},
    )
    assert planned.status_code == 200, planned.text
    assert planned.json()["meeting_late"] is True
    assert planned.json()["meeting_late_reason"] == "The whistleblower is abroad."
    assert planned.json()["next_deadline"] == str(today + timedelta(days=3))
    in_time = datetime.combine(today + timedelta(days=2), time(10), tzinfo=PRAGUE).isoformat()
    replanned = await client.post(f"{path}/meeting", json={"when": in_time, "place": "Room 1"})
    assert replanned.json()["meeting_late"] is False
    assert replanned.json()["meeting_late_reason"] is None


async def test_the_whistleblower_asks_for_a_meeting_after_reporting(
    client: httpx.AsyncClient, case: dict[str, str]
) -> None:
    tracking = {"X-Tracking-Code": case["code"]}
    asked = await client.post("/api/v1/public/reports/self/meeting", headers=tracking)
    assert asked.status_code == 200
    today = deadlines.local_date(datetime.now(UTC))
    assert asked.json()["meeting_due_on"] == str(deadlines.deadline(today, 14).due_on)
    again = await client.post("/api/v1/public/reports/self/meeting", headers=tracking)
    assert again.status_code == 409
    item = (await client.get("/api/v1/cases")).json()["items"][0]
    assert item["meeting_by"] == str(deadlines.deadline(today, 14).due_on)


async def test_file_download_through_the_api_needs_the_reason_and_is_audited(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, case: dict[str, str]
) -> None:
    sent = await client.post(
        "/api/v1/public/reports/self/messages",
        data={"body": "The contract."},
        files=[("files", ("contract.txt", b"contract text", "text/plain"))],
        headers={"X-Tracking-Code": case["code"]},
    )
    file_id = sent.json()["messages"][0]["attachments"][0]["id"]
    url = f"/api/v1/cases/{case['id']}/files/{file_id}"
    assert (await client.get(url)).status_code == 409
    response = await client.get(url, headers={b"X-Access-Reason": "kontrola úřadu".encode()})
    assert response.status_code == 200
    assert response.content == b"contract text"
    assert response.headers["content-disposition"].startswith("attachment;")
    async with sessionmaker() as session:
        actions = [e.action for e in await session.scalars(select(AuditEvent))]
    assert "case.file" in actions
    assert await access_reasons(sessionmaker, "case.read") == ["kontrola úřadu"]


async def test_triage_is_kept_sealed_with_the_case(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, case: dict[str, str]
) -> None:
    await client.get(f"/api/v1/cases/{case['id']}", headers=REASON)
    plan = "Move the whistleblower out of the purchasing manager's team."
    response = await client.post(
        f"/api/v1/cases/{case['id']}/triage",
        json={"priority": "high", "retaliation_risk": "high", "protection_plan": plan},
    )
    assert response.status_code == 200
    assert response.json()["triage"] == {
        "priority": "high",
        "completeness": "complete",
        "retaliation_risk": "high",
        "protection_plan": plan,
    }
    bad = await client.post(f"/api/v1/cases/{case['id']}/triage", json={"priority": "urgent!"})
    assert bad.status_code == 422
    async with sessionmaker() as session:
        report = await session.scalar(select(Report))
    assert report is not None
    assert report.sealed_triage is not None
    assert plan.encode() not in report.sealed_triage


async def test_case_list_pages_in_deadline_order_computed_by_the_database(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    organisation = await verified_organisation(client, sessionmaker)
    many = create_app(settings.model_copy(update={"submissions_per_hour": 100}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=many), base_url="http://testserver"
    ) as other:
        for _ in range(9):
            await submit(other, organisation["slug"])
    await many.state.engine.dispose()
    today = deadlines.local_date(datetime.now(UTC))
    async with sessionmaker() as session, session.begin():
        reports = list(await session.scalars(select(Report).order_by(Report.reference_number)))
        # Every state the order depends on: overdue and not, acknowledged, meeting asked for
        # and planned, decided, closed.
        shapes = [
            ("received", -3, None, None),
            ("received", 5, None, None),
            ("acknowledged", 40, 2, None),
            ("acknowledged", -1, None, None),
            ("acknowledged", 10, -2, datetime.now(UTC)),
            ("assessed", -30, None, None),
            ("closed", -60, None, None),
            ("received", 1, None, None),
            ("acknowledged", 1, None, None),
        ]
        for report, (status, due_in, meeting_in, planned) in zip(reports, shapes, strict=True):
            report.status = status
            report.acknowledgement_due_on = today + timedelta(days=due_in - 1)
            report.assessment_due_on = today + timedelta(days=due_in)
            report.meeting_due_on = (
                today + timedelta(days=meeting_in) if meeting_in is not None else None
            )
            report.meeting_planned_at = planned
    assert (await login(client, organisation["email"])).status_code == 200

    everything = (await client.get("/api/v1/cases", params={"limit": 1000})).json()
    assert everything["total"] == 9
    items = everything["items"]
    expected = sorted(
        items,
        key=lambda c: (not c["overdue"], c["next_deadline"] or "9999-12-31", c["reference"]),
    )
    assert [c["reference"] for c in items] == [c["reference"] for c in expected]
    assert items[0]["overdue"] is True
    assert items[-1]["next_deadline"] is None

    first = (await client.get("/api/v1/cases", params={"limit": 4})).json()
    rest = (await client.get("/api/v1/cases", params={"limit": 4, "offset": 4})).json()
    last = (await client.get("/api/v1/cases", params={"limit": 4, "offset": 8})).json()
    pages = [c["reference"] for page in (first, rest, last) for c in page["items"]]
    assert pages == [c["reference"] for c in items]
    assert (first["total"], len(last["items"])) == (9, 1)
    assert (await client.get("/api/v1/cases", params={"limit": 0})).status_code == 422
    dashboard = await client.get("/dashboard?lang=en")
    overdue = sum(1 for c in items if c["overdue"])
    assert f"{overdue} overdue" in dashboard.text
