"""The operator's console: account with required TOTP, registrations, blocks, terms, incidents."""

import asyncio
import re
import time
from datetime import timedelta

import httpx
import pyotp
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import cli
from app.config import Settings
from app.models import AuditEvent, IncidentNotice, Organisation, OutboxMail, TermsVersion
from app.models.base import utcnow
from app.services import deadlines, mail
from tests.conftest import TEST_SECRET
from tests.factories import PASSWORD, login, register, submit, verified_organisation
from tests.smtp import SMTPServer

Sessionmaker = async_sessionmaker[AsyncSession]
OPERATOR_EMAIL = "ops@pistalka.example"
OPERATOR_PASSWORD = "operator password 2026"


@pytest.fixture
async def totp_secret(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> str:
    """An operator created with `pistalka create-operator`; its TOTP secret as printed."""
    monkeypatch.setenv("PISTALKA_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("PISTALKA_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PISTALKA_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("PISTALKA_ARGON2_MEMORY_KIB", "1024")
    monkeypatch.setenv("PISTALKA_ARGON2_ITERATIONS", "1")
    monkeypatch.setenv("PISTALKA_ARGON2_LANES", "1")
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(OPERATOR_PASSWORD + "\n"))
    await asyncio.to_thread(cli.main, ["create-operator", OPERATOR_EMAIL, "--password-stdin"])
    out = capsys.readouterr().out
    match = re.search(r"secret: ([A-Z2-7]+)", out)
    assert match is not None, out
    assert "otpauth://totp/" in out
    return match.group(1)


async def operator_login(
    client: httpx.AsyncClient, secret: str, step: int = 0, **overrides: str
) -> httpx.Response:
    """Log in with the code of the current time step, or (step=1) the next one, which the
    one step of allowed clock drift accepts: each code is accepted only once."""
    form = {
        "email": OPERATOR_EMAIL,
        "password": OPERATOR_PASSWORD,
        "totp": pyotp.TOTP(secret).at(time.time() + 30 * step),
        **overrides,
    }
    return await client.post("/operator/login?lang=en", data=form)


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert match is not None
    return match.group(1)


async def test_operator_needs_password_and_a_fresh_totp_code(
    client: httpx.AsyncClient, totp_secret: str, sessionmaker: Sessionmaker
) -> None:
    assert (await client.get("/operator")).status_code == 303
    no_code = await operator_login(client, totp_secret, totp="")
    assert no_code.status_code == 401
    wrong_password = await operator_login(client, totp_secret, password="nope nope nope")
    assert wrong_password.status_code == 401
    code = pyotp.TOTP(totp_secret).now()
    ok = await operator_login(client, totp_secret, totp=code)
    assert ok.status_code == 303
    assert ok.headers["location"].startswith("/operator")
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    console = await client.get("/operator?lang=en")
    assert console.status_code == 200
    assert "Registered organisations" in console.text
    # The same code is accepted once.
    client.cookies.clear()
    replay = await operator_login(client, totp_secret, totp=code)
    assert replay.status_code == 401


async def test_guesses_from_anywhere_cannot_lock_the_operator_out(
    client: httpx.AsyncClient, totp_secret: str, settings: Settings
) -> None:
    for _ in range(settings.login_lock_after):
        wrong = await operator_login(client, totp_secret, password="nope nope nope")
        assert wrong.status_code == 401
    locked = await operator_login(client, totp_secret, password="nope nope nope")
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > 60
    # The right password without a valid code gets the same answer as a wrong one.
    assert (await operator_login(client, totp_secret, totp="000000")).status_code == 429
    ok = await operator_login(client, totp_secret)
    assert ok.status_code == 303
    assert (await client.get("/operator")).status_code == 200


async def test_console_lists_counts_only_and_blocks_a_registration(
    client: httpx.AsyncClient, totp_secret: str, sessionmaker: Sessionmaker
) -> None:
    registered = await verified_organisation(client, sessionmaker)
    slug = registered["slug"]
    await submit(client, slug, description="The mayor takes bribes at the town hall.")
    assert (await operator_login(client, totp_secret)).status_code == 303
    console = await client.get("/operator?lang=en")
    row = re.search(rf'<tr id="org-{slug}">(.*?)</tr>', console.text, re.S)
    assert row is not None
    assert registered["name"] in row.group(1)
    assert re.findall(r'<td class="number">(\d+)</td>', row.group(1)) == ["1", "1"]
    assert "bribes" not in console.text
    async with sessionmaker() as session:
        organisation = await session.scalar(select(Organisation).where(Organisation.slug == slug))
    assert organisation is not None
    token = csrf_of(console.text)

    verify = await client.post(
        f"/operator/organisations/{organisation.id}/verify", data={"csrf": token}
    )
    assert verify.status_code == 303
    no_reason = await client.post(
        f"/operator/organisations/{organisation.id}/block?lang=en", data={"csrf": token}
    )
    assert no_reason.status_code == 422
    blocked = await client.post(
        f"/operator/organisations/{organisation.id}/block",
        data={"csrf": token, "reason": "False company data"},
    )
    assert blocked.status_code == 303
    forged = await client.post(
        f"/operator/organisations/{organisation.id}/unblock",
        data={"csrf": "0" * 64, "reason": "Forged"},
    )
    assert forged.status_code == 403

    # The blocked form takes no reports; its designated person can still log in and export.
    client.cookies.clear()
    refused = await client.post(f"/api/v1/public/{slug}/reports", json={"description": "x" * 20})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "organisation_blocked"
    assert (await login(client, registered["email"], PASSWORD)).status_code == 200
    exported = await client.get(
        f"/api/v1/organisations/{slug}/export", headers={"X-Access-Reason": "leaving"}
    )
    assert exported.status_code == 200
    dashboard = await client.get("/dashboard?lang=en")
    assert "False company data" in dashboard.text

    client.cookies.clear()
    assert (await operator_login(client, totp_secret, step=1)).status_code == 303
    token = csrf_of((await client.get("/operator")).text)
    unblocked = await client.post(
        f"/operator/organisations/{organisation.id}/unblock",
        data={"csrf": token, "reason": "Data corrected"},
    )
    assert unblocked.status_code == 303
    await submit(client, slug)
    organisation_id = organisation.id
    async with sessionmaker() as session:
        reloaded = await session.get(Organisation, organisation_id)
        actions = list(
            await session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.organisation_id == organisation_id)
                .order_by(AuditEvent.seq)
            )
        )
    assert reloaded is not None
    assert reloaded.identity_verified_at is not None
    assert [a for a in actions if a.startswith("operator.")] == [
        "operator.identity_verified",
        "operator.block",
        "operator.unblock",
    ]


async def test_terms_are_announced_15_days_ahead_and_accepted(
    client: httpx.AsyncClient,
    totp_secret: str,
    sessionmaker: Sessionmaker,
    settings: Settings,
    smtp_server: SMTPServer,
) -> None:
    first = await verified_organisation(client, sessionmaker)
    second = await verified_organisation(client, sessionmaker)
    async with sessionmaker() as session:
        recorded = await session.scalar(
            select(Organisation).where(Organisation.slug == first["slug"])
        )
        await session.execute(select(OutboxMail))
    assert recorded is not None
    assert recorded.terms_version == "1"
    assert recorded.terms_accepted_at is not None
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(OutboxMail))

    await operator_login(client, totp_secret)
    token = csrf_of((await client.get("/operator")).text)
    today = deadlines.local_date(utcnow())
    form = {"csrf": token, "version": "2", "summary": "Prices change.", "url": ""}
    too_soon = await client.post(
        "/operator/terms?lang=en",
        data={**form, "effective_on": (today + timedelta(days=14)).isoformat()},
    )
    assert too_soon.status_code == 422
    assert "15 days" in too_soon.text
    effective = today + timedelta(days=15)
    announced = await client.post(
        "/operator/terms", data={**form, "effective_on": effective.isoformat()}
    )
    assert announced.status_code == 303
    await mail.deliver_due(
        sessionmaker, settings.model_copy(update={"smtp_port": smtp_server.port})
    )
    recipients = sorted(message["To"] for message in smtp_server.messages)
    assert recipients == sorted([first["email"], second["email"]])
    body = smtp_server.messages[0].get_body(("plain",))
    assert body is not None
    assert "Prices change." in body.get_content()
    public = await client.get("/terms?lang=en")
    assert "Version 2 takes effect on" in public.text

    client.cookies.clear()
    assert (await login(client, first["email"])).status_code == 200
    dashboard = await client.get("/dashboard?lang=en")
    assert f'id="terms-{first["slug"]}"' in dashboard.text
    accepted = await client.post(
        f"/organisations/{first['slug']}/terms",
        data={"csrf": csrf_of(dashboard.text), "version": "2"},
    )
    assert accepted.status_code == 303
    async with sessionmaker() as session:
        recorded = await session.scalar(
            select(Organisation).where(Organisation.slug == first["slug"])
        )
    assert recorded is not None
    assert recorded.terms_version == "2"
    assert f'id="terms-{first["slug"]}"' not in (await client.get("/dashboard")).text


async def test_incident_notifies_the_affected_organisations(
    client: httpx.AsyncClient,
    totp_secret: str,
    sessionmaker: Sessionmaker,
    settings: Settings,
    smtp_server: SMTPServer,
) -> None:
    affected = await verified_organisation(client, sessionmaker)
    await verified_organisation(client, sessionmaker)
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(OutboxMail))
        affected_id = await session.scalar(
            select(Organisation.id).where(Organisation.slug == affected["slug"])
        )
    await operator_login(client, totp_secret)
    token = csrf_of((await client.get("/operator")).text)
    recorded = await client.post(
        "/operator/incidents",
        data={
            "csrf": token,
            "title": "Backup copy exposed",
            "detected_on": deadlines.local_date(utcnow()).isoformat(),
            "description": "An encrypted backup was readable for two hours.",
            "measures": "The copy was removed; contents stay encrypted.",
            "organisations": [str(affected_id)],
        },
    )
    assert recorded.status_code == 303
    await mail.deliver_due(
        sessionmaker, settings.model_copy(update={"smtp_port": smtp_server.port})
    )
    assert [message["To"] for message in smtp_server.messages] == [affected["email"]]
    assert "Backup copy exposed" in smtp_server.messages[0]["Subject"]
    async with sessionmaker() as session:
        notices = await session.scalar(select(func.count()).select_from(IncidentNotice))
    assert notices == 1


def _member_data_routes(app: object) -> list[tuple[str, str]]:
    """Every endpoint that serves or changes cases, the register or an export."""
    prefixes = ("/api/v1/cases", "/api/v1/register", "/cases", "/register-of-reports")
    routes: list[tuple[str, str]] = []
    for route in iter_route_contexts(app.routes):  # type: ignore[attr-defined]
        path = route.path or ""
        if path.startswith(prefixes) or path.endswith("/export"):
            routes.extend((method, path) for method in sorted(route.methods or ()))
    return routes


async def test_operator_session_gets_nothing_of_the_reports(
    client: httpx.AsyncClient, totp_secret: str, sessionmaker: Sessionmaker
) -> None:
    registered = await verified_organisation(client, sessionmaker)
    slug = registered["slug"]
    await submit(client, slug, description="Secret evidence about the treasurer.")
    assert (await login(client, registered["email"])).status_code == 200
    case_id = (await client.get("/api/v1/cases")).json()["items"][0]["id"]
    attachment_id = "00000000-0000-0000-0000-000000000000"
    client.cookies.clear()
    await operator_login(client, totp_secret)
    token = csrf_of((await client.get("/operator")).text)

    routes = _member_data_routes(client._transport.app)  # type: ignore[attr-defined]
    assert len(routes) > 30
    for method, path in routes:
        url = (
            path.replace("{case_id}", case_id)
            .replace("{slug}", slug)
            .replace("{attachment_id}", attachment_id)
            .replace("{file_id}", attachment_id)
        )
        assert "{" not in url, url
        body = {"csrf": token, "reason": "curious operator"} if method != "GET" else None
        api = url.startswith("/api/")  # the API takes JSON, the pages take forms
        response = await client.request(
            method,
            url,
            headers={"X-Access-Reason": "curious operator"},
            json=body if api else None,
            data=None if api else body,
        )
        assert response.status_code in (403, 404), (method, url, response.status_code)
        assert "treasurer" not in response.text
    listed = await client.get("/api/v1/cases")
    assert listed.status_code == 403
    assert listed.json()["error"]["code"] == "operator"


async def _announce(client: httpx.AsyncClient, secret: str, version: str, days: int) -> None:
    assert (await operator_login(client, secret)).status_code == 303
    token = csrf_of((await client.get("/operator")).text)
    effective = deadlines.local_date(utcnow()) + timedelta(days=days)
    announced = await client.post(
        "/operator/terms",
        data={
            "csrf": token,
            "version": version,
            "summary": "Prices change.",
            "url": "",
            "effective_on": effective.isoformat(),
        },
    )
    assert announced.status_code == 303
    client.cookies.clear()


async def test_terms_are_announced_only_to_organisations_using_the_service(
    client: httpx.AsyncClient,
    totp_secret: str,
    sessionmaker: Sessionmaker,
    settings: Settings,
    smtp_server: SMTPServer,
) -> None:
    active = await verified_organisation(client, sessionmaker)
    await register(client)  # its address is not verified
    leaving_org = await verified_organisation(client, sessionmaker)
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Organisation)
            .where(Organisation.slug == leaving_org["slug"])
            .values(cancelled_at=utcnow())
        )
        await session.execute(delete(OutboxMail))

    await _announce(client, totp_secret, "2", days=15)
    await mail.deliver_due(
        sessionmaker, settings.model_copy(update={"smtp_port": smtp_server.port})
    )
    assert [message["To"] for message in smtp_server.messages] == [active["email"]]


async def test_terms_notice_stays_after_the_version_takes_effect_until_accepted(
    client: httpx.AsyncClient, totp_secret: str, sessionmaker: Sessionmaker
) -> None:
    registered = await verified_organisation(client, sessionmaker)
    await _announce(client, totp_secret, "2", days=15)
    # The day comes and goes without anyone accepting.
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(TermsVersion)
            .where(TermsVersion.version == "2")
            .values(effective_on=deadlines.local_date(utcnow()) - timedelta(days=3))
        )
    later = await register(client)  # registers under version 2, in effect now

    assert (await login(client, registered["email"])).status_code == 200
    dashboard = await client.get("/dashboard?lang=en")
    assert f'id="terms-{registered["slug"]}"' in dashboard.text
    assert "version 2, took effect on" in dashboard.text
    accepted = await client.post(
        f"/organisations/{registered['slug']}/terms",
        data={"csrf": csrf_of(dashboard.text), "version": "2"},
    )
    assert accepted.status_code == 303
    assert f'id="terms-{registered["slug"]}"' not in (await client.get("/dashboard")).text
    async with sessionmaker() as session:
        versions = dict(
            (await session.execute(select(Organisation.slug, Organisation.terms_version))).all()
        )
    assert versions == {registered["slug"]: "2", later["slug"]: "2"}
    client.cookies.clear()
    assert (await login(client, later["email"])).status_code == 200
    assert f'id="terms-{later["slug"]}"' not in (await client.get("/dashboard")).text
