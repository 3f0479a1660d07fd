"""Who may call what: every route of the app, every identity, the expected status.

The routes are listed from the app itself, so a new route without an entry here fails
`test_every_route_has_an_entry_in_the_matrix`. Another organisation's resources answer 404,
never 403: we do not confirm that they exist.
"""

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.deps import operator_cookie_name
from app.main import create_app
from app.models import Attachment, Member, Organisation, Report
from app.models.base import utcnow
from app.services import deadlines, operator
from tests.conftest import make_settings
from tests.factories import PASSWORD, login, on_plan, verified_organisation

Sessionmaker = async_sessionmaker[AsyncSession]
LOGIN = "login"  # a page that sends the visitor to /login
OPERATOR_LOGIN = "operator login"  # a page that sends the visitor to /operator/login
REASON = "Checking who may read this case"


@dataclass
class World:
    """Organisations A and B, A's case with a file, and the whistleblower's code of it."""

    a: dict[str, Any]
    b: dict[str, Any]
    case: str = ""
    file: str = ""
    member_a: str = ""
    code: str = ""
    organisation_a: str = ""
    operator_cookie: str = ""


@dataclass
class Caller:
    """What an identity brings to a request: cookies (in the client), headers, form fields."""

    headers: dict[str, str] = field(default_factory=dict)
    csrf: str = ""
    code: str = ""


Identity = Callable[[httpx.AsyncClient, World], Awaitable[Caller]]


async def _anonymous(client: httpx.AsyncClient, world: World) -> Caller:
    return Caller()


async def _whistleblower(client: httpx.AsyncClient, world: World) -> Caller:
    return Caller(headers={"X-Tracking-Code": world.code}, code=world.code)


def _designated_person(organisation: str) -> Identity:
    async def identity(client: httpx.AsyncClient, world: World) -> Caller:
        email = getattr(world, organisation)["email"]
        # A fresh session for every request: a logout or a password change tested before
        # must not decide the next answer.
        assert (await login(client, email)).status_code == 200
        page = await client.get("/dashboard")
        match = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert match is not None, "the dashboard carries the CSRF token"
        headers = {"X-Access-Reason": REASON}
        # Opened once in the session, as a person does before acting on a case.
        await client.get(f"/api/v1/cases/{world.case}", headers=headers)
        return Caller(headers=headers, csrf=match.group(1))

    return identity


async def _operator(client: httpx.AsyncClient, world: World) -> Caller:
    # The session opened once for the world (a TOTP code is accepted once); its cookie.
    client.cookies.set(operator_cookie_name(client_settings(client)), world.operator_cookie)
    page = await client.get("/operator")
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match is not None, "the console carries the CSRF token"
    return Caller(csrf=match.group(1))


# A new kind of user is one more entry here and one more key in the expectation helpers below.
IDENTITIES: dict[str, Identity] = {
    "anonymous": _anonymous,
    "whistleblower": _whistleblower,
    "dp_a": _designated_person("a"),
    "dp_b": _designated_person("b"),
    "operator": _operator,
}


def member_api(ok: int, other_org: int = 404) -> dict[str, int | str]:
    """JSON API of the designated persons; `other_org` is B's person on A's resource.

    The operator gets 403 on every one of them: no access to any organisation's data."""
    return {"anonymous": 401, "whistleblower": 401, "dp_a": ok, "dp_b": other_org, "operator": 403}


def member_page(ok: int | str, other_org: int | str = 404) -> dict[str, int | str]:
    return {
        "anonymous": LOGIN,
        "whistleblower": LOGIN,
        "dp_a": ok,
        "dp_b": other_org,
        "operator": 403,
    }


def operator_page(ok: int | str) -> dict[str, int | str]:
    """The operator's console: everyone else is sent to the operator's login."""
    return {**dict.fromkeys(IDENTITIES, OPERATOR_LOGIN), "operator": ok}


def everyone(status: int) -> dict[str, int | str]:
    return dict.fromkeys(IDENTITIES, status)


def code_holder(ok: int, others: int) -> dict[str, int | str]:
    return {**dict.fromkeys(IDENTITIES, others), "whistleblower": ok}


@dataclass(frozen=True)
class Call:
    expect: dict[str, int | str]
    query: dict[str, str] = field(default_factory=dict)
    json: Any = None
    form: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes]] | None = None


def _filled(template: str, world: World, caller: Caller) -> str:
    return (
        template.replace("{slug}", world.a["slug"])
        .replace("{case_id}", world.case)
        .replace("{attachment_id}", world.file)
        .replace("{member_id}", world.member_a)
        .replace("{organisation_id}", world.organisation_a)
        .replace("{invoice_id}", NO_SUCH_ID)
        .replace("{order_id}", NO_SUCH_ID)
        .replace("{sub_processor_id}", NO_SUCH_ID)
        .replace("{incident_id}", NO_SUCH_ID)
        .replace("{token}", "no-such-token")
        .replace("{code}", caller.code or "NO-SUCH-CODE")
    )


NO_SUCH_ID = "00000000-0000-4000-8000-000000000000"
OPERATOR_PASSWORD = "operator password 2026"  # noqa: S105 - the test's own account
TERMS_EFFECTIVE = (deadlines.local_date(utcnow()) + timedelta(days=20)).isoformat()


def client_settings(client: httpx.AsyncClient) -> Settings:
    settings: Settings = client._transport.app.state.settings  # type: ignore[attr-defined]
    return settings


BODY = {"body": "A question for the whistleblower."}
SETTINGS = {
    "accepts_anonymous": True,
    "only_own_people": False,
    "embed_origins": [],
    "info_how_to_report": "Use the form.",
    "info_designated_persons": "Jana Nováková",
}
RECORDED = {"description": "Told us by telephone.", "channel": "telephone"}

# In order: calls that change what later calls see (decision, close, leaving) come last.
MATRIX: dict[tuple[str, str], Call] = {
    # The public: the service, the form, registration, verification, recovery.
    ("GET", "/healthz"): Call(everyone(200)),
    # Every identity here calls from the loopback address, which may read the metrics.
    ("GET", "/metrics"): Call(everyone(200)),
    ("GET", "/"): Call(everyone(200)),
    ("GET", "/register"): Call(everyone(200)),
    ("GET", "/terms"): Call(everyone(200)),
    ("GET", "/pricing"): Call(everyone(200)),
    ("GET", "/sub-processors"): Call(everyone(200)),
    # No card gateway is configured here: every notification is for an unknown payment.
    ("GET", "/api/v1/payments/gopay"): Call(everyone(404), query={"id": "1"}),
    ("POST", "/register"): Call(everyone(422), form={"slug": ""}),
    ("GET", "/verify/{token}"): Call(everyone(404)),
    ("GET", "/{slug}"): Call(everyone(200)),
    ("GET", "/{slug}/info"): Call(everyone(200)),
    ("POST", "/{slug}"): Call(everyone(422), form={"description": ""}),
    ("POST", "/api/v1/organisations"): Call(everyone(422), json={}),
    ("GET", "/api/v1/public/{slug}/designated-persons"): Call(everyone(200)),
    ("POST", "/api/v1/public/{slug}/reports"): Call(
        everyone(201), json={"description": "Another report."}
    ),
    ("GET", "/login"): Call({**everyone(200), "dp_a": 303, "dp_b": 303}),
    ("GET", "/operator/login"): Call({**everyone(200), "operator": 303}),
    ("POST", "/operator/login"): Call(
        everyone(401), form={"email": "nobody@example.cz", "password": "x", "totp": "000000"}
    ),
    ("POST", "/login"): Call(everyone(401), form={"email": "nobody@example.cz", "password": "x"}),
    ("POST", "/api/v1/auth/login"): Call(
        everyone(401), json={"email": "nobody@example.cz", "password": "wrong password"}
    ),
    ("GET", "/recovery"): Call(everyone(200)),
    ("POST", "/recovery"): Call(everyone(422), form={"organisation": "nobody"}),
    ("POST", "/api/v1/recovery"): Call(
        everyone(422),
        json={
            "organisation": "nobody",
            "email": "nobody@example.cz",
            "recovery_key": "X" * 20,
            "new_password": "a new password 123",
        },
    ),
    ("GET", "/invite/{token}"): Call(everyone(404)),
    ("POST", "/invite/{token}"): Call(everyone(404), form={"password": "p" * 12}),
    ("POST", "/api/v1/invitations/accept"): Call(
        everyone(422), json={"token": "no-such-token", "password": "a new password 123"}
    ),
    # The whistleblower: the tracking code is the only key.
    ("GET", "/track"): Call(everyone(200)),
    ("POST", "/track"): Call(code_holder(200, 404), form={}),
    # An old tracking link only fills the code into the form: it opens nothing by itself.
    ("GET", "/track/{code}"): Call(everyone(200)),
    ("GET", "/{slug}/track"): Call(everyone(200)),
    ("POST", "/track/messages"): Call(code_holder(200, 404), form={"body": "More facts."}),
    # A report from the web form has no record to comment on.
    ("POST", "/track/record-comments"): Call(code_holder(409, 404), form={"body": "Accurate."}),
    ("POST", "/track/files/{attachment_id}"): Call(code_holder(200, 404), form={}),
    ("GET", "/api/v1/public/reports/self"): Call(code_holder(200, 422)),
    ("POST", "/api/v1/public/reports/self/messages"): Call(
        code_holder(201, 422), json={"body": "More facts."}
    ),
    ("GET", "/api/v1/public/reports/self/files/{attachment_id}"): Call(code_holder(200, 422)),
    # A report from the web form has no record to comment on.
    ("POST", "/api/v1/public/reports/self/record-comments"): Call(
        code_holder(409, 422), json={"body": "The record is accurate."}
    ),
    # The designated person's own account: any logged-in person may use their own.
    ("GET", "/api/v1/auth/me"): Call(member_api(200, other_org=200)),
    ("POST", "/api/v1/auth/totp"): Call(member_api(201, other_org=201)),
    ("POST", "/api/v1/auth/totp/confirm"): Call(
        member_api(401, other_org=401), json={"code": "000000"}
    ),
    ("POST", "/api/v1/auth/totp/disable"): Call(
        member_api(409, other_org=409), json={"code": "000000"}
    ),
    ("POST", "/api/v1/auth/password"): Call(
        member_api(204, other_org=204),
        json={"current_password": PASSWORD, "new_password": PASSWORD},
    ),
    ("POST", "/api/v1/auth/logout"): Call(member_api(204, other_org=204)),
    ("GET", "/dashboard"): Call(member_page(200, other_org=200)),
    ("GET", "/profile"): Call(member_page(200, other_org=200)),
    ("POST", "/profile/totp"): Call(member_page(200, other_org=200), form={}),
    ("POST", "/profile/totp/confirm"): Call(
        member_page(401, other_org=401), form={"code": "000000"}
    ),
    ("POST", "/profile/totp/disable"): Call(
        member_page(409, other_org=409), form={"code": "000000"}
    ),
    ("POST", "/profile/password"): Call(
        member_page(303, other_org=303),
        form={"current_password": PASSWORD, "new_password": PASSWORD},
    ),
    # No new terms are announced in this world, so A's person gets the same 404 as B's.
    ("POST", "/organisations/{slug}/terms"): Call(member_page(404), form={"version": "2"}),
    ("POST", "/logout"): Call(member_page(LOGIN, other_org=LOGIN), form={}),
    # The organisation's cases.
    ("GET", "/api/v1/cases"): Call(member_api(200), query={"organisation": "{slug}"}),
    ("POST", "/api/v1/cases"): Call(
        member_api(201), query={"organisation": "{slug}"}, json=RECORDED
    ),
    ("GET", "/api/v1/cases/{case_id}"): Call(member_api(200)),
    ("GET", "/api/v1/cases/{case_id}/files/{attachment_id}"): Call(member_api(200)),
    ("POST", "/api/v1/cases/{case_id}/acknowledge"): Call(member_api(200), json={}),
    ("POST", "/api/v1/cases/{case_id}/extend"): Call(member_api(200), json={"reason": "Complex."}),
    ("POST", "/api/v1/cases/{case_id}/messages"): Call(member_api(201), json=BODY),
    ("POST", "/api/v1/cases/{case_id}/notes"): Call(member_api(201), json=BODY),
    # Sharing a case every designated person reads already: 409, the check of access passed.
    ("POST", "/api/v1/cases/{case_id}/recipients"): Call(
        member_api(409), json={"member_id": "00000000-0000-0000-0000-000000000001"}
    ),
    ("POST", "/api/v1/cases/{case_id}/record-comments"): Call(member_api(409), json=BODY),
    ("POST", "/api/v1/cases/{case_id}/identity"): Call(member_api(200), json={"name": "Jan"}),
    ("POST", "/api/v1/cases/{case_id}/meeting"): Call(
        member_api(409), json={"when": "2030-01-01T10:00", "place": "Room 1"}
    ),
    ("POST", "/api/v1/cases/{case_id}/triage"): Call(member_api(200), json={}),
    ("POST", "/api/v1/cases/{case_id}/summary"): Call(
        member_api(200), json={"summary": "Invoices paid twice."}
    ),
    ("POST", "/api/v1/cases/{case_id}/legal-hold"): Call(
        member_api(200), json={"reason": "A court asked us to keep it."}
    ),
    ("DELETE", "/api/v1/cases/{case_id}/legal-hold"): Call(member_api(200)),
    ("GET", "/cases"): Call(member_page(200), query={"organisation": "{slug}"}),
    ("GET", "/cases/new"): Call(member_page(200), query={"organisation": "{slug}"}),
    ("POST", "/cases/new"): Call(member_page(201), query={"organisation": "{slug}"}, form=RECORDED),
    ("GET", "/cases/{case_id}"): Call(member_page(200)),
    ("POST", "/cases/{case_id}/open"): Call(member_page(303), form={"reason": REASON}),
    ("GET", "/cases/{case_id}/files/{attachment_id}"): Call(member_page(200)),
    ("POST", "/cases/{case_id}/acknowledge"): Call(member_page(409), form={}),
    ("POST", "/cases/{case_id}/extend"): Call(member_page(303), form={"reason": "Complex."}),
    ("POST", "/cases/{case_id}/messages"): Call(member_page(303), form=BODY),
    ("POST", "/cases/{case_id}/notes"): Call(member_page(303), form=BODY),
    ("POST", "/cases/{case_id}/recipients"): Call(
        member_page(409), form={"member_id": "00000000-0000-0000-0000-000000000001"}
    ),
    ("POST", "/cases/{case_id}/record-comments"): Call(member_page(409), form=BODY),
    ("POST", "/cases/{case_id}/triage"): Call(member_page(303), form={}),
    ("POST", "/cases/{case_id}/summary"): Call(
        member_page(303), form={"summary": "Invoices paid twice."}
    ),
    ("POST", "/cases/{case_id}/identity"): Call(member_page(303), form={"name": "Jan"}),
    ("POST", "/cases/{case_id}/meeting"): Call(
        member_page(409), form={"when": "2030-01-01T10:00", "place": "Room 1"}
    ),
    ("POST", "/cases/{case_id}/legal-hold"): Call(
        member_page(303), form={"reason": "A court asked us to keep it."}
    ),
    ("POST", "/cases/{case_id}/legal-hold/release"): Call(member_page(303), form={}),
    ("POST", "/api/v1/cases/{case_id}/decision"): Call(
        member_api(200), json={"outcome": "valid", "message": "We found it valid."}
    ),
    ("POST", "/cases/{case_id}/decision"): Call(
        member_page(409), form={"outcome": "valid", "message": "Again."}
    ),
    ("POST", "/api/v1/cases/{case_id}/measures"): Call(member_api(200), json=BODY),
    ("POST", "/cases/{case_id}/measures"): Call(member_page(303), form=BODY),
    ("POST", "/api/v1/cases/{case_id}/close"): Call(member_api(200)),
    ("POST", "/cases/{case_id}/close"): Call(member_page(409), form={}),
    # The register, statistics, audit trail.
    ("GET", "/api/v1/register"): Call(member_api(200), query={"organisation": "{slug}"}),
    ("GET", "/register-of-reports"): Call(member_page(200, other_org=200)),
    ("POST", "/register-of-reports"): Call(
        member_page(200), form={"organisation": "{slug}", "reason": REASON, "output": "html"}
    ),
    ("GET", "/organisations/{slug}/statistics"): Call(member_page(200)),
    ("GET", "/organisations/{slug}/audit"): Call(member_page(200)),
    # The organisation: settings, team, export, leaving the service.
    ("GET", "/api/v1/organisations/{slug}/settings"): Call(member_api(200)),
    ("PUT", "/api/v1/organisations/{slug}/settings"): Call(member_api(200), json=SETTINGS),
    ("GET", "/organisations/{slug}/settings"): Call(member_page(200)),
    ("POST", "/organisations/{slug}/settings"): Call(
        member_page(303), form={"accepts_anonymous": "on", "info_how_to_report": "Use the form."}
    ),
    ("GET", "/api/v1/organisations/{slug}/members"): Call(member_api(200)),
    ("POST", "/api/v1/organisations/{slug}/members"): Call(
        member_api(202), json={"email": "colleague@example.cz"}
    ),
    ("PUT", "/api/v1/organisations/{slug}/members/{member_id}/appointment"): Call(
        member_api(204), json={"appointed_on": "2026-01-05"}
    ),
    # The only designated person cannot be removed: 409 shows the check of access passed.
    ("DELETE", "/api/v1/organisations/{slug}/members/{member_id}"): Call(member_api(409)),
    ("GET", "/organisations/{slug}/team"): Call(member_page(200)),
    ("POST", "/organisations/{slug}/team/invite"): Call(
        member_page(303), form={"email": "another@example.cz"}
    ),
    ("POST", "/organisations/{slug}/team/{member_id}/appointment"): Call(
        member_page(303), form={"appointed_on": "2026-01-05"}
    ),
    ("PUT", "/api/v1/organisations/{slug}/members/{member_id}/published-name"): Call(
        member_api(204), json={"published_name": "Mgr. Jana Příslušná"}
    ),
    ("POST", "/organisations/{slug}/team/{member_id}/published-name"): Call(
        member_page(303), form={"name": "Mgr. Jana Příslušná"}
    ),
    ("POST", "/organisations/{slug}/team/{member_id}/remove"): Call(member_page(409), form={}),
    # Confirming one's own access: 409, one has it already.
    ("POST", "/api/v1/organisations/{slug}/members/{member_id}/grant"): Call(member_api(409)),
    ("POST", "/organisations/{slug}/team/{member_id}/confirm"): Call(member_page(409), form={}),
    ("POST", "/api/v1/organisations/{slug}/key-rotation"): Call(member_api(202)),
    ("POST", "/organisations/{slug}/team/rotate-key"): Call(member_page(303), form={}),
    ("GET", "/api/v1/organisations/{slug}/export"): Call(member_api(200)),
    ("GET", "/organisations/{slug}/export"): Call(member_page(200)),
    ("POST", "/organisations/{slug}/export"): Call(member_page(200), form={"reason": REASON}),
    ("GET", "/api/v1/organisations/{slug}/cancellation"): Call(member_api(200)),
    ("GET", "/organisations/{slug}/leave"): Call(member_page(200)),
    ("POST", "/api/v1/organisations/{slug}/cancellation"): Call(member_api(200)),
    ("DELETE", "/api/v1/organisations/{slug}/cancellation"): Call(member_api(200)),
    ("POST", "/organisations/{slug}/leave"): Call(member_page(303), form={"confirm": "{slug}"}),
    ("POST", "/organisations/{slug}/leave/withdraw"): Call(member_page(303), form={}),
    # The plan, orders and invoices ({invoice_id} names no invoice: 404 past the access check).
    ("GET", "/organisations/{slug}/billing"): Call(member_page(200)),
    ("POST", "/organisations/{slug}/billing/order"): Call(
        member_page(303), form={"plan": "standard", "term": "year", "method": "transfer"}
    ),
    ("POST", "/organisations/{slug}/billing/details"): Call(member_page(303), form={"dic": ""}),
    ("POST", "/organisations/{slug}/billing/stop"): Call(member_page(409), form={}),
    ("GET", "/organisations/{slug}/billing/invoices/{invoice_id}"): Call(member_page(404)),
    # The operator's console: registrations, terms, incidents; logging out comes last.
    ("GET", "/operator"): Call(operator_page(200)),
    ("POST", "/operator/organisations/{organisation_id}/verify"): Call(operator_page(303), form={}),
    ("POST", "/operator/organisations/{organisation_id}/block"): Call(
        operator_page(303), form={"reason": "False company data"}
    ),
    ("POST", "/operator/organisations/{organisation_id}/unblock"): Call(
        operator_page(303), form={"reason": "Corrected"}
    ),
    ("POST", "/operator/terms"): Call(
        operator_page(303),
        form={"version": "2", "summary": "Prices change.", "effective_on": TERMS_EFFECTIVE},
    ),
    ("POST", "/operator/incidents"): Call(
        operator_page(303),
        form={
            "title": "Exposed backup",
            "description": "Readable for an hour.",
            "detected_on": "2026-01-05",
            "organisations": "{organisation_id}",
        },
    ),
    ("POST", "/operator/plans"): Call(
        operator_page(303),
        form={
            "code": "enterprise",
            "name_cs": "Podnik",
            "name_en": "Enterprise",
            "price_year": "19900",
            "price_month": "1990",
            "max_designated_persons": "50",
            "max_embed_origins": "50",
            "active": "1",
        },
    ),
    ("POST", "/operator/orders/{order_id}/proforma"): Call(operator_page(404), form={}),
    ("POST", "/operator/orders/{order_id}/paid"): Call(
        operator_page(404), form={"paid_on": "2026-01-05"}
    ),
    ("POST", "/operator/incidents/{incident_id}/notify"): Call(operator_page(404), form={}),
    ("POST", "/operator/sub-processors"): Call(
        operator_page(303),
        form={
            "name": "Hetzner Online GmbH",
            "purpose_cs": "Hosting",
            "purpose_en": "Hosting",
            "country": "DE",
            "effective_on": TERMS_EFFECTIVE,
        },
    ),
    ("POST", "/operator/sub-processors/{sub_processor_id}"): Call(
        operator_page(404),
        form={"name": "Hetzner", "purpose_cs": "Hosting", "purpose_en": "Hosting", "country": "DE"},
    ),
    ("POST", "/operator/sub-processors/{sub_processor_id}/remove"): Call(
        operator_page(404), form={}
    ),
    ("POST", "/operator/contact"): Call(
        operator_page(303),
        form={"support_email": "podpora@pistalka.example", "status_cs": "Vše běží."},
    ),
    # Late: it changes what the meeting calls above would answer.
    ("POST", "/api/v1/public/reports/self/meeting"): Call(code_holder(200, 422)),
    # Asked already by the call above.
    ("POST", "/track/meeting"): Call(code_holder(409, 404), form={}),
    # Logging out sends the operator to the login page, as the lack of a session does.
    ("POST", "/operator/logout"): Call(operator_page(OPERATOR_LOGIN), form={}),
}

# Not the app's own routes: the OpenAPI document and static files.
NOT_CHECKED = {("GET", "/openapi.json"), ("HEAD", "/openapi.json")}


def app_routes(app: Any) -> set[tuple[str, str]]:
    routes = set()
    for route in iter_route_contexts(app.routes):
        methods = route.methods or set()
        for method in methods:
            if route.path is not None and (method != "HEAD" or "GET" not in methods):
                routes.add((method, route.path))
    return routes


def test_every_route_has_an_entry_in_the_matrix(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, f"sqlite:///{tmp_path / 'unused.db'}"))
    routes = app_routes(app) - NOT_CHECKED
    assert sorted(routes - MATRIX.keys()) == [], "new routes need an entry in MATRIX"
    assert sorted(MATRIX.keys() - routes) == [], "MATRIX names routes that no longer exist"
    for key, call in MATRIX.items():
        assert call.expect.keys() == IDENTITIES.keys(), key


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with room for every identity's submission within the hourly limit."""
    app = create_app(settings.model_copy(update={"submissions_per_hour": 100}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await app.state.engine.dispose()


async def _world(client: httpx.AsyncClient, sessionmaker: Sessionmaker) -> World:
    world = World(
        a=await verified_organisation(client, sessionmaker),
        b=await verified_organisation(client, sessionmaker),
    )
    submitted = await client.post(
        f"/api/v1/public/{world.a['slug']}/reports",
        data={"description": "Invoices for work never done."},
        files={"files": ("invoice.txt", b"invoice 2026/17")},
    )
    assert submitted.status_code == 201
    world.code = submitted.json()["tracking_code"]
    async with sessionmaker() as session:
        world.case = str(await session.scalar(select(Report.id)))
        world.file = str(await session.scalar(select(Attachment.id)))
        world.member_a = str(
            await session.scalar(select(Member.id).where(Member.email == world.a["email"]))
        )
        world.organisation_a = str(
            await session.scalar(
                select(Organisation.id).where(Organisation.slug == world.a["slug"])
            )
        )
    # A on a paid plan, so that inviting colleagues meets no plan limit.
    await on_plan(sessionmaker, world.a["slug"])
    settings = client_settings(client)
    async with sessionmaker() as session, session.begin():
        created = await operator.create_operator(
            session, settings, "ops@pistalka.example", OPERATOR_PASSWORD
        )
    # As a request's session: the login commits its attempt itself, the rest commits at the end.
    async with sessionmaker() as session:
        world.operator_cookie = await operator.login(
            session,
            settings,
            "ops@pistalka.example",
            OPERATOR_PASSWORD,
            pyotp.TOTP(created.totp_secret).now(),
        )
        await session.commit()
    return world


async def _answer(
    client: httpx.AsyncClient, method: str, path: str, call: Call, world: World, caller: Caller
) -> int | str:
    url = _filled(path, world, caller)
    query = {k: _filled(v, world, caller) for k, v in call.query.items()}
    kwargs: dict[str, Any] = {"params": query, "headers": caller.headers}
    if call.json is not None:
        kwargs["json"] = call.json
    elif call.form is not None:
        form = {k: _filled(v, world, caller) for k, v in call.form.items()}
        if caller.csrf:
            form["csrf"] = caller.csrf
        if caller.code and path.startswith("/track"):
            form["code"] = caller.code
        kwargs["data"] = form
        kwargs["files"] = call.files
    response = await client.request(method, url, **kwargs)
    location = response.headers.get("location", "")
    if response.status_code in (302, 303) and location.split("?")[0].endswith("/operator/login"):
        return OPERATOR_LOGIN
    if response.status_code in (302, 303) and location.split("?")[0].endswith("/login"):
        return LOGIN
    return response.status_code


async def test_every_identity_gets_the_expected_answer_from_every_route(
    client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    world = await _world(client, sessionmaker)
    wrong = []
    for (method, path), call in MATRIX.items():
        for name, identity in IDENTITIES.items():
            client.cookies.clear()
            caller = await identity(client, world)
            try:
                got: int | str = await _answer(client, method, path, call, world, caller)
            except Exception as exc:  # an error of the app (500) is one more wrong answer
                got = f"{type(exc).__name__}: {exc}"
            if got != call.expect[name]:
                wrong.append(f"{method} {path} as {name}: {got}, expected {call.expect[name]}")
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize("path", ["/api/v1/cases/{case_id}", "/cases/{case_id}"])
async def test_another_organisations_case_is_404_whatever_the_id_looks_like(
    path: str, client: httpx.AsyncClient, sessionmaker: Sessionmaker
) -> None:
    world = await _world(client, sessionmaker)
    caller = await IDENTITIES["dp_b"](client, world)
    for case_id in (world.case, world.case.upper(), world.case.replace("-", ""), "1"):
        url = path.replace("{case_id}", case_id)
        response = await client.get(url, headers=caller.headers)
        assert response.status_code == 404, (url, response.status_code)
