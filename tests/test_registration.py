import asyncio
import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import crypto
from app.config import Settings
from app.main import create_app
from app.models import Member, Membership, Organisation, OutboxMail
from app.models.base import utcnow
from app.schemas.organisation import RESERVED_SLUGS, OrganisationCreate, valid_ico
from app.services import housekeeping, keys, mail
from tests.conftest import make_settings
from tests.factories import PASSWORD, login, organisation_data, register
from tests.smtp import SMTPServer


@pytest.mark.parametrize("ico", ["26843820", "26262525", "05588600"])
def test_valid_ico_is_accepted(ico: str) -> None:
    assert valid_ico(ico)


@pytest.mark.parametrize(
    "ico", ["26843821", "2684382", "268438200", "2684382a", "２６８４３８２０"]
)
def test_invalid_ico_is_refused(ico: str) -> None:
    assert not valid_ico(ico)


@pytest.mark.parametrize("slug", ["abc", "firma-123", "a" * 40, "x1-y2"])
def test_valid_slugs(slug: str) -> None:
    assert OrganisationCreate(**organisation_data(slug=slug)).slug == slug


@pytest.mark.parametrize(
    "slug", ["ab", "a" * 41, "-abc", "abc-", "a--b", "ab_c", "čeština", "api", "track", "login"]
)
def test_invalid_or_reserved_slugs_are_refused(slug: str) -> None:
    with pytest.raises(ValueError, match="slug"):
        OrganisationCreate(**organisation_data(slug=slug))


@pytest.mark.parametrize("slug", ["cases", "register-of-reports", "organisations", "openapi"])
def test_the_pages_of_designated_persons_and_the_api_description_are_reserved(slug: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        OrganisationCreate(**organisation_data(slug=slug))


def test_every_top_level_route_of_the_app_is_a_reserved_slug(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, f"sqlite:///{tmp_path / 'unused.db'}"))
    segments = {
        (route.path or "").strip("/").split("/")[0] for route in iter_route_contexts(app.routes)
    }
    own = {segment for segment in segments if segment and not segment.startswith("{")}
    assert sorted(own - RESERVED_SLUGS) == [], "a new top-level route needs a reserved slug"


async def count(sessionmaker: async_sessionmaker[AsyncSession], model: type) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_registration_answers_slug_and_recovery_key(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = organisation_data(slug="nemocnice-brno", email="Poverenec@Example.CZ")
    response = await client.post("/api/v1/organisations", json=data)

    assert response.status_code == 201
    body = response.json()
    assert body["slug"] == "nemocnice-brno"
    assert crypto.normalise_recovery_key(body["recovery_key"]) is not None
    async with sessionmaker() as session:
        organisation = await session.scalar(select(Organisation))
        member = await session.scalar(select(Member))
        membership = await session.scalar(select(Membership))
    assert organisation is not None
    assert member is not None
    assert membership is not None
    assert organisation.email == "poverenec@example.cz" == member.email
    assert organisation.email_verified_at is None
    assert membership.organisation_id == organisation.id
    assert membership.member_id == member.id


async def test_recovery_key_and_grant_both_open_the_organisation_key(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    registered = await register(client)
    async with sessionmaker() as session:
        organisation = await session.scalar(select(Organisation))
        member = await session.scalar(select(Member))
        membership = await session.scalar(select(Membership))
    assert organisation is not None
    assert member is not None
    assert membership is not None
    assert membership.org_key_grant is not None
    probe = crypto.seal_to(organisation.public_key, b"probe", b"test")

    from_recovery = keys.open_with_recovery_key(
        registered["recovery_key"],
        organisation.recovery_wrapped_key,
        organisation.id,
        organisation.recovery_grant,
    )
    derived = await keys.derive_password_keys(
        PASSWORD, member.password_salt, crypto.Argon2Params.decode(member.password_params)
    )
    member_private = keys.unwrap_member_key(derived, member.id, member.wrapped_private_key)
    from_grant = keys.open_grant(
        membership.org_key_grant, member_private, organisation.id, member.id
    )

    assert crypto.open_with(from_recovery, probe, b"test") == b"probe"
    assert crypto.open_with(from_grant, probe, b"test") == b"probe"
    with pytest.raises(crypto.CryptoError):
        keys.open_with_recovery_key(
            crypto.new_recovery_key(),
            organisation.recovery_wrapped_key,
            organisation.id,
            organisation.recovery_grant,
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ico", "26843821"),
        ("slug", "api"),
        ("slug", "Bad Slug"),
        ("email", "not-an-email"),
        ("password", "short"),
        ("name", ""),
        ("address", "x" * 501),
    ],
)
async def test_bad_input_gets_422_naming_the_field(
    client: httpx.AsyncClient, field: str, value: str
) -> None:
    response = await client.post("/api/v1/organisations", json=organisation_data(**{field: value}))

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["field"] == field
    assert field in error["message"]


async def test_missing_field_and_unknown_field_are_refused(client: httpx.AsyncClient) -> None:
    data = organisation_data()
    del data["address"]
    response = await client.post("/api/v1/organisations", json=data)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "address"

    response = await client.post("/api/v1/organisations", json=organisation_data(admin=True))
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "admin"


async def test_taken_slug_gets_409_and_creates_nothing(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await register(client, slug="taken")
    response = await client.post("/api/v1/organisations", json=organisation_data(slug="taken"))

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "slug_taken"
    assert await count(sessionmaker, Organisation) == 1
    assert await count(sessionmaker, Member) == 1
    assert await count(sessionmaker, OutboxMail) == 1


async def test_a_taken_email_gets_the_same_answer_as_a_new_one(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    first = await client.post("/api/v1/organisations", json=organisation_data(email="new@x.cz"))
    again = organisation_data(email="NEW@x.cz", password="another long password")
    second = await client.post("/api/v1/organisations", json=again)

    assert first.status_code == second.status_code == 201
    assert first.json().keys() == second.json().keys()
    assert second.json()["slug"] == again["slug"]
    assert crypto.normalise_recovery_key(second.json()["recovery_key"]) is not None
    # The organisation's page looks like any new registration's: not verified yet.
    first_page = await client.get(f"/{first.json()['slug']}")
    second_page = await client.get(f"/{again['slug']}")
    assert first_page.status_code == second_page.status_code
    # The account is untouched and gains no organisation.
    assert await count(sessionmaker, Member) == 1
    assert await count(sessionmaker, Membership) == 1
    assert (await login(client, "new@x.cz", "another long password")).status_code == 401
    assert (await login(client, "new@x.cz")).status_code == 200


async def test_the_organisation_of_a_taken_email_is_deleted_after_a_week(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    owner = await register(client, email="owner@example.cz")
    await register(client, email="owner@example.cz", name="Fake Company s.r.o.")
    assert await count(sessionmaker, Organisation) == 2
    soon = utcnow() + timedelta(days=housekeeping.PLACEHOLDER_DAYS - 1)
    await housekeeping.forget_expired(sessionmaker, settings, now=soon)
    assert await count(sessionmaker, Organisation) == 2
    later = utcnow() + timedelta(days=housekeeping.PLACEHOLDER_DAYS + 1)
    await housekeeping.forget_expired(sessionmaker, settings, now=later)
    async with sessionmaker() as session:
        left = list(await session.scalars(select(Organisation.slug)))
    # The owner's own organisation, not verified either, stays: it has its designated person.
    assert left == [owner["slug"]]


async def test_the_owner_of_a_taken_email_is_told_of_the_attempt(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    smtp_server: SMTPServer,
) -> None:
    await register(client, email="owner@example.cz")
    await register(client, email="owner@example.cz", name="Fake Company s.r.o.")
    smtp_settings = settings.model_copy(update={"smtp_port": smtp_server.port})
    assert await mail.deliver_due(sessionmaker, smtp_settings) == 2
    verification, attempt = smtp_server.messages
    verification_body, attempt_body = (m.get_body(("plain",)) for m in smtp_server.messages)
    assert verification_body is not None
    assert attempt_body is not None
    assert "/verify/" in verification_body.get_content()
    assert attempt["To"] == "owner@example.cz"
    assert attempt["Subject"].endswith("Someone tried to register with your address")
    text = attempt_body.get_content()
    assert "Fake Company s.r.o." in text
    assert "/verify/" not in text


async def test_registrations_are_limited_per_address_on_the_page_and_the_api_together(
    settings: Settings,
) -> None:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.1", 1234))
    other = httpx.ASGITransport(app=app, client=("192.0.2.2", 1234))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
        httpx.AsyncClient(transport=other, base_url="http://testserver") as neighbour,
    ):
        for _ in range(settings.registrations_per_hour - 1):
            await register(client)
        page = organisation_data()
        answer = await client.post("/register", data={**page, "password_again": PASSWORD})
        assert answer.status_code == 201
        refused = await client.post("/api/v1/organisations", json=organisation_data())
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) > 0
        page = organisation_data()
        refused_page = await client.post("/register", data={**page, "password_again": PASSWORD})
        assert refused_page.status_code == 429
        assert "text/html" in refused_page.headers["content-type"]
        assert int(refused_page.headers["Retry-After"]) > 0
        await register(neighbour)
    await app.state.engine.dispose()


async def test_concurrent_registrations_of_one_slug_create_one_organisation(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    responses = await asyncio.gather(
        *(
            client.post("/api/v1/organisations", json=organisation_data(slug="race"))
            for _ in range(4)
        )
    )

    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
    assert await count(sessionmaker, Organisation) == 1
    assert await count(sessionmaker, Member) == 1
    assert await count(sessionmaker, OutboxMail) == 1


async def _deliver_verification(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, smtp_server: object
) -> str:
    smtp_settings = settings.model_copy(update={"smtp_port": smtp_server.port})  # type: ignore[attr-defined]
    assert await mail.deliver_due(sessionmaker, smtp_settings) == 1
    message = smtp_server.messages[-1]  # type: ignore[attr-defined]
    body = message.get_body(("plain",)).get_content()
    match = re.search(r"http://testserver(/verify/\S+)", body)
    assert match is not None, body
    return match.group(1)


async def test_verification_mail_link_verifies_the_address_once(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    smtp_server: object,
) -> None:
    registered = await register(client, email="verify@example.cz")
    path = await _deliver_verification(sessionmaker, settings, smtp_server)
    message = smtp_server.messages[-1]  # type: ignore[attr-defined]
    assert message["To"] == "verify@example.cz"
    assert registered["recovery_key"] not in message.as_string()

    response = await client.get(path)
    assert response.status_code == 200
    async with sessionmaker() as session:
        organisation = await session.scalar(select(Organisation))
    assert organisation is not None
    assert organisation.email_verified_at is not None
    assert (await client.get(path)).status_code == 404


async def test_unknown_verification_token_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/verify/" + "A" * 43)).status_code == 404
    assert (await client.get("/verify/short")).status_code == 404


async def test_form_says_unverified_organisation_cannot_receive_reports(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    smtp_server: object,
) -> None:
    registered = await register(client)
    response = await client.get(f"/{registered['slug']}?lang=en")
    assert response.status_code == 409
    assert "cannot receive reports yet" in response.text

    await client.get(await _deliver_verification(sessionmaker, settings, smtp_server))
    response = await client.get(f"/{registered['slug']}?lang=en")
    assert response.status_code == 409  # § 9: who the designated persons are is not published
    assert "has not published who its designated persons are" in response.text
    refused = await client.post(
        f"/api/v1/public/{registered['slug']}/reports", json={"description": "Too early."}
    )
    assert refused.json()["error"]["code"] == "no_designated_persons_published"

    assert (await login(client, registered["email"])).status_code == 200
    dashboard = (await client.get("/dashboard?lang=en")).text
    assert f'id="todo-designated-persons-{registered["slug"]}"' in dashboard
    settings_page = (await client.get(f"/organisations/{registered['slug']}/settings")).text
    assert 'id="designated-persons-missing"' in settings_page
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(Organisation).values(info_designated_persons="Jana Příslušná, 601 234 567")
        )
    response = await client.get(f"/{registered['slug']}?lang=en")
    assert response.status_code == 200
    assert registered["name"] in response.text
    dashboard = (await client.get("/dashboard?lang=en")).text
    assert "todo-designated-persons" not in dashboard


async def test_unknown_organisation_form_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/nobody-here")).status_code == 404


async def test_registration_page_shows_the_recovery_key_once(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    assert (await client.get("/register")).status_code == 200
    data = organisation_data(slug="web-form")
    response = await client.post(
        "/register?lang=en", data={**data, "password_again": data["password"]}
    )

    assert response.status_code == 201
    key = re.search(r'id="recovery-key">([^<]+)<', response.text)
    assert key is not None
    assert crypto.normalise_recovery_key(key.group(1)) is not None
    assert "only way back to your reports" in response.text
    assert await count(sessionmaker, Organisation) == 1


async def test_registration_page_marks_bad_fields_in_czech(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    data = organisation_data(ico="26843821")
    response = await client.post("/register", data={**data, "password_again": "different!!"})

    assert response.status_code == 422
    assert "kontrolní číslicí" in response.text  # the IČO hint, in Czech
    assert "Hesla se neshodují" in response.text
    assert data["name"] in response.text  # what was typed is kept
    assert await count(sessionmaker, Organisation) == 0
