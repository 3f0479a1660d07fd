import statistics
import time
from datetime import timedelta

import httpx
import pyotp
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.main import create_app
from app.models import LoginThrottle, MemberSession
from app.models.base import utcnow
from app.services.auth import slowdown_seconds
from tests.factories import PASSWORD, login, register

COOKIE = "pistalka_session"


async def test_login_sets_a_strict_http_only_session_cookie(client: httpx.AsyncClient) -> None:
    registered = await register(client)
    response = await login(client, registered["email"])

    assert response.status_code == 200
    assert response.json()["email"] == registered["email"]
    assert [o["slug"] for o in response.json()["organisations"]] == [registered["slug"]]
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain http in tests; see the https test below
    me = await client.get("/api/v1/auth/me")
    assert me.status_code == 200
    assert me.json()["totp_enabled"] is False


async def test_cookie_is_secure_and_host_only_behind_https(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    app = create_app(settings.model_copy(update={"public_url": "https://pistalka.example"}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://pistalka.example") as c:
        registered = await register(c)
        response = await login(c, registered["email"])
        assert response.status_code == 200
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("__Host-pistalka=")
        assert "Secure" in cookie
        assert "Strict-Transport-Security" in response.headers
        assert (await c.get("/api/v1/auth/me")).status_code == 200
    await app.state.engine.dispose()


async def test_logout_ends_the_session(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    registered = await register(client)
    await login(client, registered["email"])
    stolen_cookie = client.cookies[COOKIE]

    response = await client.post("/api/v1/auth/logout")
    assert response.status_code == 204
    assert (await client.get("/api/v1/auth/me")).status_code == 401
    client.cookies.set(COOKIE, stolen_cookie)
    assert (await client.get("/api/v1/auth/me")).status_code == 401
    async with sessionmaker() as session:
        assert await session.scalar(select(MemberSession)) is None


async def test_no_session_is_401_in_the_json_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "not_logged_in", "message": "Log in first."}}
    client.cookies.set(COOKIE, "forged-value")
    assert (await client.get("/api/v1/auth/me")).status_code == 401


async def test_expired_session_is_refused(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    registered = await register(client)
    await login(client, registered["email"])
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(MemberSession).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert (await client.get("/api/v1/auth/me")).status_code == 401


async def test_wrong_password_and_unknown_email_get_the_same_answer(
    client: httpx.AsyncClient,
) -> None:
    registered = await register(client)
    wrong_password = await login(client, registered["email"], "not the password")
    unknown = await login(client, "nobody@example.cz", "not the password")

    assert wrong_password.status_code == unknown.status_code == 401
    assert wrong_password.json() == unknown.json()
    assert "set-cookie" not in wrong_password.headers


async def test_unknown_email_takes_about_as_long_as_a_wrong_password(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # A cost at which Argon2id dominates the request, as in production.
    slow = settings.model_copy(update={"argon2_memory_kib": 16384, "argon2_iterations": 2})
    app = create_app(slow)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        registered = await register(c)

        async def timed(email: str) -> float:
            start = time.perf_counter()
            response = await login(c, email, "not the password")
            assert response.status_code == 401
            return time.perf_counter() - start

        # Interleaved, so a passing load on the machine weighs on both alike.
        samples = []
        for _ in range(5):
            samples.append((await timed(registered["email"]), await timed("nobody@example.cz")))
        known = statistics.median(k for k, _ in samples)
        unknown = statistics.median(u for _, u in samples)
    await app.state.engine.dispose()
    assert 0.5 < known / unknown < 2.0, (known, unknown)


def test_failed_logins_slow_down_then_cap(settings: Settings) -> None:
    delays = [slowdown_seconds(settings, n) for n in range(12)]
    assert delays[:3] == [0.0, 0.0, 0.0]
    assert all(a < b for a, b in zip(delays[3:7], delays[4:8], strict=True))
    assert max(delays) <= 8.0


async def test_repeated_failures_lock_the_account_even_for_the_right_password(
    client: httpx.AsyncClient, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    registered = await register(client)
    for _ in range(settings.login_lock_after):
        assert (await login(client, registered["email"], "wrong password")).status_code == 401

    locked = await login(client, registered["email"], PASSWORD)
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "rate_limited"
    assert int(locked.headers["Retry-After"]) > 60

    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(LoginThrottle).values(locked_until=utcnow() - timedelta(seconds=1))
        )
    assert (await login(client, registered["email"], PASSWORD)).status_code == 200
    async with sessionmaker() as session:
        assert await session.scalar(select(LoginThrottle)) is None  # success clears the count


async def test_unknown_emails_lock_the_same_way(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    for _ in range(settings.login_lock_after):
        assert (await login(client, "ghost@example.cz", "guess")).status_code == 401
    assert (await login(client, "ghost@example.cz", "guess")).status_code == 429


async def test_slowdown_is_applied_to_the_answer(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    registered = await register(client)
    for _ in range(5):
        await login(client, registered["email"], "wrong password")
    start = time.perf_counter()
    await login(client, registered["email"], "wrong password")
    assert time.perf_counter() - start >= slowdown_seconds(settings, 6)


async def _enable_totp(client: httpx.AsyncClient) -> pyotp.TOTP:
    setup = await client.post("/api/v1/auth/totp")
    assert setup.status_code == 201
    totp = pyotp.TOTP(setup.json()["secret"])
    assert setup.json()["otpauth_uri"].startswith("otpauth://totp/")
    confirm = await client.post("/api/v1/auth/totp/confirm", json={"code": totp.now()})
    assert confirm.status_code == 204
    return totp


async def test_totp_is_required_once_switched_on(client: httpx.AsyncClient) -> None:
    registered = await register(client)
    await login(client, registered["email"])
    totp = await _enable_totp(client)
    await client.post("/api/v1/auth/logout")

    missing = await login(client, registered["email"])
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "totp_required"
    wrong = await login(client, registered["email"], totp="000000")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_totp"
    # The code that confirmed the setup was spent; the next time step's code works.
    next_code = totp.at(utcnow() + timedelta(seconds=30))
    assert (await login(client, registered["email"], totp=next_code)).status_code == 200
    await client.post("/api/v1/auth/logout")
    replay = await login(client, registered["email"], totp=next_code)
    assert replay.status_code == 401


async def test_wrong_totp_confirmation_leaves_it_off(client: httpx.AsyncClient) -> None:
    registered = await register(client)
    await login(client, registered["email"])
    assert (await client.post("/api/v1/auth/totp")).status_code == 201
    response = await client.post("/api/v1/auth/totp/confirm", json={"code": "123456"})
    assert response.status_code == 401
    assert (await client.get("/api/v1/auth/me")).json()["totp_enabled"] is False


async def test_totp_can_be_switched_off_with_a_code(client: httpx.AsyncClient) -> None:
    registered = await register(client)
    await login(client, registered["email"])
    totp = await _enable_totp(client)
    code = totp.at(utcnow() + timedelta(seconds=30))
    assert (await client.post("/api/v1/auth/totp/disable", json={"code": code})).status_code == 204
    await client.post("/api/v1/auth/logout")
    assert (await login(client, registered["email"])).status_code == 200


@pytest.mark.parametrize("path", ["/api/v1/auth/logout", "/api/v1/auth/totp"])
async def test_cross_site_requests_are_refused(client: httpx.AsyncClient, path: str) -> None:
    registered = await register(client)
    await login(client, registered["email"])
    response = await client.post(path, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "cross_origin"
    assert (await client.get("/api/v1/auth/me")).status_code == 200


async def test_html_login_dashboard_and_logout(client: httpx.AsyncClient) -> None:
    registered = await register(client)
    assert (await client.get("/dashboard")).headers["location"] == "/login"

    response = await client.post(
        "/login?lang=en", data={"email": registered["email"], "password": PASSWORD}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard?lang=en"
    dashboard = await client.get("/dashboard?lang=en")
    assert dashboard.status_code == 200
    assert registered["name"] in dashboard.text
    assert "No reports yet." in dashboard.text
    assert "not verified yet" in dashboard.text

    csrf = dashboard.text.split('name="csrf" value="')[1].split('"')[0]
    assert (await client.post("/logout", data={"csrf": "forged"})).status_code == 403
    response = await client.post("/logout", data={"csrf": csrf})
    assert response.status_code == 303
    assert (await client.get("/dashboard")).status_code == 303


async def test_html_login_with_wrong_password_shows_the_error(client: httpx.AsyncClient) -> None:
    registered = await register(client)
    response = await client.post(
        "/login", data={"email": registered["email"], "password": "wrong password"}
    )
    assert response.status_code == 401
    assert "Nesprávný e-mail nebo heslo." in response.text


async def test_html_profile_switches_totp_on(client: httpx.AsyncClient) -> None:
    registered = await register(client)
    await client.post("/login", data={"email": registered["email"], "password": PASSWORD})
    profile = await client.get("/profile?lang=en")
    csrf = profile.text.split('name="csrf" value="')[1].split('"')[0]

    setup = await client.post("/profile/totp?lang=en", data={"csrf": csrf})
    assert setup.status_code == 200
    assert 'src="data:image/svg+xml' in setup.text
    secret = setup.text.split('<p class="key">')[1].split("<")[0].strip()
    confirm = await client.post(
        "/profile/totp/confirm?lang=en", data={"csrf": csrf, "code": pyotp.TOTP(secret).now()}
    )
    assert confirm.status_code == 303
    assert "Two-factor authentication is on." in (await client.get("/profile?lang=en")).text
