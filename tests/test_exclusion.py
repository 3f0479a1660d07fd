"""A whistleblower excludes a designated person from a report that concerns them (issue 17).

The exclusion is enforced by keys: the excluded person, acting with their own private key, the
organisation private key from their grant and a copy of the database, opens nothing; logged in,
they find no trace of the report but a count of withheld rows.
"""

import csv
import io
import time
import uuid
import zipfile
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import crypto
from app.config import Settings
from app.models import AuditEvent, Member, Membership, Organisation, Report, ReportRecipient
from app.routers.intake import _form_token
from app.services import exclusion, keys, mail, reports
from tests.factories import PASSWORD, login, on_plan, register, submit, verified_organisation
from tests.smtp import SMTPServer

Sessionmaker = async_sessionmaker[AsyncSession]
REASON = {"X-Access-Reason": "assessment"}
DESCRIPTION = "The head of purchasing, one of the designated persons, takes kickbacks."
NAMES = ("Mgr. Alena Vedoucí", "Bc. Boris Pečlivý", "Ing. Cyril Spolehlivý")


async def _member_id(sessionmaker: Sessionmaker, email: str) -> uuid.UUID:
    async with sessionmaker() as session:
        found = await session.scalar(select(Member.id).where(Member.email == email))
    assert found is not None
    return found


async def _add_key_holder(client: httpx.AsyncClient, slug: str, holder: str, email: str) -> None:
    await login(client, holder)
    await client.post(f"/api/v1/organisations/{slug}/members", json={"email": email})
    members = (await client.get(f"/api/v1/organisations/{slug}/members")).json()["items"]
    member_id = next(m["member_id"] for m in members if m["email"] == email)
    confirmed = await client.post(f"/api/v1/organisations/{slug}/members/{member_id}/grant")
    assert confirmed.status_code == 204, confirmed.text


@pytest.fixture
async def team(client: httpx.AsyncClient, sessionmaker: Sessionmaker) -> dict[str, Any]:
    """An organisation whose three key holders publish their names; the first registered it,
    so the organisation's address is also their own."""
    first = await verified_organisation(client, sessionmaker)
    slug = first["slug"]
    await on_plan(sessionmaker, slug)
    emails = [first["email"], (await register(client))["email"], (await register(client))["email"]]
    for email in emails[1:]:
        await _add_key_holder(client, slug, first["email"], email)
    ids = [await _member_id(sessionmaker, email) for email in emails]
    await login(client, first["email"])
    for member_id, name in zip(ids, NAMES, strict=True):
        named = await client.put(
            f"/api/v1/organisations/{slug}/members/{member_id}/published-name",
            json={"published_name": name},
        )
        assert named.status_code == 204, named.text
    await client.post("/api/v1/auth/logout")
    return {**first, "emails": emails, "ids": ids}


async def _submit_excluding(
    client: httpx.AsyncClient, team: dict[str, Any], *excluded: int, **fields: Any
) -> dict[str, Any]:
    ids = [str(team["ids"][n]) for n in excluded]
    return await submit(client, team["slug"], description=DESCRIPTION, exclude=ids, **fields)


async def _private_key(sessionmaker: Sessionmaker, email: str) -> bytes:
    async with sessionmaker() as session:
        member = await session.scalar(select(Member).where(Member.email == email))
    assert member is not None
    derived = await keys.derive_password_keys(
        PASSWORD, member.password_salt, crypto.Argon2Params.decode(member.password_params)
    )
    return keys.unwrap_member_key(derived, member.id, member.wrapped_private_key)


async def _only_report(sessionmaker: Sessionmaker) -> Report:
    async with sessionmaker() as session:
        [report] = (await session.scalars(select(Report))).all()
    return report


def _opens_any(candidates: list[bytes], blobs: list[tuple[bytes, bytes]]) -> bool:
    """Whether any of the keys opens any of the (ciphertext, associated data) pairs."""
    for private_key in candidates:
        for blob, aad in blobs:
            try:
                crypto.open_with(private_key, blob, aad)
            except crypto.CryptoError:
                continue
            return True
    return False


async def test_the_form_lists_the_key_holders_by_their_published_names(
    client: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    listed = (await client.get(f"/api/v1/public/{team['slug']}/designated-persons")).json()
    assert sorted(item["name"] for item in listed["items"]) == sorted(NAMES)
    page = await client.get(f"/{team['slug']}?lang=cs")
    assert "Oznámení se týká příslušné osoby: nechci, aby ho četla" in page.text
    assert all(name in page.text for name in NAMES)
    assert "<script" not in page.text.split("<form", 1)[1].split("</form>", 1)[0]


async def test_a_lone_designated_person_is_not_offered_for_exclusion(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    alone = await verified_organisation(client, sessionmaker)
    listed = (await client.get(f"/api/v1/public/{alone['slug']}/designated-persons")).json()
    assert listed["items"] == []
    page = await client.get(f"/{alone['slug']}?lang=cs")
    assert "nechci, aby ho četla" not in page.text


async def test_the_excluded_persons_own_keys_and_the_database_decrypt_nothing(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, team: dict[str, Any]
) -> None:
    await _submit_excluding(client, team, 0)
    await login(client, team["emails"][1])
    case_id = (await client.get("/api/v1/cases")).json()["items"][0]["id"]
    assert (await client.get(f"/api/v1/cases/{case_id}", headers=REASON)).status_code == 200

    # What the excluded person holds: their private key and the organisation key of their grant.
    own = await _private_key(sessionmaker, team["emails"][0])
    async with sessionmaker() as session:
        organisation = await session.scalar(
            select(Organisation).where(Organisation.slug == team["slug"])
        )
        assert organisation is not None
        grant = await session.scalar(
            select(Membership.org_key_grant).where(Membership.member_id == team["ids"][0])
        )
        assert grant is not None
        org_private = keys.open_grant(grant, own, organisation.id, team["ids"][0])
        recipients = (await session.scalars(select(ReportRecipient))).all()
        reasons = (await session.scalars(select(AuditEvent.sealed_reason))).all()
    report = await _only_report(sessionmaker)
    assert report.key_for_organisation is None
    assert {r.member_id for r in recipients} == set(team["ids"][1:])
    candidates = [own, org_private]
    blobs = [
        (recipient.sealed_report_key, b"report-key-member|" + report.id.bytes + member_id.bytes)
        for recipient in recipients
        for member_id in team["ids"]
    ]
    assert report.key_for_recovery is not None
    blobs += [
        (report.key_for_recovery, b"report-key-recovery|" + report.id.bytes),
        (report.key_for_recovery, reports.aad(b"report-key", report.id)),
    ]
    assert not _opens_any(candidates, blobs)
    # The reason the remaining person gave is not sealed to the organisation key either.
    sealed_reasons = [blob for blob in reasons if blob is not None]
    assert sealed_reasons
    events = await _events(sessionmaker)
    assert not _opens_any(
        candidates,
        [(e.sealed_reason, b"audit-reason|" + e.id.bytes) for e in events if e.sealed_reason],
    )
    # A remaining person's own key opens their copy, and so the report.
    mine = next(r for r in recipients if r.member_id == team["ids"][1])
    report_key = exclusion.open_for_member(
        await _private_key(sessionmaker, team["emails"][1]),
        mine.sealed_report_key,
        report.id,
        mine.member_id,
    )
    assert reports.read_content(report_key, report).description == DESCRIPTION


async def _events(sessionmaker: Sessionmaker) -> list[AuditEvent]:
    async with sessionmaker() as session:
        return list((await session.scalars(select(AuditEvent))).all())


async def test_the_excluded_person_logged_in_finds_no_trace_but_a_withheld_count(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, team: dict[str, Any]
) -> None:
    await submit(client, team["slug"])
    await _submit_excluding(client, team, 0)
    report_ids = {
        r.id: r.reference for r in (await _reports(sessionmaker)) if r.key_for_organisation is None
    }
    [(excluded_id, reference)] = report_ids.items()
    await login(client, team["emails"][1])  # a remaining person opens it, so the trail names it
    assert (await client.get(f"/api/v1/cases/{excluded_id}", headers=REASON)).status_code == 200

    await login(client, team["emails"][0])
    listed = (await client.get("/api/v1/cases")).json()
    assert listed["total"] == 1
    assert reference not in str(listed)
    assert (await client.get(f"/api/v1/cases/{excluded_id}", headers=REASON)).status_code == 404
    assert (await client.get(f"/cases/{excluded_id}")).status_code == 404
    for page in ("/cases", "/dashboard", f"/organisations/{team['slug']}/audit"):
        answer = await client.get(page)
        assert answer.status_code == 200, page
        assert reference not in answer.text, page
        assert str(excluded_id) not in answer.text, page

    register_json = (await client.get("/api/v1/register", headers=REASON)).json()
    assert len(register_json["items"]) == 1
    assert register_json["withheld"] == 1
    register_csv = await client.get(
        "/api/v1/register?lang=en", headers={**REASON, "Accept": "text/csv"}
    )
    rows = list(csv.reader(io.StringIO(register_csv.text.lstrip("\ufeff")), delimiter=";"))
    assert len(rows) == 3  # the header, the readable report, and the note
    assert "withheld" in rows[-1][0]
    assert reference not in register_csv.text

    statistics = await client.get(f"/organisations/{team['slug']}/statistics?lang=en")
    assert statistics.status_code == 200
    assert "withheld" in statistics.text

    archive = await client.get(
        f"/api/v1/organisations/{team['slug']}/export", params={"lang": "en"}, headers=REASON
    )
    assert archive.status_code == 200, archive.text
    zipped = zipfile.ZipFile(io.BytesIO(archive.content))
    assert not any(reference in name for name in zipped.namelist())
    assert "withheld" in zipped.read("README.txt").decode()
    assert "withheld" in zipped.read("register.csv").decode()
    assert str(excluded_id) not in zipped.read("audit.json").decode()
    everything = b"".join(zipped.read(name) for name in zipped.namelist())
    assert DESCRIPTION.encode() not in everything


async def _reports(sessionmaker: Sessionmaker) -> list[Report]:
    async with sessionmaker() as session:
        return list((await session.scalars(select(Report))).all())


async def test_the_remaining_persons_read_it_and_see_that_someone_was_excluded(
    client: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    await _submit_excluding(client, team, 0)
    await _submit_excluding(client, team, 0, name_excluded=True)
    await login(client, team["emails"][2])
    items = (await client.get("/api/v1/cases")).json()["items"]
    assert len(items) == 2
    seen = []
    for item in items:
        case = (await client.get(f"/api/v1/cases/{item['id']}", headers=REASON)).json()
        assert case["report"]["description"] == DESCRIPTION
        assert "exclude" not in case["report"]
        seen.append(case["exclusion"])
    assert sorted(seen, key=lambda e: len(e["names"])) == [
        {"count": 1, "names": []},
        {"count": 1, "names": [NAMES[0]]},
    ]
    page = await client.get(f"/cases/{items[0]['id']}?lang=en")
    assert "The whistleblower excluded a designated person" in page.text


async def test_new_report_mails_go_to_the_remaining_persons_only(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    smtp_server: SMTPServer,
    team: dict[str, Any],
) -> None:
    settings = settings.model_copy(update={"smtp_port": smtp_server.port})
    while await mail.deliver_due(sessionmaker, settings):
        pass
    smtp_server.messages.clear()
    # The excluded person is the one whose address is also the organisation's.
    await _submit_excluding(client, team, 0)
    while await mail.deliver_due(sessionmaker, settings):
        pass
    assert sorted(message["To"] for message in smtp_server.messages) == sorted(team["emails"][1:])

    await login(client, team["emails"][1])
    [item] = (await client.get("/api/v1/cases")).json()["items"]
    assert item["reference"] not in "".join(str(m) for m in smtp_server.messages)


async def test_a_rotation_and_a_removal_keep_it_readable_and_its_last_reader_cannot_leave(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, team: dict[str, Any]
) -> None:
    await _submit_excluding(client, team, 0)
    slug = team["slug"]
    await login(client, team["emails"][1])
    rotated = await client.post(f"/api/v1/organisations/{slug}/key-rotation")
    assert rotated.status_code == 202, rotated.text
    removed = await client.delete(f"/api/v1/organisations/{slug}/members/{team['ids'][2]}")
    assert removed.status_code == 204, removed.text
    [item] = (await client.get("/api/v1/cases")).json()["items"]
    case = await client.get(f"/api/v1/cases/{item['id']}", headers=REASON)
    assert case.status_code == 200
    assert case.json()["report"]["description"] == DESCRIPTION

    await login(client, team["emails"][0])
    refused = await client.delete(f"/api/v1/organisations/{slug}/members/{team['ids'][1]}")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "sole_recipient"
    # The recovery key pair still opens it: the organisation's way back.
    report = await _only_report(sessionmaker)
    async with sessionmaker() as session:
        organisation = await session.scalar(select(Organisation).where(Organisation.slug == slug))
    assert organisation is not None
    recovery_private = keys.open_recovery_private_key(
        team["recovery_key"], organisation.recovery_wrapped_key, organisation.id
    )
    report_key = exclusion.open_for_recovery(recovery_private, report)
    assert reports.read_content(report_key, report).description == DESCRIPTION


async def test_a_person_added_later_reads_it_only_once_a_recipient_shares_it(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, team: dict[str, Any]
) -> None:
    await _submit_excluding(client, team, 0)
    newcomer = (await register(client))["email"]
    await _add_key_holder(client, team["slug"], team["emails"][1], newcomer)
    newcomer_id = await _member_id(sessionmaker, newcomer)
    await login(client, newcomer)
    assert (await client.get("/api/v1/cases?organisation=" + team["slug"])).json()["total"] == 0

    await login(client, team["emails"][1])
    [item] = (await client.get("/api/v1/cases")).json()["items"]
    excluded = await client.post(
        f"/api/v1/cases/{item['id']}/recipients", json={"member_id": str(team["ids"][0])}
    )
    assert excluded.status_code == 403
    shared = await client.post(
        f"/api/v1/cases/{item['id']}/recipients", json={"member_id": str(newcomer_id)}
    )
    assert shared.status_code == 204, shared.text

    await login(client, newcomer)
    case = await client.get(f"/api/v1/cases/{item['id']}", headers=REASON)
    assert case.status_code == 200
    assert case.json()["report"]["description"] == DESCRIPTION
    await login(client, team["emails"][0])
    assert (await client.get(f"/api/v1/cases/{item['id']}", headers=REASON)).status_code == 404


async def test_excluding_everyone_is_refused_with_the_external_channel(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, settings: Settings, team: dict[str, Any]
) -> None:
    everyone = [str(member_id) for member_id in team["ids"]]
    answer = await client.post(
        f"/api/v1/public/{team['slug']}/reports",
        json={"description": DESCRIPTION, "exclude": everyone},
    )
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "nobody_left"
    page = await client.post(
        f"/{team['slug']}?lang=en",
        data={**_form_fields(settings), "exclude": everyone},
        files={"files": ("", b"", "application/octet-stream")},
    )
    assert page.status_code == 409
    assert "nobody at the organisation could read your report" in page.text
    assert 'href="https://oznamovatel.justice.cz/"' in page.text
    assert DESCRIPTION in page.text  # the text is kept to send elsewhere
    assert await _reports(sessionmaker) == []


def _form_fields(settings: Settings) -> dict[str, str]:
    started = _form_token(settings, int(time.time()) - 10)
    return {"started": started, "website": "", "description": DESCRIPTION, "anonymous": "true"}


async def test_the_html_form_excludes_without_javascript(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, settings: Settings, team: dict[str, Any]
) -> None:
    page = await client.post(
        f"/{team['slug']}?lang=en",
        data={**_form_fields(settings), "exclude": [str(team["ids"][0])], "name_excluded": "on"},
        files={"files": ("", b"", "application/octet-stream")},
    )
    assert page.status_code == 201, page.text
    report = await _only_report(sessionmaker)
    assert report.key_for_organisation is None
    async with sessionmaker() as session:
        readers = set(
            await session.scalars(
                select(ReportRecipient.member_id).where(ReportRecipient.report_id == report.id)
            )
        )
    assert readers == set(team["ids"][1:])
    await login(client, team["emails"][1])
    case = await client.get(f"/api/v1/cases/{report.id}", headers=REASON)
    assert case.json()["exclusion"] == {"count": 1, "names": [NAMES[0]]}


async def test_a_recipient_who_regains_access_with_the_recovery_key_reads_it_again(
    client: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    await _submit_excluding(client, team, 0)
    new_password = "a brand new long passphrase 2027"
    recovered = await client.post(
        "/api/v1/recovery",
        json={
            "organisation": team["slug"],
            "email": team["emails"][1],
            "recovery_key": team["recovery_key"],
            "new_password": new_password,
        },
    )
    assert recovered.status_code == 204, recovered.text
    await login(client, team["emails"][1], new_password)
    [item] = (await client.get("/api/v1/cases")).json()["items"]
    case = await client.get(f"/api/v1/cases/{item['id']}", headers=REASON)
    assert case.status_code == 200
    assert case.json()["report"]["description"] == DESCRIPTION
