"""The operator's console: registrations (counts only), blocks, terms and security incidents."""

import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from app.db import SessionDep
from app.deps import (
    CurrentOperatorDep,
    OptionalOperatorDep,
    SettingsDep,
    operator_cookie_name,
    require_operator_csrf,
)
from app.errors import AppError, InvalidInput, NotFound
from app.i18n import N_
from app.models import Order, Plan
from app.models.base import utcnow
from app.routers.uploads import failed_logins_limited, retry_after_header
from app.services import billing, deadlines, operator
from app.services.cases import PRAGUE
from app.services.invoice_pdf import format_amount
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
        with failed_logins_limited(request, settings):
            cookie = await operator.login(session, settings, email, password, totp)
    except AppError as exc:
        return render(
            request,
            "operator/login.html",
            {"email": email, "error": exc.message},
            status_code=exc.status_code,
            headers=retry_after_header(exc),
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
    now = utcnow()
    today = deadlines.local_date(now)
    incidents = await operator.incidents(session)
    return render(
        request,
        "operator/console.html",
        {
            "operator": current.operator,
            "organisations": await operator.list_organisations(session),
            "terms_in_effect": await terms_in_effect(session),
            "upcoming_terms": await operator.upcoming_terms(session, today),
            "incidents": incidents,
            "overdue": [row for row in incidents if row.overdue(now)],
            "now": now,
            "sub_processors": await operator.sub_processors(session),
            "sub_processor_changes": await operator.sub_processor_changes(session),
            "service_contact": await operator.service_contact(session),
            "today": today,
            "local": lambda value: value.astimezone(PRAGUE),
            "events": await operator.events(session, limit=50),
            "plans": list(await session.scalars(select(Plan).order_by(Plan.sort_order))),
            "orders": await operator.waiting_orders(session),
            "money": format_amount,
            "earliest_effective": today + timedelta(days=operator.TERMS_NOTICE_DAYS),
            "earliest_sub_processor": today + timedelta(days=operator.SUB_PROCESSOR_NOTICE_DAYS),
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
    detected_time: Annotated[str, Form(max_length=10)] = "",
    organisations: Annotated[list[str] | None, Form(max_length=100)] = None,
    notify_later: Annotated[str, Form(max_length=10)] = "",
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
            detected_at=datetime.combine(day, _parse_time(detected_time), PRAGUE),
            organisation_ids=organisations or [],
            notify=not notify_later,
        )

    return await _act(request, session, current, step(), "incident")


def _parse_time(value: str) -> time:
    """A time of day as typed (`14:30`); midnight when left out."""
    if not value.strip():
        return time()
    try:
        return time.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(N_("Enter a time as HH:MM."), field="detected_time") from None


@router.post(
    "/operator/incidents/{incident_id}/notify",
    response_class=HTMLResponse,
    dependencies=[CsrfChecked],
)
async def notify_incident(
    incident_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentOperatorDep,
) -> Response:
    step = operator.notify_incident(session, settings, current, incident_id)
    return await _act(request, session, current, step, "notified")


@router.post("/operator/sub-processors", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def add_sub_processor(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentOperatorDep,
    name: Annotated[str, Form(max_length=1000)] = "",
    purpose_cs: Annotated[str, Form(max_length=RAW_TEXT)] = "",
    purpose_en: Annotated[str, Form(max_length=RAW_TEXT)] = "",
    country: Annotated[str, Form(max_length=40)] = "",
    effective_on: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    async def step() -> None:
        data = operator.SubProcessorData(name, purpose_cs, purpose_en, country)
        day = _parse_date(effective_on, "effective_on")
        await operator.add_sub_processor(session, settings, current, data, day)

    return await _act(request, session, current, step(), "sub_processor")


@router.post(
    "/operator/sub-processors/{sub_processor_id}",
    response_class=HTMLResponse,
    dependencies=[CsrfChecked],
)
async def change_sub_processor(
    sub_processor_id: str,
    request: Request,
    session: SessionDep,
    current: CurrentOperatorDep,
    name: Annotated[str, Form(max_length=1000)] = "",
    purpose_cs: Annotated[str, Form(max_length=RAW_TEXT)] = "",
    purpose_en: Annotated[str, Form(max_length=RAW_TEXT)] = "",
    country: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    data = operator.SubProcessorData(name, purpose_cs, purpose_en, country)
    step = operator.change_sub_processor(session, current, sub_processor_id, data)
    return await _act(request, session, current, step, "sub_processor")


@router.post(
    "/operator/sub-processors/{sub_processor_id}/remove",
    response_class=HTMLResponse,
    dependencies=[CsrfChecked],
)
async def remove_sub_processor(
    sub_processor_id: str, request: Request, session: SessionDep, current: CurrentOperatorDep
) -> Response:
    step = operator.remove_sub_processor(session, current, sub_processor_id)
    return await _act(request, session, current, step, "sub_processor")


@router.post("/operator/contact", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def save_service_contact(
    request: Request,
    session: SessionDep,
    current: CurrentOperatorDep,
    support_email: Annotated[str, Form(max_length=1000)] = "",
    support_phone: Annotated[str, Form(max_length=1000)] = "",
    status_cs: Annotated[str, Form(max_length=1000)] = "",
    status_en: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    step = operator.save_service_contact(
        session,
        current,
        support_email=support_email,
        support_phone=support_phone,
        status_cs=status_cs,
        status_en=status_en,
    )
    return await _act(request, session, current, step, "contact")


def _whole(value: str, field: str) -> int:
    try:
        return int(value.strip() or "0")
    except ValueError:
        raise InvalidInput(N_("Enter a whole number."), field=field) from None


def _hellers(value: str, field: str) -> int:
    """A price in crowns as typed (`4900` or `4 900,50`) in hellers."""
    cleaned = value.strip().replace("\u00a0", "").replace(" ", "").replace(",", ".") or "0"
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise InvalidInput(N_("Enter a price in crowns."), field=field) from None
    if not amount.is_finite() or amount < 0 or amount > 10**7:
        raise InvalidInput(N_("Enter a price in crowns."), field=field)
    return int((amount * 100).to_integral_value())


@router.post("/operator/plans", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def save_plan(
    request: Request,
    session: SessionDep,
    current: CurrentOperatorDep,
    code: Annotated[str, Form(max_length=100)] = "",
    name_cs: Annotated[str, Form(max_length=200)] = "",
    name_en: Annotated[str, Form(max_length=200)] = "",
    description_cs: Annotated[str, Form(max_length=RAW_TEXT)] = "",
    description_en: Annotated[str, Form(max_length=RAW_TEXT)] = "",
    price_year: Annotated[str, Form(max_length=40)] = "",
    price_month: Annotated[str, Form(max_length=40)] = "",
    vat_rate: Annotated[str, Form(max_length=10)] = "21",
    max_designated_persons: Annotated[str, Form(max_length=10)] = "",
    max_embed_origins: Annotated[str, Form(max_length=10)] = "",
    active: Annotated[str, Form(max_length=10)] = "",
    sort_order: Annotated[str, Form(max_length=10)] = "0",
) -> Response:
    async def step() -> None:
        data = operator.PlanData(
            code=code,
            name_cs=name_cs,
            name_en=name_en,
            description_cs=description_cs,
            description_en=description_en,
            price_year=_hellers(price_year, "price_year"),
            price_month=_hellers(price_month, "price_month"),
            vat_rate=_whole(vat_rate, "vat_rate"),
            max_designated_persons=_whole(max_designated_persons, "max_designated_persons"),
            max_embed_origins=_whole(max_embed_origins, "max_embed_origins"),
            active=bool(active),
            sort_order=_whole(sort_order, "sort_order"),
        )
        await operator.save_plan(session, current, data)

    return await _act(request, session, current, step(), "plan")


def _order_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(N_("No such order.")) from None


@router.post(
    "/operator/orders/{order_id}/proforma",
    response_class=HTMLResponse,
    dependencies=[CsrfChecked],
)
async def issue_proforma(
    order_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentOperatorDep,
) -> Response:
    async def step() -> None:
        invoice = await billing.issue_proforma(session, settings, _order_id(order_id))
        assert invoice.organisation_id is not None  # noqa: S101 - issued for an organisation
        await operator.log_billing(
            session, current, invoice.organisation_id, "proforma", invoice.number
        )

    return await _act(request, session, current, step(), "proforma")


@router.post(
    "/operator/orders/{order_id}/paid", response_class=HTMLResponse, dependencies=[CsrfChecked]
)
async def record_payment(
    order_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentOperatorDep,
    paid_on: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    async def step() -> None:
        day = _parse_date(paid_on, "paid_on")
        if day > deadlines.local_date(utcnow()):
            raise InvalidInput(N_("A payment cannot arrive in the future."), field="paid_on")
        order = _order_id(order_id)
        await billing.record_payment(session, settings, order, day)
        paid = await session.get(Order, order)
        assert paid is not None  # noqa: S101 - record_payment found it
        await operator.log_billing(session, current, paid.organisation_id, "payment", str(day))

    return await _act(request, session, current, step(), "paid")


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
