"""The operator's console: registrations (counts only), blocks, terms and security incidents."""

from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from app.db import SessionDep
from app.deps import (
    CurrentOperatorDep,
    OptionalOperatorDep,
    SettingsDep,
    operator_cookie_name,
    require_operator_csrf,
)
from app.errors import AppError, InvalidInput
from app.i18n import N_
from app.models.base import utcnow
from app.services import deadlines, operator
from app.services.cases import PRAGUE
from app.services.registration import terms_in_effect
from app.templating import redirect, render

router = APIRouter(include_in_schema=False)
CsrfChecked = Depends(require_operator_csrf)
RAW_TEXT = 20000


@router.get("/operator/login", response_class=HTMLResponse)
async def login_form(request: Request, current: OptionalOperatorDep) -> Response:
    if current is not None:
        return redirect(request, "/operator")
    return render(request, "operator/login.html", {"email": "", "error": None})


@router.post("/operator/login", response_class=HTMLResponse)
async def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    totp: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    try:
        cookie = await operator.login(session, settings, email, password, totp)
    except AppError as exc:
        return render(
            request,
            "operator/login.html",
            {"email": email, "error": exc.message},
            status_code=exc.status_code,
        )
    response = redirect(request, "/operator")
    response.set_cookie(
        operator_cookie_name(settings),
        cookie,
        max_age=operator.SESSION_HOURS * 3600,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/operator/logout", dependencies=[CsrfChecked])
async def logout(
    request: Request, current: CurrentOperatorDep, session: SessionDep, settings: SettingsDep
) -> Response:
    await operator.logout(session, current)
    response = redirect(request, "/operator/login")
    response.delete_cookie(
        operator_cookie_name(settings),
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="strict",
    )
    return response


async def _console(
    request: Request,
    session: SessionDep,
    current: operator.CurrentOperator,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    today = deadlines.local_date(utcnow())
    return render(
        request,
        "operator/console.html",
        {
            "operator": current.operator,
            "organisations": await operator.list_organisations(session),
            "terms_in_effect": await terms_in_effect(session),
            "upcoming_terms": await operator.upcoming_terms(session, today),
            "incidents": await operator.incidents(session),
            "events": await operator.events(session, limit=50),
            "earliest_effective": today + timedelta(days=operator.TERMS_NOTICE_DAYS),
            "error": error,
            "done": request.query_params.get("done"),
        },
        status_code=status_code,
    )


@router.get("/operator", response_class=HTMLResponse)
async def console(request: Request, session: SessionDep, current: CurrentOperatorDep) -> Response:
    return await _console(request, session, current)


async def _act(
    request: Request,
    session: SessionDep,
    current: operator.CurrentOperator,
    action: object,
    done: str,
) -> Response:
    """Run one console action: back to the console, or the console with the error."""
    try:
        async with session.begin_nested():
            await action  # type: ignore[misc]
    except AppError as exc:
        return await _console(
            request, session, current, error=exc.message, status_code=exc.status_code
        )
    return redirect(request, "/operator", done=done)


@router.post(
    "/operator/organisations/{organisation_id}/verify",
    response_class=HTMLResponse,
    dependencies=[CsrfChecked],
)
async def verify_identity(
    organisation_id: str, request: Request, session: SessionDep, current: CurrentOperatorDep
) -> Response:
    step = operator.verify_identity(session, current, organisation_id)
    return await _act(request, session, current, step, "verified")


@router.post(
    "/operator/organisations/{organisation_id}/block",
    response_class=HTMLResponse,
    dependencies=[CsrfChecked],
)
async def block(
    organisation_id: str,
    request: Request,
    session: SessionDep,
    current: CurrentOperatorDep,
    reason: Annotated[str, Form(max_length=RAW_TEXT)] = "",
) -> Response:
    step = operator.block(session, current, organisation_id, reason)
    return await _act(request, session, current, step, "blocked")


@router.post(
    "/operator/organisations/{organisation_id}/unblock",
    response_class=HTMLResponse,
    dependencies=[CsrfChecked],
)
async def unblock(
    organisation_id: str,
    request: Request,
    session: SessionDep,
    current: CurrentOperatorDep,
    reason: Annotated[str, Form(max_length=RAW_TEXT)] = "",
) -> Response:
    step = operator.unblock(session, current, organisation_id, reason)
    return await _act(request, session, current, step, "unblocked")


def _parse_date(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(N_("Enter a date as YYYY-MM-DD."), field=field) from None


@router.post("/operator/terms", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def announce_terms(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentOperatorDep,
    version: Annotated[str, Form(max_length=100)] = "",
    summary: Annotated[str, Form(max_length=RAW_TEXT)] = "",
    url: Annotated[str, Form(max_length=1000)] = "",
    effective_on: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    async def step() -> None:
        await operator.announce_terms(
            session,
            settings,
            current,
            version=version,
            summary=summary,
            url=url,
            effective_on=_parse_date(effective_on, "effective_on"),
        )

    return await _act(request, session, current, step(), "terms")


@router.post("/operator/incidents", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def record_incident(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentOperatorDep,
    title: Annotated[str, Form(max_length=1000)] = "",
    description: Annotated[str, Form(max_length=RAW_TEXT)] = "",
    measures: Annotated[str, Form(max_length=RAW_TEXT)] = "",
    detected_on: Annotated[str, Form(max_length=40)] = "",
    organisations: Annotated[list[str] | None, Form(max_length=100)] = None,
) -> Response:
    async def step() -> None:
        day = _parse_date(detected_on, "detected_on")
        await operator.record_incident(
            session,
            settings,
            current,
            title=title,
            description=description,
            measures=measures,
            detected_at=datetime.combine(day, datetime.min.time(), PRAGUE),
            organisation_ids=organisations or [],
        )

    return await _act(request, session, current, step(), "incident")


@router.get("/terms", response_class=HTMLResponse)
async def terms(request: Request, session: SessionDep) -> Response:
    """The version of the terms in effect and any announced next version."""
    today = deadlines.local_date(utcnow())
    return render(
        request,
        "public/terms.html",
        {
            "version": await terms_in_effect(session),
            "upcoming": await operator.upcoming_terms(session, today),
        },
    )
