"""The one password rule: length and guessability, wherever a password is chosen."""

import asyncio
import io
import re

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import cli
from app.config import Settings
from app.models import Member, Operator
from app.services import mail, passwords
from tests.conftest import TEST_SECRET
from tests.factories import PASSWORD, login, organisation_data, register
from tests.smtp import SMTPServer

WEAK = ["aaaaaaaaaaaa", "1234567890", "password12", "heslo12345", " " * 10]
GUESSABLE = (
    "This password is too easy to guess. Use a longer phrase of several unusual words; avoid "
    "common words and passwords, names, dates, repeated characters and sequences."
)


def test_the_password_of_the_tests_passes_the_rule() -> None:
    assert passwords.weakness(PASSWORD, "dp1@example.cz", "Organisation 1 s.r.o.") is None


@pytest.mark.parametrize("password", ["milacek2020", "Sparta1234!", "zlaticko123", "podzim2025!"])
def test_common_czech_password_words_are_known(password: str) -> None:
    # Each scores 3 or 4 on zxcvbn's English lists alone.
    assert passwords.weakness(password) == GUESSABLE


def test_a_password_built_from_the_persons_own_details_is_refused() -> None:
    problem = passwords.weakness("novakova2024", "jana.novakova@example.cz", "Firma s.r.o.")
    assert problem is not None
    assert "your e-mail" in problem


@pytest.mark.parametrize("password", WEAK)
async def test_registration_refuses_a_guessable_password(
    client: httpx.AsyncClient, password: str
) -> None:
    response = await client.post("/api/v1/organisations", json=organisation_data(password=password))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "weak_password"
    assert error["field"] == "password"
    assert error["message"] == GUESSABLE


async def test_registration_page_explains_a_guessable_password(client: httpx.AsyncClient) -> None:
    data = organisation_data(password="heslo12345")
    response = await client.post("/register?lang=en", data={**data, "password_again": "heslo12345"})
    assert response.status_code == 422
    assert "This password is too easy to guess." in response.text


async def test_invitation_acceptance_refuses_a_guessable_password(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    smtp_server: SMTPServer,
) -> None:
    organisation = await register(client)
    await login(client, organisation["email"])
    invited = await client.post(
        f"/api/v1/organisations/{organisation['slug']}/members", json={"email": "new@example.cz"}
    )
    assert invited.status_code == 202
    await mail.deliver_due(
        sessionmaker, settings.model_copy(update={"smtp_port": smtp_server.port})
    )
    plain = smtp_server.messages[-1].get_body(("plain",))
    assert plain is not None
    token = re.search(r"/invite/(\S+)", plain.get_content())
    assert token is not None

    for password in WEAK:
        refused = await client.post(
            "/api/v1/invitations/accept", json={"token": token.group(1), "password": password}
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "weak_password"
    async with sessionmaker() as session:
        assert await session.scalar(select(Member).where(Member.email == "new@example.cz")) is None
    accepted = await client.post(
        "/api/v1/invitations/accept", json={"token": token.group(1), "password": PASSWORD}
    )
    assert accepted.status_code == 201


async def test_password_change_refuses_a_guessable_password(client: httpx.AsyncClient) -> None:
    organisation = await register(client)
    await login(client, organisation["email"])
    for password in WEAK:
        refused = await client.post(
            "/api/v1/auth/password",
            json={"current_password": PASSWORD, "new_password": password},
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["field"] == "new_password"
    await client.post("/api/v1/auth/logout")
    assert (await login(client, organisation["email"])).status_code == 200


async def test_the_operator_account_is_not_created_with_a_guessable_password(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PISTALKA_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("PISTALKA_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PISTALKA_SECRET_KEY", TEST_SECRET)
    monkeypatch.setattr("sys.stdin", io.StringIO("aaaaaaaaaaaaaaaa\n"))
    with pytest.raises(SystemExit) as exited:
        await asyncio.to_thread(cli.main, ["create-operator", "ops@example.cz", "--password-stdin"])
    assert exited.value.code != 0
    assert "too easy to guess" in capsys.readouterr().err
    async with sessionmaker() as session:
        assert await session.scalar(select(Operator)) is None
