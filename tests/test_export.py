"""The organisation's full export: one ZIP with the cases, their files, the register, the audit."""

import csv
import hashlib
import io
import json
import tracemalloc
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.deps import session_cookie_name
from app.main import create_app
from app.models import Organisation
from app.models.base import utcnow
from app.services import auth
from app.services.export import export_zip
from tests.factories import access_reasons, login, register, submit, verified_organisation

Sessionmaker = async_sessionmaker[AsyncSession]
REASON = "the organisation leaves the service"
SCRIPT = "<script>alert('x')</script>"
LEDGER = b"Ledger of bribes, page 7: 250 000 CZK to the mayor.\n" * 4000  # ~200 kB, 4 chunks
REPLY = b"Signed contract, scanned.\n" * 100


def _url(slug: str) -> str:
    return f"/api/v1/organisations/{slug}/export"


def _csrf(page: httpx.Response) -> str:
    return page.text.split('name="csrf" value="')[1].split('"')[0]


async def _export_events(sessionmaker: Sessionmaker) -> list[str]:
    return await access_reasons(sessionmaker, "organisation.export")


@pytest.fixture
async def org(client: httpx.AsyncClient, sessionmaker: Sessionmaker) -> dict[str, Any]:
    """An organisation with two reports: the first with a file, messages both ways and a note."""
    organisation = await verified_organisation(client, sessionmaker)
    slug = organisation["slug"]
    first = await client.post(
        f"/api/v1/public/{slug}/reports",
        data={
            "description": f"Invoices paid twice. {SCRIPT}",
            "anonymous": "false",
            "name": "Jana Nováková",
            "email": "jana@example.org",
        },
        files=[("files", ("ledger 2026.txt", LEDGER, "text/plain"))],
    )
    assert first.status_code == 201, first.text
    code = first.json()["tracking_code"]
    await submit(client, slug, description="The warehouse sells fuel on the side.")
    assert (await login(client, organisation["email"])).status_code == 200
    items = (await client.get("/api/v1/cases")).json()["items"]
    by_reference = {item["reference"]: item["id"] for item in items}
    first_id = by_reference[min(by_reference)]
    headers = {"X-Access-Reason": "initial assessment"}
    assert (await client.get(f"/api/v1/cases/{first_id}", headers=headers)).status_code == 200
    asked = await client.post(
        f"/api/v1/cases/{first_id}/messages", json={"body": "Do you have the contract?"}
    )
    assert asked.status_code == 201, asked.text
    answered = await client.post(
        "/api/v1/public/reports/self/messages",
        headers={"X-Tracking-Code": code},
        data={"body": "Yes, attached."},
        files=[("files", ("contract.txt", REPLY, "text/plain"))],
    )
    assert answered.status_code == 201, answered.text
    noted = await client.post(
        f"/api/v1/cases/{first_id}/notes", json={"body": "Check with the accountant."}
    )
    assert noted.status_code == 201, noted.text
    return {**organisation, "references": sorted(by_reference), "first_id": first_id}


async def test_export_holds_every_case_its_files_the_register_and_the_audit(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, org: dict[str, Any]
) -> None:
    response = await client.get(
        _url(org["slug"]), params={"lang": "en"}, headers={"X-Access-Reason": REASON}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    today = response.headers["content-disposition"].split(f"pistalka-{org['slug']}-")[1][:10]
    assert response.headers["content-disposition"] == (
        f'attachment; filename="pistalka-{org["slug"]}-{today}.zip"'
    )
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None
    first, second = org["references"]
    names = set(archive.namelist())
    assert {
        f"cases/{first}/case.json",
        f"cases/{first}/case.html",
        f"cases/{first}/files/1-ledger_2026.txt",
        f"cases/{first}/files/2-contract.txt",
        f"cases/{second}/case.json",
        f"cases/{second}/case.html",
        "register.csv",
        "audit.json",
        "README.txt",
    } == names

    case = json.loads(archive.read(f"cases/{first}/case.json"))
    assert case["id"] == org["first_id"]
    assert case["report"]["description"] == f"Invoices paid twice. {SCRIPT}"
    assert case["report"]["name"] == "Jana Nováková"
    assert case["report"]["email"] == "jana@example.org"
    assert case["assess_by"]
    assert case["status"] == "received"
    thread = [(m["author"], m["body"], m["member_email"]) for m in case["messages"]]
    assert thread == [
        ("member", "Do you have the contract?", org["email"]),
        ("whistleblower", "Yes, attached.", None),
    ]
    assert case["messages"][1]["attachments"][0]["path"] == "files/2-contract.txt"
    assert [(n["body"], n["member_email"]) for n in case["notes"]] == [
        ("Check with the accountant.", org["email"])
    ]
    assert {"case.read", "case.message", "case.note"} <= {e["action"] for e in case["timeline"]}
    second_case = json.loads(archive.read(f"cases/{second}/case.json"))
    assert second_case["report"]["description"] == "The warehouse sells fuel on the side."

    page = archive.read(f"cases/{first}/case.html").decode()
    assert "Invoices paid twice. &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "<script" not in page
    assert 'href="files/1-ledger_2026.txt"' in page
    assert "Check with the accountant." in page
    assert "Messages with the whistleblower" in page  # English, as asked

    assert archive.read(f"cases/{first}/files/1-ledger_2026.txt") == LEDGER
    assert archive.read(f"cases/{first}/files/2-contract.txt") == REPLY

    register_csv = archive.read("register.csv").decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(register_csv), delimiter=";"))
    assert rows[0][1] == "Reference"
    assert [row[1] for row in rows[1:]] == [first, second]
    assert rows[1][3] == "Jana Nováková"

    trail = json.loads(archive.read("audit.json"))
    assert [event["seq"] for event in trail] == list(range(1, len(trail) + 1))
    actions = [(e["action"], e["report_reference"]) for e in trail]
    assert ("case.message", first) in actions
    assert ("case.note", first) in actions
    last = trail[-1]
    assert (last["action"], last["reason"], last["member_email"]) == (
        "organisation.export",
        REASON,
        org["email"],
    )
    assert all(
        later["prev_hash"] == earlier["hash"]
        for earlier, later in zip(trail, trail[1:], strict=False)
    )

    readme = archive.read("README.txt").decode()
    assert "register.csv" in readme
    assert "Cases: 2" in readme
    assert "Files: 2" in readme
    assert f"{today[8:10]}. {today[5:7]}. {today[:4]}" in readme
    assert await _export_events(sessionmaker) == [REASON]


async def test_export_is_czech_by_default(client: httpx.AsyncClient, org: dict[str, Any]) -> None:
    response = await client.get(_url(org["slug"]), headers={"X-Access-Reason": REASON})
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    page = archive.read(f"cases/{org['references'][0]}/case.html").decode()
    assert '<html lang="cs">' in page
    assert "Zprávy s oznamovatelem" in page
    assert archive.read("register.csv").decode("utf-8-sig").startswith("Organizace;")


async def test_export_without_a_reason_is_refused_and_not_audited(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, org: dict[str, Any]
) -> None:
    missing = await client.get(_url(org["slug"]))
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "access_reason_required"
    blank = await client.get(_url(org["slug"]), headers={"X-Access-Reason": "  "})
    assert blank.status_code == 422
    assert await _export_events(sessionmaker) == []


async def test_another_organisations_member_and_an_unknown_slug_get_404(
    client: httpx.AsyncClient, org: dict[str, Any]
) -> None:
    other = await register(client)
    assert (await login(client, other["email"])).status_code == 200
    for slug in (org["slug"], "no-such-organisation"):
        response = await client.get(_url(slug), headers={"X-Access-Reason": REASON})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        assert (await client.get(f"/organisations/{slug}/export")).status_code == 404


async def test_not_logged_in_is_401_and_the_page_sends_to_login(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(_url("org-x"), headers={"X-Access-Reason": REASON})
    assert response.status_code == 401
    page = await client.get("/organisations/org-x/export")
    assert page.status_code == 303
    assert page.headers["location"] == "/login"


async def test_a_blocked_organisation_can_still_export(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, org: dict[str, Any]
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Organisation).where(Organisation.slug == org["slug"]).values(blocked_at=utcnow())
        )
    client.cookies.clear()
    assert (await login(client, org["email"])).status_code == 200
    response = await client.get(_url(org["slug"]), headers={"X-Access-Reason": REASON})
    assert response.status_code == 200
    assert len(zipfile.ZipFile(io.BytesIO(response.content)).namelist()) == 9


async def test_settings_link_to_the_page_whose_form_downloads_the_zip(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, org: dict[str, Any]
) -> None:
    page_url = f"/organisations/{org['slug']}/export"
    settings_page = await client.get(f"/organisations/{org['slug']}/settings?lang=en")
    assert f'href="{page_url}?lang=en">Export all data</a>' in settings_page.text
    form = await client.get(f"{page_url}?lang=en")
    assert form.status_code == 200
    assert 'name="reason"' in form.text

    forged = await client.post(page_url, data={"csrf": "forged", "reason": REASON})
    assert forged.status_code == 403
    refused = await client.post(f"{page_url}?lang=en", data={"csrf": _csrf(form), "reason": ""})
    assert refused.status_code == 422
    assert "Give the reason for the export" in refused.text
    assert await _export_events(sessionmaker) == []

    downloaded = await client.post(page_url, data={"csrf": _csrf(form), "reason": "handover"})
    assert downloaded.status_code == 200
    assert downloaded.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(downloaded.content))
    assert f"cases/{org['references'][0]}/files/1-ledger_2026.txt" in archive.namelist()
    assert await _export_events(sessionmaker) == ["handover"]


BIG_SIZE = 30 * 1024 * 1024


def _big_file() -> bytes:
    # Different bytes in every 64 KiB chunk, so a chunk written twice or out of order shows.
    return b"".join(
        hashlib.sha256(str(i).encode()).digest() * 2048 for i in range(BIG_SIZE // 65536)
    )


@pytest.fixture
async def big_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"max_file_bytes": 40 * 1024 * 1024}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await app.state.engine.dispose()


async def test_a_30_mb_file_round_trips_with_bounded_memory(
    big_client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    tmp_path: Path,
) -> None:
    organisation = await verified_organisation(big_client, sessionmaker)
    content = _big_file()
    digest = hashlib.sha256(content).hexdigest()
    submitted = await big_client.post(
        f"/api/v1/public/{organisation['slug']}/reports",
        data={"description": "The whole archive.", "anonymous": "true"},
        files=[("files", ("archive.bin", content, "application/octet-stream"))],
    )
    assert submitted.status_code == 201, submitted.text
    del content
    assert (await login(big_client, organisation["email"])).status_code == 200
    cookie = big_client.cookies[session_cookie_name(settings)]

    # The service itself, drained into a file: the test client would hold the whole body.
    target = tmp_path / "export.zip"
    tracemalloc.start()
    try:
        async with sessionmaker() as session, session.begin():
            current = await auth.resolve_session(session, settings, cookie)
            assert current is not None
            export = await export_zip(
                session, sessionmaker, current, organisation["slug"], REASON, "cs"
            )
        with target.open("wb") as out:
            async for piece in export.chunks:
                out.write(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"

    with zipfile.ZipFile(target) as archive:
        [name] = [n for n in archive.namelist() if "/files/" in n]
        assert name.endswith("/files/1-archive.bin")
        info = archive.getinfo(name)
        assert info.file_size == BIG_SIZE
        with archive.open(info) as stored:
            found = hashlib.sha256()
            while piece := stored.read(1024 * 1024):
                found.update(piece)
    assert found.hexdigest() == digest
