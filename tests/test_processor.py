"""The operator's duties as processor: sub-processors, support contact and status, incidents."""

from datetime import timedelta
from email.message import EmailMessage

import httpx
import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.main import create_app
from app.models import IncidentNotice, Organisation, OutboxMail
from app.models.base import utcnow
from app.models.operator import ServiceContact, SubProcessor, SubProcessorChange
from app.services import deadlines, mail
from app.services.cases import PRAGUE
from tests.factories import organisation_data, register, submit, verified_organisation
from tests.smtp import SMTPServer
from tests.test_operator import csrf_of, operator_login, totp_secret  # noqa: F401 - a fixture

Sessionmaker = async_sessionmaker[AsyncSession]
HOSTING = {
    "name": "Hetzner Online GmbH",
    "purpose_cs": "Hosting serverů a záloh",
    "purpose_en": "Hosting of the servers and backups",
    "country": "de",
}
CONTACT = {
    "support_email": "podpora@pistalka.example",
    "support_phone": "+420 123 456 789",
    "status_cs": "Plánovaná údržba 12. 12. 20:00–21:00",
    "status_en": "Planned maintenance on 12 Dec 20:00–21:00",
}


async def _console_token(client: httpx.AsyncClient, secret: str) -> str:
    assert (await operator_login(client, secret)).status_code == 303
    return csrf_of((await client.get("/operator")).text)


async def _add(
    client: httpx.AsyncClient, token: str, days: int, **overrides: str
) -> httpx.Response:
    effective = deadlines.local_date(utcnow()) + timedelta(days=days)
    form = {"csrf": token, **HOSTING, "effective_on": effective.isoformat(), **overrides}
    return await client.post("/operator/sub-processors?lang=en", data=form)


async def _deliver(sessionmaker: Sessionmaker, settings: Settings, smtp: SMTPServer) -> None:
    await mail.deliver_due(sessionmaker, settings.model_copy(update={"smtp_port": smtp.port}))


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


async def _clear_outbox(sessionmaker: Sessionmaker) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(delete(OutboxMail))


async def test_a_new_sub_processor_is_mailed_to_every_organisation_15_days_ahead(
    client: httpx.AsyncClient,
    totp_secret: str,  # noqa: F811 - the fixture
    sessionmaker: Sessionmaker,
    settings: Settings,
    smtp_server: SMTPServer,
) -> None:
    first = await verified_organisation(client, sessionmaker)
    second = await verified_organisation(client, sessionmaker)
    await register(client)  # its address is not verified: not yet using the service
    await _clear_outbox(sessionmaker)
    token = await _console_token(client, totp_secret)

    added = await _add(client, token, days=15)

    assert added.status_code == 303
    await _deliver(sessionmaker, settings, smtp_server)
    assert sorted(m["To"] for m in smtp_server.messages) == sorted(
        [first["email"], second["email"]]
    )
    text = _text(smtp_server.messages[0])
    effective = (deadlines.local_date(utcnow()) + timedelta(days=15)).strftime("%d. %m. %Y")
    assert "Hetzner Online GmbH" in smtp_server.messages[0]["Subject"]
    assert effective in text
    assert "Hosting of the servers and backups" in text
    assert "Německo" in text
    assert "Germany" in text
    assert f"{settings.public_url}/sub-processors" in text
    page = (await client.get("/sub-processors?lang=en")).text
    announced = page.split('id="announced"')[1].split("</section>")[0]
    assert "Hetzner Online GmbH" in announced
    assert effective in announced
    in_effect = page.split('id="in-effect"')[1].split("</section>")[0]
    assert "Hetzner" not in in_effect


async def test_a_sub_processor_taking_effect_sooner_than_15_days_is_refused(
    client: httpx.AsyncClient,
    totp_secret: str,  # noqa: F811 - the fixture
    sessionmaker: Sessionmaker,
) -> None:
    await verified_organisation(client, sessionmaker)
    await _clear_outbox(sessionmaker)
    token = await _console_token(client, totp_secret)

    refused = await _add(client, token, days=14)

    assert refused.status_code == 422
    assert "at the earliest 15 days after it is announced" in refused.text
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(SubProcessor)) == 0
        assert await session.scalar(select(func.count()).select_from(OutboxMail)) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", ""), ("country", "XX"), ("purpose_en", "a" * 501), ("name", "Evil\u202eCorp")],
)
async def test_a_sub_processor_needs_a_name_purposes_and_a_real_country(
    client: httpx.AsyncClient,
    totp_secret: str,  # noqa: F811 - the fixture
    sessionmaker: Sessionmaker,
    field: str,
    value: str,
) -> None:
    token = await _console_token(client, totp_secret)
    refused = await _add(client, token, days=20, **{field: value})
    assert refused.status_code == 422
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(SubProcessor)) == 0


async def test_the_public_list_keeps_every_change_with_its_date(
    client: httpx.AsyncClient,
    totp_secret: str,  # noqa: F811 - the fixture
    sessionmaker: Sessionmaker,
) -> None:
    token = await _console_token(client, totp_secret)
    assert (await _add(client, token, days=15)).status_code == 303
    mailer = {"name": "Seznam.cz", "purpose_cs": "Doručování e-mailů", "country": "CZ"}
    assert (
        await _add(client, token, days=16, **mailer, purpose_en="E-mail delivery")
    ).status_code == 303
    # Both took effect a month ago.
    month_ago = deadlines.local_date(utcnow()) - timedelta(days=30)
    async with sessionmaker() as session, session.begin():
        await session.execute(update(SubProcessor).values(effective_on=month_ago))
        await session.execute(update(SubProcessorChange).values(effective_on=month_ago))
        ids = dict((await session.execute(select(SubProcessor.name, SubProcessor.id))).all())
    hosting = ids["Hetzner Online GmbH"]

    changed = await client.post(
        f"/operator/sub-processors/{hosting}",
        data={"csrf": token, **HOSTING, "country": "FI", "purpose_en": "Hosting in Helsinki"},
    )
    assert changed.status_code == 303
    removed = await client.post(
        f"/operator/sub-processors/{ids['Seznam.cz']}/remove", data={"csrf": token}
    )
    assert removed.status_code == 303
    again = await client.post(
        f"/operator/sub-processors/{ids['Seznam.cz']}/remove", data={"csrf": token}
    )
    assert again.status_code == 404

    page = (await client.get("/sub-processors?lang=en")).text
    in_effect = page.split('id="in-effect"')[1].split("</section>")[0]
    assert "Hosting in Helsinki" in in_effect
    assert "Finland" in in_effect
    assert "Seznam.cz" not in in_effect
    history = page.split('id="history"')[1].split("</section>")[0]
    rows = history.split("<tr>")[2:]
    today = deadlines.local_date(utcnow()).strftime("%d. %m. %Y")
    earlier = month_ago.strftime("%d. %m. %Y")
    assert [("removed" in r, "changed" in r, "added" in r) for r in rows] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
        (False, False, True),
    ]
    assert today in rows[0]
    assert "Seznam.cz" in rows[0]
    assert today in rows[1]
    assert "Hosting in Helsinki" in rows[1]
    assert all(earlier in row for row in rows[2:])
    assert "Hosting of the servers and backups" in history  # as it was when added
    czech = (await client.get("/sub-processors")).text
    assert "Další zpracovatelé" in czech
    assert "Hosting serverů a záloh" in czech
    assert "Finsko" in czech


async def test_the_footer_and_the_terms_link_the_sub_processors(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    registered = await verified_organisation(client, sessionmaker)
    for path in ("/", f"/{registered['slug']}", "/track", "/login", "/operator/login"):
        page = await client.get(path)
        footer = page.text.split('<footer class="bottom">')[1]
        assert 'href="/sub-processors"' in footer, path
    terms = (await client.get("/terms?lang=en")).text.split("<main>")[1].split("</main>")[0]
    assert 'href="/sub-processors?lang=en"' in terms


async def test_sub_processors_is_not_an_address_an_organisation_can_take(
    client: httpx.AsyncClient,
) -> None:

    taken = await client.post(
        "/api/v1/organisations", json=organisation_data(slug="sub-processors")
    )
    assert taken.status_code == 422


async def test_the_support_contact_and_status_line_are_at_the_foot_of_every_page(
    client: httpx.AsyncClient,
    totp_secret: str,  # noqa: F811 - the fixture
    sessionmaker: Sessionmaker,
) -> None:
    registered = await verified_organisation(client, sessionmaker)
    for path in ("/", "/login"):
        assert "Plánovaná údržba" not in (await client.get(path)).text
    token = await _console_token(client, totp_secret)
    saved = await client.post("/operator/contact", data={"csrf": token, **CONTACT})
    assert saved.status_code == 303

    console = (await client.get("/operator?lang=en")).text.split('<footer class="bottom">')[1]
    assert CONTACT["status_en"] in console
    client.cookies.clear()
    for path in ("/", "/login", f"/{registered['slug']}", "/track", "/terms", "/no-such-page"):
        czech = (await client.get(path)).text.split('<footer class="bottom">')[1]
        assert CONTACT["status_cs"] in czech, path
        assert 'href="mailto:podpora@pistalka.example"' in czech, path
        assert 'href="tel:+420123456789"' in czech, path
        english = (await client.get(f"{path}?lang=en")).text.split('<footer class="bottom">')[1]
        assert CONTACT["status_en"] in english, path
        assert CONTACT["status_cs"] not in english, path


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status_cs", "Údržba\x1b[31m"),
        ("status_en", "Maintenance\u202e tonight"),
        ("status_en", "Line one\nLine two"),
        ("status_cs", "x" * 201),
        ("support_email", "not an address"),
        ("support_phone", "call us"),
    ],
)
async def test_a_contact_with_control_characters_or_too_long_is_refused(
    client: httpx.AsyncClient,
    totp_secret: str,  # noqa: F811 - the fixture
    sessionmaker: Sessionmaker,
    field: str,
    value: str,
) -> None:
    token = await _console_token(client, totp_secret)
    refused = await client.post(
        "/operator/contact?lang=en", data={"csrf": token, **CONTACT, field: value}
    )
    assert refused.status_code == 422
    async with sessionmaker() as session:
        assert await session.get(ServiceContact, 1) is None


async def test_the_organisations_mails_end_with_the_contact_the_whistleblowers_do_not(
    client: httpx.AsyncClient,
    totp_secret: str,  # noqa: F811 - the fixture
    sessionmaker: Sessionmaker,
    settings: Settings,
    smtp_server: SMTPServer,
) -> None:
    registered = await verified_organisation(client, sessionmaker)
    token = await _console_token(client, totp_secret)
    assert (await client.post("/operator/contact", data={"csrf": token, **CONTACT})).is_redirect
    await _clear_outbox(sessionmaker)

    # The receipt goes from the web process itself, with its SMTP settings.
    smtp_settings = settings.model_copy(update={"smtp_port": smtp_server.port})
    app = create_app(smtp_settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as sender:
        await submit(sender, registered["slug"], email="whistle@example.org")
    await app.state.engine.dispose()
    await _deliver(sessionmaker, settings, smtp_server)
    await smtp_server.wait_for(2)

    by_recipient = {message["To"]: _text(message) for message in smtp_server.messages}
    organisation = by_recipient[registered["email"]]
    footer = organisation.split("\n-- \n")[1]
    assert "podpora@pistalka.example, +420 123 456 789" in footer
    assert CONTACT["status_cs"] in footer
    assert CONTACT["status_en"] in footer
    whistleblower = by_recipient["whistle@example.org"]
    assert "podpora@pistalka.example" not in whistleblower
    assert "údržba" not in whistleblower.lower()


async def _incident(
    client: httpx.AsyncClient, token: str, organisation_id: str, detected: str, title: str
) -> httpx.Response:
    day, _, hour = detected.partition("T")
    return await client.post(
        "/operator/incidents?lang=en",
        data={
            "csrf": token,
            "title": title,
            "detected_on": day,
            "detected_time": hour,
            "description": "An encrypted backup was readable for two hours.",
            "organisations": [organisation_id],
            "notify_later": "1",
        },
    )


async def test_an_incident_not_notified_within_48_hours_is_overdue_until_notified(
    client: httpx.AsyncClient,
    totp_secret: str,  # noqa: F811 - the fixture
    sessionmaker: Sessionmaker,
    settings: Settings,
    smtp_server: SMTPServer,
) -> None:
    affected = await verified_organisation(client, sessionmaker)
    async with sessionmaker() as session:
        organisation_id = str(
            await session.scalar(
                select(Organisation.id).where(Organisation.slug == affected["slug"])
            )
        )
    await _clear_outbox(sessionmaker)
    token = await _console_token(client, totp_secret)
    # 49 and 47 hours ago, in Prague's time as the operator types it, to the minute.
    old = (utcnow() - timedelta(hours=49)).astimezone(PRAGUE)
    recent = (utcnow() - timedelta(hours=47)).astimezone(PRAGUE)
    for when, title in ((old, "Old exposure"), (recent, "Recent exposure")):
        recorded = await _incident(
            client, token, organisation_id, when.strftime("%Y-%m-%dT%H:%M"), title
        )
        assert recorded.status_code == 303

    console = (await client.get("/operator?lang=en")).text
    assert 'id="overdue-incidents"' in console
    overdue = console.split('id="overdue-incidents"')[1].split("</section>")[0]
    assert "Old exposure" in overdue
    assert "Recent exposure" not in overdue
    listed = console.split('id="incidents"')[1].split("</table>")[0]
    assert listed.count("overdue") == 1
    assert listed.count("waiting for notice") == 1
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxMail)) == 0
        waiting = IncidentNotice.notified_at.is_(None)
        assert await session.scalar(select(func.count()).where(waiting)) == 2

    rows = {part.split('"')[0]: part for part in listed.split('<tr id="incident-')[1:]}
    old_row = next(key for key, row in rows.items() if "Old exposure" in row)
    notified = await client.post(f"/operator/incidents/{old_row}/notify", data={"csrf": token})
    assert notified.status_code == 303
    await _deliver(sessionmaker, settings, smtp_server)
    assert [message["To"] for message in smtp_server.messages] == [affected["email"]]
    assert "Old exposure" in smtp_server.messages[0]["Subject"]
    assert 'id="overdue-incidents"' not in (await client.get("/operator?lang=en")).text
    again = await client.post(f"/operator/incidents/{old_row}/notify", data={"csrf": token})
    assert again.status_code == 409


async def test_an_incident_cannot_be_detected_in_the_future(
    client: httpx.AsyncClient,
    totp_secret: str,  # noqa: F811 - the fixture
    sessionmaker: Sessionmaker,
) -> None:
    affected = await verified_organisation(client, sessionmaker)
    async with sessionmaker() as session:
        organisation_id = await session.scalar(
            select(Organisation.id).where(Organisation.slug == affected["slug"])
        )
    token = await _console_token(client, totp_secret)
    tomorrow = deadlines.local_date(utcnow()) + timedelta(days=1)
    refused = await _incident(
        client, token, str(organisation_id), f"{tomorrow.isoformat()}T00:00", "Premonition"
    )
    assert refused.status_code == 422


async def test_markup_in_the_operators_texts_is_shown_as_text(
    client: httpx.AsyncClient,
    totp_secret: str,  # noqa: F811 - the fixture
) -> None:
    token = await _console_token(client, totp_secret)
    script = "<script>alert(1)</script>"
    assert (await _add(client, token, days=15, name=f"Evil {script}")).status_code == 303
    status = {**CONTACT, "status_en": f"Down {script}"}
    assert (await client.post("/operator/contact", data={"csrf": token, **status})).is_redirect
    for path in ("/sub-processors?lang=en", "/operator?lang=en"):
        page = (await client.get(path)).text
        assert script not in page, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, path
