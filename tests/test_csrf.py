"""Cross-site request forgery: every state-changing HTML form, listed from the app's routes.

A designated person's forms need the token bound to their session; every form, the public
ones too, refuses a request sent from another site's page (its Origin header).
"""

import json
import re
from pathlib import Path

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.bodylimit import FILE_ENDPOINTS
from app.config import Settings
from app.main import create_app
from app.models import AuditEvent, CaseNote
from tests.conftest import make_settings
from tests.factories import PASSWORD, login, register, verified_organisation
from tests.test_authz import (
    IDENTITIES,
    MATRIX,
    Caller,
    World,
    _filled,
    _world,
    app_routes,
)

Sessionmaker = async_sessionmaker[AsyncSession]
# Forms anyone may send without a session: no token to check, but the Origin still is.
PUBLIC_FORMS = {
    "/login",
    "/operator/login",
    "/register",
    "/recovery",
    "/invite/{token}",
    "/track",
    "/track/messages",
    "/track/meeting",
    "/track/record-comments",
    "/track/files/{attachment_id}",
    "/{slug}",
}


def html_forms(tmp_path: Path) -> list[str]:
    app = create_app(make_settings(tmp_path, f"sqlite:///{tmp_path / 'unused.db'}"))
    return sorted(
        path
        for method, path in app_routes(app)
        if method == "POST" and not path.startswith("/api/")
    )


def _form(path: str, world: World, caller: Caller) -> dict[str, str]:
    call = MATRIX[("POST", path)]
    return {k: _filled(v, world, caller) for k, v in (call.form or {}).items()}


def _url(path: str, world: World, caller: Caller) -> str:
    query = MATRIX[("POST", path)].query
    url = _filled(path, world, caller)
    if query:
        url += "?" + "&".join(f"{k}={_filled(v, world, caller)}" for k, v in query.items())
    return url


async def _events(sessionmaker: Sessionmaker) -> int:
    async with sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(AuditEvent)) or 0


async def test_member_forms_refuse_a_missing_a_wrong_or_another_sessions_token(
    tmp_path: Path, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    world = await _world(client, sessionmaker)
    other = await IDENTITIES["dp_b"](client, world)
    forms = [path for path in html_forms(tmp_path) if path not in PUBLIC_FORMS]
    assert "/cases/{case_id}/notes" in forms
    assert "/operator/organisations/{organisation_id}/block" in forms
    accepted = []
    for path in forms:
        # The operator's forms need the operator's token; a designated person's is foreign there.
        identity = "operator" if path.startswith("/operator/") else "dp_a"
        for token in (None, "forged-" + "x" * 36, other.csrf):
            client.cookies.clear()
            caller = await IDENTITIES[identity](client, world)
            before = await _events(sessionmaker)
            data = _form(path, world, caller)
            if token is not None:
                data["csrf"] = token
            response = await client.post(_url(path, world, caller), data=data)
            if response.status_code != 403 or await _events(sessionmaker) != before:
                accepted.append(f"{path} with token {token!r}: {response.status_code}")
    assert accepted == []


async def test_every_form_refuses_a_request_from_another_sites_page(
    tmp_path: Path, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    world = await _world(client, sessionmaker)
    accepted = []
    for path in html_forms(tmp_path):
        for origin in ("https://evil.example", "http://testserver.evil.example"):
            client.cookies.clear()
            caller = await IDENTITIES["dp_a"](client, world)
            data = {**_form(path, world, caller), "csrf": caller.csrf, "code": world.code}
            response = await client.post(
                _url(path, world, caller), data=data, headers={"Origin": origin}
            )
            if response.status_code != 403:
                accepted.append(f"{path} from {origin}: {response.status_code}")
    assert accepted == []
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(CaseNote)) == 0


async def test_a_sandboxed_frame_cannot_post_a_designated_persons_form(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    world = await _world(client, sessionmaker)
    caller = await IDENTITIES["dp_a"](client, world)
    response = await client.post(
        f"/cases/{world.case}/notes",
        data={"body": "Planted.", "csrf": caller.csrf},
        headers={"Origin": "null"},
    )
    assert response.status_code == 403


def api_changes(tmp_path: Path, *, with_files: bool = True) -> list[tuple[str, str]]:
    """The JSON API's routes that change something; without those taking files if asked."""
    app = create_app(make_settings(tmp_path, f"sqlite:///{tmp_path / 'unused.db'}"))
    taking_files = {
        route.path for route in iter_route_contexts(app.routes) if route.endpoint in FILE_ENDPOINTS
    }
    return sorted(
        (method, path)
        for method, path in app_routes(app)
        if method in {"POST", "PUT", "PATCH", "DELETE"}
        and path.startswith("/api/")
        and (with_files or path not in taking_files)
    )


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_the_api_acts_only_on_json_not_on_what_another_sites_form_can_send(
    tmp_path: Path, client: httpx.AsyncClient, sessionmaker: Sessionmaker, content_type: str
) -> None:
    world = await _world(client, sessionmaker)
    # Routes that take files accept multipart, from our own pages' Origin only (see above).
    changes = api_changes(tmp_path, with_files=not content_type.startswith("multipart"))
    assert ("POST", "/api/v1/auth/logout") in changes
    assert ("DELETE", "/api/v1/cases/{case_id}/legal-hold") in changes
    acted = []
    for method, path in changes:
        client.cookies.clear()
        caller = await IDENTITIES["dp_a"](client, world)
        before = await _events(sessionmaker)
        call = MATRIX[(method, path)]
        body = json.dumps(call.json if call.json is not None else {})
        if content_type.startswith("multipart"):
            body = f'--x\r\nContent-Disposition: form-data; name="body"\r\n\r\n{body}\r\n--x--\r\n'
            content_type = "multipart/form-data; boundary=x"
        response = await client.request(
            method,
            _filled(path, world, caller),
            content=body.encode(),
            headers={**caller.headers, "Content-Type": content_type},
        )
        if response.status_code != 415 or await _events(sessionmaker) != before:
            acted.append(f"{method} {path}: {response.status_code}")
        elif response.json()["error"]["code"] != "unsupported_media_type":
            acted.append(f"{method} {path}: {response.text}")
    assert acted == []
    assert (await client.get("/api/v1/auth/me")).status_code == 200


async def test_files_may_go_only_to_api_routes_that_take_files(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    organisation = await verified_organisation(client, sessionmaker)
    report = await client.post(
        f"/api/v1/public/{organisation['slug']}/reports",
        data={"description": "Invoices for work never done."},
        files={"files": ("invoice.txt", b"invoice 2026/17")},
    )
    assert report.status_code == 201
    await login(client, organisation["email"])
    logout = await client.post(
        "/api/v1/auth/logout", data={"x": "y"}, files={"files": ("a.txt", b"a")}
    )
    assert logout.status_code == 415
    assert (await client.get("/api/v1/auth/me")).status_code == 200


def _cookie_attributes(header: str) -> dict[str, str]:
    name_value, *attributes = [part.strip() for part in header.split(";")]
    parsed = {"name": name_value.split("=", 1)[0]}
    for attribute in attributes:
        key, _, value = attribute.partition("=")
        parsed[key.lower()] = value
    return parsed


async def test_the_login_page_sets_a_strict_http_only_cookie(client: httpx.AsyncClient) -> None:
    registered = await register(client)
    response = await client.post(
        "/login", data={"email": registered["email"], "password": PASSWORD}
    )
    assert response.status_code == 303
    cookie = _cookie_attributes(response.headers["set-cookie"])
    assert cookie["name"] == "pistalka_session"
    assert "httponly" in cookie
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/"
    assert "domain" not in cookie


@pytest.mark.parametrize("via", ["page", "api"])
async def test_behind_https_the_cookie_is_secure_host_only_and_prefixed(
    via: str, settings: Settings
) -> None:
    app = create_app(settings.model_copy(update={"public_url": "https://pistalka.example"}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://pistalka.example") as c:
        registered = await register(c)
        if via == "page":
            response = await c.post(
                "/login", data={"email": registered["email"], "password": PASSWORD}
            )
        else:
            response = await login(c, registered["email"])
        assert response.status_code in (200, 303)
        cookie = _cookie_attributes(response.headers["set-cookie"])
        assert cookie["name"] == "__Host-pistalka"
        assert "secure" in cookie
        assert "httponly" in cookie
        assert cookie["samesite"].lower() == "strict"
        assert cookie["path"] == "/"
        assert "domain" not in cookie
        # The token of the pages is not the cookie: a page never shows the session secret.
        dashboard = await c.get("/dashboard")
        assert dashboard.status_code == 200
        session_secret = c.cookies["__Host-pistalka"]
        assert session_secret not in dashboard.text
        assert re.search(r'name="csrf" value="[^"]{20,}"', dashboard.text)
    await app.state.engine.dispose()
