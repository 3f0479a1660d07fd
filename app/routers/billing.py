"""The price list, an organisation's billing page, and the payment gateway's notifications."""

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel

from app.db import SessionDep
from app.deps import CurrentMemberDep, SettingsDep, require_csrf
from app.errors import AppError, InvalidInput, NotFound
from app.headers import content_security_policy
from app.i18n import N_
from app.models import Organisation
from app.services import billing, organisations
from app.services.invoice_pdf import format_amount
from app.templating import redirect, render

pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1/payments", tags=["payments"])
CsrfChecked = Depends(require_csrf)
DIC_LENGTH = 14


@pages.get("/pricing", response_class=HTMLResponse)
async def pricing(request: Request, session: SessionDep) -> Response:
    plans = await billing.price_list(session)
    return render(request, "public/pricing.html", {"plans": plans, "money": format_amount})


def _gateway_origin(url: str) -> list[str]:
    if not url:
        return []
    parts = urlsplit(url)
    return [f"{parts.scheme}://{parts.netloc}"]


async def _billing_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    organisation: Organisation,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    overview = await billing.overview(session, organisation)
    return render(
        request,
        "admin/billing.html",
        {
            "organisation": organisation,
            "plan": overview.plan,
            "subscription": overview.subscription,
            "plans": overview.price_list,
            "all_plans": overview.plans,
            "orders": overview.orders,
            "invoices": overview.invoices,
            "next_start": overview.next_start,
            "recurrence": overview.recurrence,
            "today": billing.today(),
            "card_payments": billing.card_payments(settings),
            "supplier_configured": billing.supplier_configured(settings),
            "money": format_amount,
            "error": error,
            "done": request.query_params.get("done"),
        },
        status_code=status_code,
        # The order form is answered by a redirect to the payment gateway.
        headers={
            "Content-Security-Policy": content_security_policy(
                form_targets=_gateway_origin(settings.gopay_url)
            )
        },
    )


@pages.get("/organisations/{slug}/billing", response_class=HTMLResponse)
async def billing_page(
    slug: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
    order: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    if order is not None:
        # Back from the gateway with the order paid for.
        await billing.check_returning_order(session, settings, organisation, order)
    return await _billing_page(request, session, settings, organisation)


@pages.post(
    "/organisations/{slug}/billing/order", response_class=HTMLResponse, dependencies=[CsrfChecked]
)
async def place_order(
    slug: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
    plan: Annotated[str, Form(max_length=40)] = "",
    term: Annotated[str, Form(max_length=20)] = "",
    method: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    try:
        async with session.begin_nested():
            _, gateway_url = await billing.place_order(
                session, settings, organisation, plan_code=plan, term=term, method=method
            )
    except AppError as exc:
        return await _billing_page(
            request, session, settings, organisation, error=exc.message,
            status_code=exc.status_code,
        )  # fmt: skip
    if gateway_url:
        return RedirectResponse(gateway_url, status_code=303)
    return redirect(request, f"/organisations/{slug}/billing", done="ordered")


@pages.post(
    "/organisations/{slug}/billing/details",
    response_class=HTMLResponse,
    dependencies=[CsrfChecked],
)
async def billing_details(
    slug: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
    dic: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    value = dic.strip().upper().replace(" ", "")
    if value and not (
        value[:2].isalpha() and value[2:].isdigit() and 8 <= len(value) - 2 <= DIC_LENGTH - 2
    ):
        error = InvalidInput(N_("Enter the VAT number as CZ followed by 8 to 10 digits."))
        return await _billing_page(
            request, session, settings, organisation, error=error.message, status_code=422
        )
    organisation.dic = value
    return redirect(request, f"/organisations/{slug}/billing", done="details")


@pages.post(
    "/organisations/{slug}/billing/stop", response_class=HTMLResponse, dependencies=[CsrfChecked]
)
async def stop_recurrence(
    slug: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
) -> Response:
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    try:
        async with session.begin_nested():
            await billing.stop_recurrence(session, settings, organisation)
    except AppError as exc:
        return await _billing_page(
            request, session, settings, organisation, error=exc.message,
            status_code=exc.status_code,
        )  # fmt: skip
    return redirect(request, f"/organisations/{slug}/billing", done="stopped")


@pages.get("/organisations/{slug}/billing/invoices/{invoice_id}", response_model=None)
async def invoice_pdf(
    slug: str, invoice_id: str, session: SessionDep, current: CurrentMemberDep
) -> Response:
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    invoice = await billing.organisation_invoice(session, organisation.id, invoice_id)
    return Response(
        invoice.pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{invoice.number}.pdf"'},
    )


class PaymentState(BaseModel):
    status: str


@api.get("/gopay")
async def gopay_notification(
    session: SessionDep,
    settings: SettingsDep,
    id: Annotated[int, Query(ge=1, le=10**15)],  # noqa: A002 - the gateway's parameter name
    parent_id: Annotated[int | None, Query(ge=1, le=10**15)] = None,
) -> PaymentState:
    """The payment gateway's notification that a payment changed; its state is asked back."""
    client = billing.gateway(settings)
    if client is None:
        raise NotFound(N_("No such payment."))
    try:
        status = await billing.payment_notice(session, settings, client, id, parent_id)
    finally:
        await client.aclose()
    return PaymentState(status=status)
