"""What the database holds after registration, login and TOTP: no secret in the clear."""

import base64

import httpx
import pyotp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Base
from tests.factories import PASSWORD, login, register


async def dump_database(sessionmaker: async_sessionmaker[AsyncSession]) -> bytes:
    """Every value of every table, as bytes, the way a stolen backup would have them."""
    chunks: list[bytes] = []
    async with sessionmaker() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                for value in row:
                    chunks.append(value if isinstance(value, bytes) else str(value).encode())
    return b"\n".join(chunks)


def variants(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, raw.lower(), secret.replace("-", "").encode(), base64.b64encode(raw)]


async def test_database_holds_no_password_key_code_or_cookie(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    registered = await register(client, email="privacy@example.cz")
    await login(client, registered["email"])
    cookie = client.cookies["pistalka_session"]
    totp_secret = (await client.post("/api/v1/auth/totp")).json()["secret"]
    await client.post("/api/v1/auth/totp/confirm", json={"code": pyotp.TOTP(totp_secret).now()})

    dump = await dump_database(sessionmaker)

    secrets = [PASSWORD, registered["recovery_key"], cookie, totp_secret]
    for secret in secrets:
        for form in variants(secret):
            assert form not in dump, f"a secret is stored in the clear: {secret[:4]}…"
    # The verification mail (and its link) is sealed in the outbox.
    assert b"/verify/" not in dump
    assert b"Verify the notification address" not in dump
