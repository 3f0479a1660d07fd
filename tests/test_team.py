"""Designated persons: invitations, grants a key holder confirms, removal, password, recovery."""

import re

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.models import Membership
from app.services import mail
from tests.factories import PASSWORD, login, register, submit, verified_organisation
from tests.smtp import SMTPServer

Sessionmaker = async_sessionmaker[AsyncSession]
NEW_PASSWORD = "another long password"
REASON = {"X-Access-Reason": "assessment"}


async def _invite_and_accept(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    smtp_server: SMTPServer,
    slug: str,
    email: str,
) -> None:
    assert (
        await client.post(f"/api/v1/organisations/{slug}/members", json={"email": email})
    ).status_code == 202
    await mail.deliver_due(
        sessionmaker, settings.model_copy(update={"smtp_port": smtp_server.port})
    )
    invitation = [m for m in smtp_server.messages if m["To"] == email][-1]
    plain = invitation.get_body(("plain",))
    assert plain is not None
    match = re.search(r"/invite/(\S+)", plain.get_content())
    assert match is not None
    accepted = await client.post(
        "/api/v1/invitations/accept", json={"token": match.group(1), "password": PASSWORD}
    )
    assert accepted.status_code == 201, accepted.text


async def test_invited_person_gets_access_when_a_key_holder_confirms_it(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    smtp_server: SMTPServer,
) -> None:
    organisation = await verified_organisation(client, sessionmaker)
    slug = organisation["slug"]
    await submit(client, slug)
    await login(client, organisation["email"])
    await _invite_and_accept(client, sessionmaker, settings, smtp_server, slug, "new@example.cz")
    members = (await client.get(f"/api/v1/organisations/{slug}/members")).json()["items"]
    assert {(m["email"], m["has_access"], m["authentic"]) for m in members} == {
        (organisation["email"], True, True),
        ("new@example.cz", False, True),
    }
    offered = next(m for m in members if m["email"] == "new@example.cz")
    await client.post("/api/v1/auth/logout")

    newcomer = await login(client, "new@example.cz")
    assert newcomer.json()["key_fingerprint"] == offered["fingerprint"]
    waiting = await client.get(f"/api/v1/cases?organisation={slug}")
    assert waiting.status_code == 403
    assert waiting.json()["error"]["code"] == "no_grant"
    await client.post("/api/v1/auth/logout")

    # A key holder's login alone grants nobody: access takes an explicit confirmation.
    await login(client, organisation["email"])
    await mail.deliver_due(
        sessionmaker, settings.model_copy(update={"smtp_port": smtp_server.port})
    )
    asked = [m for m in smtp_server.messages if m["To"] == organisation["email"]][-1]
    plain = asked.get_body(("plain",))
    assert plain is not None
    assert offered["fingerprint"] in plain.get_content()
    assert "new@example.cz" in plain.get_content()
    await client.post("/api/v1/auth/logout")
    await login(client, "new@example.cz")
    assert (await client.get(f"/api/v1/cases?organisation={slug}")).status_code == 403
    await client.post("/api/v1/auth/logout")

    await login(client, organisation["email"])
    confirmed = await client.post(
        f"/api/v1/organisations/{slug}/members/{offered['member_id']}/grant"
    )
    assert confirmed.status_code == 204, confirmed.text
    again = await client.post(f"/api/v1/organisations/{slug}/members/{offered['member_id']}/grant")
    assert again.status_code == 409
    await client.post("/api/v1/auth/logout")
    await login(client, "new@example.cz")
    items = (await client.get("/api/v1/cases")).json()["items"]
    assert len(items) == 1
    case = await client.get(f"/api/v1/cases/{items[0]['id']}", headers=REASON)
    assert case.status_code == 200
    assert case.json()["report"]["description"].startswith("The director")


async def test_invitation_link_works_once(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    smtp_server: SMTPServer,
) -> None:
    organisation = await verified_organisation(client, sessionmaker)
    await login(client, organisation["email"])
    await _invite_and_accept(
        client, sessionmaker, settings, smtp_server, organisation["slug"], "once@example.cz"
    )
    plain = smtp_server.messages[-1].get_body(("plain",))
    assert plain is not None
    token = re.search(r"/invite/(\S+)", plain.get_content())
    assert token is not None
    again = await client.post(
        "/api/v1/invitations/accept", json={"token": token.group(1), "password": PASSWORD}
    )
    assert again.status_code == 404


async def test_existing_account_is_added_at_once(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    first = await verified_organisation(client, sessionmaker)
    second = await register(client)
    await login(client, first["email"])
    response = await client.post(
        f"/api/v1/organisations/{first['slug']}/members", json={"email": second["email"]}
    )
    assert response.status_code == 202
    again = await client.post(
        f"/api/v1/organisations/{first['slug']}/members", json={"email": second["email"]}
    )
    assert again.status_code == 409
    await client.post("/api/v1/auth/logout")
    me = (await login(client, second["email"])).json()
    assert {o["slug"] for o in me["organisations"]} == {first["slug"], second["slug"]}


async def test_removing_a_person_and_not_the_last_one(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    first = await verified_organisation(client, sessionmaker)
    second = await register(client)
    await login(client, first["email"])
    await client.post(
        f"/api/v1/organisations/{first['slug']}/members", json={"email": second["email"]}
    )
    members = (await client.get(f"/api/v1/organisations/{first['slug']}/members")).json()["items"]
    other = next(m for m in members if m["email"] == second["email"])
    me = next(m for m in members if m["email"] == first["email"])
    removed = await client.delete(
        f"/api/v1/organisations/{first['slug']}/members/{other['member_id']}"
    )
    assert removed.status_code == 204
    last = await client.delete(f"/api/v1/organisations/{first['slug']}/members/{me['member_id']}")
    assert last.status_code == 409
    async with sessionmaker() as session:
        rows = list(await session.scalars(select(Membership)))
    assert len(rows) == 2  # first's own and second's own organisation


async def test_another_organisations_team_is_404(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    first = await register(client)
    second = await register(client)
    await login(client, first["email"])
    assert (await client.get(f"/api/v1/organisations/{second['slug']}/members")).status_code == 404
    response = await client.post(
        f"/api/v1/organisations/{second['slug']}/members", json={"email": "x@example.cz"}
    )
    assert response.status_code == 404


async def test_appointment_and_instruction_are_recorded(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    organisation = await register(client)
    me = (await login(client, organisation["email"])).json()
    response = await client.put(
        f"/api/v1/organisations/{organisation['slug']}/members/{me['id']}/appointment",
        json={
            "appointed_on": "2026-11-01",
            "instructed_on": "2026-11-02",
            "instruction_document": "Poučení příslušné osoby č. 1/2026",
        },
    )
    assert response.status_code == 204
    members = (await client.get(f"/api/v1/organisations/{organisation['slug']}/members")).json()[
        "items"
    ]
    assert members[0]["appointed_on"] == "2026-11-01"
    assert members[0]["instruction_document"] == "Poučení příslušné osoby č. 1/2026"


async def test_password_change_keeps_the_keys_and_ends_other_sessions(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker, settings: Settings
) -> None:
    organisation = await verified_organisation(client, sessionmaker)
    await submit(client, organisation["slug"])
    other_device = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    await login(other_device, organisation["email"])
    await login(client, organisation["email"])
    wrong = await client.post(
        "/api/v1/auth/password", json={"current_password": "nope", "new_password": NEW_PASSWORD}
    )
    assert wrong.status_code == 401
    changed = await client.post(
        "/api/v1/auth/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert changed.status_code == 204
    assert (await other_device.get("/api/v1/auth/me")).status_code == 401
    await other_device.aclose()
    await client.post("/api/v1/auth/logout")
    assert (await login(client, organisation["email"])).status_code == 401
    assert (await login(client, organisation["email"], NEW_PASSWORD)).status_code == 200
    item = (await client.get("/api/v1/cases")).json()["items"][0]
    assert (await client.get(f"/api/v1/cases/{item['id']}", headers=REASON)).status_code == 200


async def test_recovery_key_restores_access_after_the_password_is_lost(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    organisation = await verified_organisation(client, sessionmaker)
    await submit(client, organisation["slug"])
    body = {
        "organisation": organisation["slug"],
        "email": organisation["email"],
        "new_password": NEW_PASSWORD,
    }
    wrong = await client.post(
        "/api/v1/recovery", json={**body, "recovery_key": "2222-" * 12 + "2222"}
    )
    assert wrong.status_code == 422
    assert wrong.json()["error"]["code"] == "recovery_failed"
    recovered = await client.post(
        "/api/v1/recovery", json={**body, "recovery_key": organisation["recovery_key"].lower()}
    )
    assert recovered.status_code == 204
    assert (await login(client, organisation["email"])).status_code == 401
    assert (await login(client, organisation["email"], NEW_PASSWORD)).status_code == 200
    item = (await client.get("/api/v1/cases")).json()["items"][0]
    case = await client.get(f"/api/v1/cases/{item['id']}", headers=REASON)
    assert case.status_code == 200
    assert case.json()["report"]["description"].startswith("The director")


def _csrf(html: str) -> str:
    return html.split('name="csrf" value="')[1].split('"')[0]


async def test_team_page_invites_and_the_invitation_page_sets_the_password(
    client: httpx.AsyncClient,
    sessionmaker: Sessionmaker,
    settings: Settings,
    smtp_server: SMTPServer,
) -> None:
    organisation = await register(client)
    await login(client, organisation["email"])
    page = await client.get(f"/organisations/{organisation['slug']}/team?lang=en")
    assert page.status_code == 200
    assert organisation["email"] in page.text
    sent = await client.post(
        f"/organisations/{organisation['slug']}/team/invite?lang=en",
        data={"csrf": _csrf(page.text), "email": "web@example.cz"},
    )
    assert sent.status_code == 303
    await mail.deliver_due(
        sessionmaker, settings.model_copy(update={"smtp_port": smtp_server.port})
    )
    plain = [m for m in smtp_server.messages if m["To"] == "web@example.cz"][-1].get_body(
        ("plain",)
    )
    assert plain is not None
    match = re.search(r"http://testserver(/invite/\S+)", plain.get_content())
    assert match is not None
    form = await client.get(match.group(1) + "?lang=en")
    assert "web@example.cz" in form.text
    mismatch = await client.post(
        match.group(1), data={"password": NEW_PASSWORD, "password_again": "other"}
    )
    assert mismatch.status_code == 422
    done = await client.post(
        match.group(1), data={"password": NEW_PASSWORD, "password_again": NEW_PASSWORD}
    )
    assert done.status_code == 303
    await client.post("/api/v1/auth/logout")
    assert (await login(client, "web@example.cz", NEW_PASSWORD)).status_code == 200


async def test_recovery_page(client: httpx.AsyncClient, sessionmaker: Sessionmaker) -> None:
    organisation = await register(client)
    assert (await client.get("/recovery")).status_code == 200
    fields = {"organisation": organisation["slug"], "email": organisation["email"]}
    wrong = await client.post(
        "/recovery?lang=en",
        data={**fields, "recovery_key": "2222-" * 12 + "2222", "new_password": NEW_PASSWORD},
    )
    assert wrong.status_code == 422
    assert "does not match" in wrong.text
    right = await client.post(
        "/recovery",
        data={**fields, "recovery_key": organisation["recovery_key"], "new_password": NEW_PASSWORD},
    )
    assert right.status_code == 303
    assert (await login(client, organisation["email"], NEW_PASSWORD)).status_code == 200


async def test_profile_page_changes_the_password(client: httpx.AsyncClient) -> None:
    organisation = await register(client)
    await login(client, organisation["email"])
    profile = await client.get("/profile")
    changed = await client.post(
        "/profile/password",
        data={
            "csrf": _csrf(profile.text),
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
        },
    )
    assert changed.status_code == 303
    await client.post("/api/v1/auth/logout")
    assert (await login(client, organisation["email"], NEW_PASSWORD)).status_code == 200
