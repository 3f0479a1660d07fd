import asyncio
import statistics
import threading
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
from app.services import keys
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


async def test_a_person_with_totp_still_logs_in_during_a_lock_with_password_and_code(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    registered = await register(client)
    await login(client, registered["email"])
    totp = await _enable_totp(client)
    await client.post("/api/v1/auth/logout")
    for _ in range(settings.login_lock_after):
        assert (await login(client, registered["email"], "wrong password")).status_code == 401

    # Whatever fails during the lock gets the lock's answer: it reveals no right password.
    code = totp.at(utcnow() + timedelta(seconds=30))
    for password, totp_code in ((PASSWORD, None), (PASSWORD, "000000"), ("wrong password", code)):
        refused = await login(client, registered["email"], password, totp=totp_code)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
    assert (await login(client, registered["email"], PASSWORD, totp=code)).status_code == 200


async def test_guesses_during_a_lock_do_not_prolong_it(
    client: httpx.AsyncClient, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    registered = await register(client)
    for _ in range(settings.login_lock_after):
        await login(client, registered["email"], "wrong password")
    async with sessionmaker() as session:
        locked_until = await session.scalar(select(LoginThrottle.locked_until))
    for _ in range(3):
        assert (await login(client, registered["email"], "wrong password")).status_code == 429
    async with sessionmaker() as session:
        assert await session.scalar(select(LoginThrottle.locked_until)) == locked_until


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


LOGINS = [
    ("/api/v1/auth/login", "json"),
    ("/login", "form"),
    ("/operator/login", "form"),
]


async def _try_login(client: httpx.AsyncClient, path: str, kind: str, email: str) -> httpx.Response:
    body = {"email": email, "password": "guess", "totp": "000000"}
    if kind == "json":
        return await client.post(path, json=body)
    return await client.post(path, data=body)


@pytest.mark.parametrize(("path", "kind"), LOGINS)
async def test_login_attempts_from_one_address_are_limited_whatever_the_email(
    settings: Settings, path: str, kind: str
) -> None:
    app = create_app(settings)
    budget = settings.login_attempts_per_10_minutes
    transport = httpx.ASGITransport(app=app, client=("192.0.2.1", 1234))
    other = httpx.ASGITransport(app=app, client=("192.0.2.2", 1234))
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
        httpx.AsyncClient(transport=other, base_url="http://testserver") as neighbour,
    ):
        for n in range(budget):
            # A different account each time: the per-account lock never comes into play.
            assert (
                await _try_login(client, path, kind, f"person{n}@example.cz")
            ).status_code == 401
        refused = await _try_login(client, path, kind, "someone.else@example.cz")
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
        if kind == "json":
            assert refused.json()["error"]["code"] == "rate_limited"
        else:
            assert "text/html" in refused.headers["content-type"]
            assert "Příliš mnoho pokusů z vašeho připojení" in refused.text
        # Another address has its own budget.
        assert (await _try_login(neighbour, path, kind, "person0@example.cz")).status_code == 401
    await app.state.engine.dispose()


async def test_the_login_pages_and_the_api_share_one_budget_per_address(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    for n in range(settings.login_attempts_per_10_minutes):
        path, kind = LOGINS[n % len(LOGINS)]
        assert (await _try_login(client, path, kind, f"p{n}@example.cz")).status_code == 401
    for path, kind in LOGINS:
        assert (await _try_login(client, path, kind, "x@example.cz")).status_code == 429


async def test_successful_logins_from_one_address_use_none_of_its_budget(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    registered = await register(client)
    for _ in range(settings.login_attempts_per_10_minutes + 5):
        assert (await login(client, registered["email"])).status_code == 200


async def test_a_lock_that_ran_out_forgets_the_failures_before_it(
    client: httpx.AsyncClient, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    registered = await register(client)
    for _ in range(settings.login_lock_after):
        assert (await login(client, registered["email"], "wrong password")).status_code == 401
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(LoginThrottle).values(locked_until=utcnow() - timedelta(seconds=1))
        )
    # One wrong guess after the lock ran out is one failure, not the eleventh: no new lock, so
    # a guess every quarter of an hour cannot keep the person out for good.
    assert (await login(client, registered["email"], "wrong password")).status_code == 401
    async with sessionmaker() as session:
        throttle = await session.scalar(select(LoginThrottle))
        assert throttle is not None
        assert throttle.failures == 1
        assert throttle.locked_until is None
    assert (await login(client, registered["email"], PASSWORD)).status_code == 200


async def test_failures_older_than_a_lock_would_last_are_forgotten(
    client: httpx.AsyncClient, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    registered = await register(client)
    for _ in range(settings.login_lock_after - 1):
        assert (await login(client, registered["email"], "wrong password")).status_code == 401
    async with sessionmaker() as session, session.begin():
        long_ago = utcnow() - timedelta(minutes=settings.login_lock_minutes + 1)
        await session.execute(update(LoginThrottle).values(last_failed_at=long_ago))
    assert (await login(client, registered["email"], "wrong password")).status_code == 401
    assert (await login(client, registered["email"], PASSWORD)).status_code == 200


async def test_concurrent_guesses_cannot_slip_past_the_lock(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    registered = await register(client)
    attempts = [
        login(client, registered["email"], f"guess {n}")
        for n in range(2 * settings.login_lock_after)
    ]
    answers = sorted(r.status_code for r in await asyncio.gather(*attempts))
    assert answers == [401] * settings.login_lock_after + [429] * settings.login_lock_after


@pytest.mark.filterwarnings("error::sqlalchemy.exc.SAWarning")
async def test_one_person_logging_in_twice_at_once_gets_two_sessions(
    client: httpx.AsyncClient,
) -> None:
    registered = await register(client)
    answers = await asyncio.gather(*(login(client, registered["email"]) for _ in range(4)))
    assert [r.status_code for r in answers] == [200] * 4


async def test_no_database_connection_is_held_while_the_password_is_hashed(
    settings: Settings,
) -> None:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    release = threading.Event()
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        registered = await register(client)
        # Both Argon2 slots busy: the login queues for one, as in a burst of logins.
        blockers = [loop.run_in_executor(keys._argon2_pool, release.wait) for _ in range(2)]
        try:
            attempt = asyncio.create_task(login(client, registered["email"]))
            async with asyncio.timeout(10):
                while keys._argon2_pool._work_queue.qsize() == 0:
                    await asyncio.sleep(0.01)
            assert app.state.engine.pool.checkedout() == 0
        finally:
            release.set()
            await asyncio.gather(*blockers)
        assert (await attempt).status_code == 200
    await app.state.engine.dispose()
