"""Orders of a plan: the amounts, the variable symbol, the card payment's start at the gateway."""

import logging
import secrets
import uuid
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import AppError, Conflict, InvalidInput, NotFound
from app.i18n import N_
from app.models import Invoice, Order, Organisation, Plan
from app.payments.gopay import GatewayError
from app.services.billing.payments import payment_notice
from app.services.billing.plans import (
    RECURRING_MONTHS,
    _description,
    _next_start,
    _renewing,
    _require_supplier,
    add_months,
    gateway,
    today,
)

logger = logging.getLogger("pistalka.billing")

TERMS = {"year": 12, "recurring": 24}
CURRENCY = "CZK"
Owned = TypeVar("Owned", Invoice, Order)


def _uuid(value: str, message: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(message) from None


async def organisation_invoice(
    session: AsyncSession, organisation_id: uuid.UUID, invoice_id: str
) -> Invoice:
    """One of the organisation's invoices; another organisation's is not found."""
    return await _owned(session, Invoice, organisation_id, invoice_id, N_("No such invoice."))


async def organisation_order(
    session: AsyncSession, organisation_id: uuid.UUID, order_id: str
) -> Order:
    """One of the organisation's orders; another organisation's is not found."""
    return await _owned(session, Order, organisation_id, order_id, N_("No such order."))


async def _owned(
    session: AsyncSession,
    model: type[Owned],
    organisation_id: uuid.UUID,
    row_id: str,
    message: str,
) -> Owned:
    row = await session.scalar(
        select(model).where(
            model.id == _uuid(row_id, message), model.organisation_id == organisation_id
        )
    )
    if row is None:
        raise NotFound(message)
    return row


async def check_returning_order(
    session: AsyncSession, settings: Settings, organisation: Organisation, order_id: str
) -> None:
    """The payer is back from the gateway: ask it now rather than wait for its notification."""
    order = await organisation_order(session, organisation.id, order_id)
    if order.status != "pending" or order.gateway_payment_id is None:
        return
    client = gateway(settings)
    if client is None:
        return
    try:
        async with session.begin_nested():
            await payment_notice(session, settings, client, order.gateway_payment_id)
    except AppError:
        pass  # the notification will settle it
    finally:
        await client.aclose()


def _vat(base: int, rate: int) -> int:
    return (base * rate + 50) // 100  # rounded half up to hellers


def _amounts(plan: Plan, term: str) -> tuple[int, int, int]:
    """Base, VAT and total of one payment of the plan."""
    base = plan.price_year if term == "year" else plan.price_month
    vat = _vat(base, plan.vat_rate)
    return base, vat, base + vat


def _variable_symbol() -> str:
    return str(1_000_000_000 + secrets.randbelow(9_000_000_000))


async def _plan_to_order(session: AsyncSession, code: str, term: str, method: str) -> Plan:
    if term not in TERMS:
        raise InvalidInput(N_("Choose 12 months or 24 months with a monthly card payment."))
    if method not in ("card", "transfer"):
        raise InvalidInput(N_("Choose how to pay."))
    if term == "recurring" and method != "card":
        raise InvalidInput(N_("The recurring payment is made by card."), field="method")
    plan = await session.scalar(select(Plan).where(Plan.code == code, Plan.active))
    if plan is None or plan.free:
        raise NotFound(N_("No such plan on the price list."))
    return plan


async def place_order(
    session: AsyncSession,
    settings: Settings,
    organisation: Organisation,
    *,
    plan_code: str,
    term: str,
    method: str,
) -> tuple[Order, str | None]:
    """Order a plan; for a card payment also the gateway's address to send the payer to."""
    plan = await _plan_to_order(session, plan_code, term, method)
    _require_supplier(settings)
    day = today()
    if term == "recurring":
        # An earlier order abandoned at the gateway, or paid without a notification yet.
        for pending in await _pending_recurring_orders(session, organisation.id):
            await check_returning_order(session, settings, organisation, str(pending.id))
    if await _renewing(session, organisation.id):
        raise Conflict(
            N_(
                "The plan is paid by a recurring card payment. Stop the recurring payment "
                "before ordering another plan; the paid period is kept."
            ),
            code="recurrence_active",
        )
    if term == "recurring" and await _pending_recurring_orders(session, organisation.id):
        # Two recurring orders paid (two tabs) would be two recurrences charging the card.
        raise Conflict(
            N_(
                "A recurring card payment ordered earlier is waiting for payment. Finish or "
                "cancel it at the payment gateway before ordering another plan."
            ),
            code="recurrence_pending",
        )
    base, vat, total = _amounts(plan, term)
    order = Order(
        organisation_id=organisation.id,
        plan_id=plan.id,
        term=term,
        method=method,
        base=base,
        vat=vat,
        total=total,
        vat_rate=plan.vat_rate,
        currency=CURRENCY,
        variable_symbol=_variable_symbol(),
        status="requested" if method == "transfer" else "pending",
    )
    session.add(order)
    await session.flush()
    if method == "transfer":
        return order, None
    client = gateway(settings)
    if client is None:
        raise Conflict(
            N_("Card payments are not available now. Order through the sales department."),
            code="gateway_unavailable",
        )
    base_url = settings.public_url.rstrip("/")
    try:
        payment = await client.create_payment(
            amount=total,
            currency=CURRENCY,
            order_number=order.variable_symbol,
            description=_description(plan, term),
            payer_email=organisation.email,
            return_url=f"{base_url}/organisations/{organisation.slug}/billing?order={order.id}",
            notification_url=f"{base_url}/api/v1/payments/gopay",
            recurring_until=(
                add_months(await _next_start(session, organisation.id, day), RECURRING_MONTHS)
                if term == "recurring"
                else None
            ),
        )
    except GatewayError as exc:
        logger.warning("card payment could not be created: %s", exc)
        raise Conflict(
            N_("The payment gateway is not answering. Try again later."),
            code="gateway_unavailable",
        ) from None
    finally:
        await client.aclose()
    order.gateway_payment_id = payment.id
    await session.flush()
    return order, payment.gw_url


async def _pending_recurring_orders(
    session: AsyncSession, organisation_id: uuid.UUID
) -> list[Order]:
    """The organisation's orders of a new recurring card payment that wait for the payer."""
    return list(
        await session.scalars(
            select(Order).where(
                Order.organisation_id == organisation_id,
                Order.term == "recurring",
                Order.method == "card",
                Order.status == "pending",
                Order.subscription_id.is_(None),  # not a renewal
            )
        )
    )
