"""Payments: recorded by the sales department or told by the card payment gateway, settled once."""

import logging
import uuid
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import Conflict, NotFound
from app.i18n import N_
from app.models import Invoice, Order, Organisation, Subscription
from app.payments.gopay import GatewayError, GatewayPayment, GoPay
from app.services import retention
from app.services.billing.invoices import _issue, _locked_order, _mail
from app.services.billing.plans import (
    RECURRING_MONTHS,
    _next_start,
    _recurrences,
    add_months,
    gateway,
    today,
)
from app.services.invoice_pdf import format_amount

logger = logging.getLogger("pistalka.billing")


async def record_payment(
    session: AsyncSession, settings: Settings, order_id: uuid.UUID, paid_on: date
) -> bool:
    """Record that an order is paid: the plan runs from `paid_on` inclusive, the invoice follows.

    A plan paid while paid days still run starts the day after them, so no paid day is lost.
    Recording twice records once; the answer says whether this call recorded it.
    """
    order = await _locked_order(session, order_id)
    if order.status == "paid":
        return False
    if order.status not in ("pending", "requested"):
        raise Conflict(N_("This order cannot be paid any more."), code="order_state")
    # Two payments of one organisation at once would both start after the same paid days.
    await session.execute(
        select(Organisation.id).where(Organisation.id == order.organisation_id).with_for_update()
    )
    order.status = "paid"
    order.paid_on = paid_on
    months = 12 if order.term == "year" else 1
    subscription = (
        await session.get(Subscription, order.subscription_id, with_for_update=True)
        if order.subscription_id is not None
        else None
    )
    if subscription is None and order.term == "recurring":
        subscription = await _second_recurrence(session, settings, order, paid_on)
    if subscription is not None:  # a renewal: the paid period grows by one more month
        subscription.paid_until = add_months(
            subscription.paid_until + timedelta(days=1), months
        ) - (timedelta(days=1))
    else:
        starts_on = await _next_start(session, order.organisation_id, paid_on)
        subscription = Subscription(
            organisation_id=order.organisation_id,
            plan_id=order.plan_id,
            term=order.term,
            starts_on=starts_on,
            paid_until=add_months(starts_on, months) - timedelta(days=1),
            gateway_parent_id=order.gateway_payment_id if order.term == "recurring" else None,
            recurring_until=(
                add_months(starts_on, RECURRING_MONTHS) - timedelta(days=1)
                if order.term == "recurring"
                else None
            ),
            agreed_price=order.base,
            agreed_vat_rate=order.vat_rate,
        )
        session.add(subscription)
        await session.flush()
        order.subscription_id = subscription.id
    proforma: str | None = await session.scalar(
        select(Invoice.number).where(Invoice.order_id == order.id, Invoice.kind == "proforma")
    )
    invoice = await _issue(
        session,
        settings,
        order,
        "invoice",
        issued_on=today(),
        taxable_supply_on=paid_on,
        due_on=paid_on,
        advance_number=proforma,
    )
    organisation = await session.get(Organisation, order.organisation_id)
    assert organisation is not None  # noqa: S101
    paid_until = subscription.paid_until.strftime("%d. %m. %Y")
    await _mail(
        session, settings, organisation, "billing_paid", total=format_amount(order.total),
        paid_until=paid_until,
    )  # fmt: skip
    await _mail(session, settings, organisation, "billing_invoice", number=invoice.number)
    return True


async def _second_recurrence(
    session: AsyncSession, settings: Settings, order: Order, paid_on: date
) -> Subscription | None:
    """The recurrence already running when another recurring order (a second tab) is paid.

    The payment counts as one more month of the running recurrence, so that one recurrence
    charges the card and no day is paid twice; the new order's recurrence is stopped at the
    gateway. The card is only charged when this service asks, so a failed stop is only logged.
    """
    running = await session.scalar(
        _recurrences(order.organisation_id, paid_on)
        .where(Subscription.paid_until < Subscription.recurring_until)
        .order_by(Subscription.paid_until.desc())
        .limit(1)
        .with_for_update()
    )
    if running is None:
        return None
    order.subscription_id = running.id
    client = gateway(settings)
    if client is not None and order.gateway_payment_id is not None:
        try:
            await client.void_recurrence(order.gateway_payment_id)
        except GatewayError as exc:
            logger.warning("second recurrence not stopped at the gateway: %s", type(exc).__name__)
        finally:
            await client.aclose()
    logger.warning("a second recurring order was paid: counted as a month of the running one")
    return running


async def _order_failed(session: AsyncSession, settings: Settings, order: Order) -> None:
    order.status = "failed"
    if order.method == "card":
        organisation = await session.get(Organisation, order.organisation_id)
        assert organisation is not None  # noqa: S101
        await _mail(
            session, settings, organisation, "billing_card_failed", total=format_amount(order.total)
        )


def _check_amount(order: Order, payment: GatewayPayment) -> None:
    if payment.amount != order.total or payment.currency != order.currency:
        logger.error("gateway payment %d does not match its order (amount or currency)", payment.id)
        raise Conflict(N_("The payment does not match the order."), code="payment_mismatch")


async def _settle(
    session: AsyncSession, settings: Settings, order: Order, payment: GatewayPayment
) -> None:
    """Act once on the gateway's state of the (locked) order's payment."""
    _check_amount(order, payment)
    if payment.state == "PAID":
        # GoPay's payment status carries no date of payment: the day it is processed is used.
        await record_payment(session, settings, order.id, today())
    elif payment.state in ("CANCELED", "TIMEOUTED") and order.status == "pending":
        await _order_failed(session, settings, order)


async def _gateway_status(client: GoPay, payment_id: int) -> GatewayPayment:
    try:
        return await client.status(payment_id)
    except GatewayError as exc:
        logger.warning("gateway status of payment %d failed: %s", payment_id, exc)
        raise Conflict(N_("The payment gateway is not answering."), code="gateway") from None


async def _renewal_awaiting(
    session: AsyncSession, client: GoPay, payment_id: int, parent_id: int
) -> tuple[uuid.UUID, GatewayPayment] | None:
    """A renewal whose charge was made but whose answer was lost, found by the payment's order
    number under the recurrence it belongs to."""
    if not await session.scalar(
        select(Subscription.id).where(Subscription.gateway_parent_id == parent_id).limit(1)
    ):
        return None
    payment = await _gateway_status(client, payment_id)
    if payment.parent_id != parent_id:
        return None
    order_id: uuid.UUID | None = await session.scalar(
        select(Order.id)
        .join(Subscription, Subscription.id == Order.subscription_id)
        .where(
            Subscription.gateway_parent_id == parent_id,
            Order.variable_symbol == payment.order_number,
            Order.gateway_payment_id.is_(None),
            Order.status == "pending",
        )
    )
    return None if order_id is None else (order_id, payment)


async def payment_notice(
    session: AsyncSession,
    settings: Settings,
    client: GoPay,
    payment_id: int,
    parent_id: int | None = None,
) -> str:
    """The gateway says a payment changed: ask it for the state and act on it once."""
    order_id: uuid.UUID | None = await session.scalar(
        select(Order.id).where(Order.gateway_payment_id == payment_id)
    )
    payment: GatewayPayment | None = None
    if order_id is None and parent_id is not None:
        found = await _renewal_awaiting(session, client, payment_id, parent_id)
        if found is not None:
            order_id, payment = found
    if order_id is None:
        # The query of such a call names only the gateway's numbers, nothing about a payer.
        logger.warning("gateway notification for an unknown payment %d refused", payment_id)
        raise NotFound(N_("No such payment."))
    if payment is None:
        payment = await _gateway_status(client, payment_id)
    await retention.lock_writes(session)
    order = await _locked_order(session, order_id)
    if order.gateway_payment_id is None:
        order.gateway_payment_id = payment.id
        await session.flush()
    await _settle(session, settings, order, payment)
    return order.status
