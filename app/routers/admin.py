"""Designated-person pages: login, logout, dashboard and profile."""

from typing import Annotated

import segno
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from app.db import SessionDep
from app.deps import CurrentMemberDep, OptionalMemberDep, SettingsDep, require_csrf
from app.errors import AppError, NotFound
from app.i18n import N_
from app.models.base import utcnow
from app.routers.cookies import clear_session_cookie, set_session_cookie
from app.routers.uploads import failed_logins_limited, retry_after_header
from app.services import auth, cases, deadlines, leaving, operator, organisations, retention
from app.templating import redirect, render

router = APIRouter(include_in_schema=False)
CsrfChecked = Depends(require_csrf)
PURGE_NOTICE_DAYS = 90


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, current: OptionalMemberDep) -> Response:
    if current is not None:
        return redirect(request, "/dashboard")
    return render(request, "admin/login.html", {"email": "", "error": None, "ask_totp": False})


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    totp: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    try:
        with failed_logins_limited(request, settings):
            logged_in = await auth.login(session, settings, email, password, totp or None)
    except AppError as exc:
        return render(
            request,
            "admin/login.html",
            {"email": email, "error": exc.message, "ask_totp": exc.code == "totp_required"},
            status_code=exc.status_code,
            headers=retry_after_header(exc),
        )
    response = redirect(request, "/dashboard")
    set_session_cookie(response, settings, logged_in.cookie_value)
    return response


@router.post("/logout", dependencies=[CsrfChecked])
async def logout(
    request: Request, current: CurrentMemberDep, session: SessionDep, settings: SettingsDep
) -> Response:
    await auth.logout(session, current)
    response = redirect(request, "/login")
    clear_session_cookie(response, settings)
    return response


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard(request: Request, current: CurrentMemberDep, session: SessionDep) -> Response:
    organisations = await auth.member_organisations(session, current.member.id)
    # Only organisations whose key the member holds have countable cases.
    accesses = await cases.accessible_organisations(session, current)
    counts = await cases.case_counts(session, accesses)
    case_counts = {
        access.organisation.slug: {
            "total": counts[access.organisation.id][0],
            "overdue": counts[access.organisation.id][1],
        }
        for access in accesses
    }
    today = deadlines.local_date(utcnow())
    purge_soon = {
        organisation.slug: await retention.due_soon(
            session, organisation.id, today, PURGE_NOTICE_DAYS
        )
        for organisation in organisations
    }
    erase_on = {
        organisation.slug: deadlines.local_date(due)
        for organisation in organisations
        if (due := leaving.erasure_due(organisation)) is not None
    }
    return render(
        request,
        "admin/dashboard.html",
        {
            "terms": await operator.newest_terms(session),
            "today": today,
            "member": current.member,
            "organisations": organisations,
            "case_counts": case_counts,
            "purge_soon": purge_soon,
            "purge_days": PURGE_NOTICE_DAYS,
            "erase_on": erase_on,
        },
    )


@router.post("/organisations/{slug}/terms", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def accept_terms(
    slug: str,
    request: Request,
    session: SessionDep,
    current: CurrentMemberDep,
    version: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Accept the newest announced version of the terms for the organisation."""
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    newest = await operator.newest_terms(session)
    if newest is None or newest.version != version:
        raise NotFound(N_("No such version of the terms is announced."))
    await operator.accept_terms(session, organisation, newest, current.member.id)
    return redirect(request, "/dashboard")


def _profile(request: Request, current: auth.CurrentMember, **extra: object) -> HTMLResponse:
    status = extra.pop("status_code", 200)
    assert isinstance(status, int)  # noqa: S101
    return render(
        request,
        "admin/profile.html",
        {
            "member": current.member,
            "fingerprint": current.key_fingerprint,
            "setup": None,
            "qr": None,
            "error": None,
            **extra,
        },
        status_code=status,
    )


@router.get("/profile", response_class=HTMLResponse)
async def profile(request: Request, current: CurrentMemberDep) -> Response:
    return _profile(request, current)


@router.post("/profile/totp", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def start_totp(
    request: Request, current: CurrentMemberDep, session: SessionDep, settings: SettingsDep
) -> Response:
    setup = await auth.start_totp(session, settings, current.member)
    qr = segno.make(setup.uri, error="m").svg_data_uri(scale=4)
    return _profile(request, current, setup=setup, qr=qr)


@router.post("/profile/totp/confirm", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def confirm_totp(
    request: Request,
    current: CurrentMemberDep,
    session: SessionDep,
    settings: SettingsDep,
    code: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    try:
        await auth.confirm_totp(session, settings, current.member, code)
    except AppError as exc:
        return _profile(request, current, error=exc.message, status_code=exc.status_code)
    return redirect(request, "/profile")


@router.post("/profile/totp/disable", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def disable_totp(
    request: Request,
    current: CurrentMemberDep,
    session: SessionDep,
    settings: SettingsDep,
    code: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    try:
        await auth.disable_totp(session, settings, current.member, code)
    except AppError as exc:
        return _profile(request, current, error=exc.message, status_code=exc.status_code)
    return redirect(request, "/profile")
