"""Recurring card payments: charged when due, stopped on request or on leaving; the notice
of a plan that ends."""

import logging
import traceback
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.errors import Conflict
from app.i18n import N_
from app.models import Order, Organisation, Plan, Subscription
from app.models.base import utcnow
from app.payments.gopay import RECURRENCE_STOPPED, GatewayError, GoPay
from app.services import retention
from app.services.billing.invoices import _locked_order, _mail
from app.services.billing.orders import CURRENCY, _variable_symbol, _vat
from app.services.billing.payments import _order_failed, _settle
from app.services.billing.plans import (
    RENEWAL_GRACE_DAYS,
    _description,
    _recurrences,
    gateway,
    today,
)

logger = logging.getLogger("pistalka.billing")

ENDING_NOTICE_DAYS = 14


async def _void(client: GoPay, subscription: Subscription) -> bool:
    """Stop the recurrence at the gateway; whether the gateway confirmed it."""
    assert subscription.gateway_parent_id is not None  # noqa: S101 - a recurring subscription
    try:
        await client.void_recurrence(subscription.gateway_parent_id)
    except GatewayError as exc:
        if exc.error_code == RECURRENCE_STOPPED:  # stopped already: nothing to undo
            return True
        logger.warning("gateway void recurrence failed: %s", exc)
        return False
    return True


async def stop_recurrence(
    session: AsyncSession, settings: Settings, organisation: Organisation
) -> list[Subscription]:
    """Stop the recurring payment; the plan stays to the end of the paid period, no refund."""
    subscriptions = list(
        await session.scalars(_recurrences(organisation.id, today()).with_for_update())
    )
    if not subscriptions:
        raise Conflict(N_("There is no recurring payment to stop."), code="not_recurring")
    client = gateway(settings)
    if client is not None:
        try:
            for subscription in subscriptions:
                if not await _void(client, subscription):
                    raise Conflict(
                        N_("The payment gateway is not answering. Try again later."),
                        code="gateway",
                    )
        finally:
            await client.aclose()
    for subscription in subscriptions:
        subscription.recurrence_stopped_at = utcnow()
    await session.flush()
    return subscriptions


async def end_recurrences(
    session: AsyncSession, settings: Settings, organisation: Organisation
) -> int:
    """Stop every recurring payment of an organisation that leaves; how many were running.

    The card is only ever charged when this service asks, so the local stop alone ends the
    charges: a gateway that does not answer is logged and does not hold up the cancellation.
    """
    subscriptions = list(
        await session.scalars(_recurrences(organisation.id, None).with_for_update())
    )
    client = gateway(settings) if subscriptions else None
    try:
        for subscription in subscriptions:
            if client is not None:
                await _void(client, subscription)
            subscription.recurrence_stopped_at = utcnow()
    finally:
        if client is not None:
            await client.aclose()
    await session.flush()
    return len(subscriptions)


async def renew_due(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, day: date | None = None
) -> int:
    """Charge the recurring payments due: on the last day of the paid period."""
    day = day or today()
    client = gateway(settings)
    if client is None:
        return 0
    async with sessionmaker() as session:
        due = list(
            await session.scalars(
                select(Subscription.id)
                .join(Organisation, Organisation.id == Subscription.organisation_id)
                .where(
                    # Cancelled before cancelling stopped the recurrences: never charged again.
                    Organisation.cancelled_at.is_(None),
                    Subscription.gateway_parent_id.is_not(None),
                    Subscription.recurrence_stopped_at.is_(None),
                    Subscription.paid_until <= day,
                    Subscription.paid_until >= day - timedelta(days=RENEWAL_GRACE_DAYS),
                    Subscription.paid_until < Subscription.recurring_until,
                )
            )
        )
    renewed = 0
    try:
        for subscription_id in due:
            try:
                renewed += await _renew(sessionmaker, settings, client, subscription_id)
            except Exception as exc:
                # One organisation's failure must not hold up the others' renewals. Class and
                # stack only: the message may quote SQL values. A charge already made is asked
                # about on the next run.
                logger.error(
                    "renewal failed: %s\n%s",
                    type(exc).__name__,
                    "".join(traceback.format_tb(exc.__traceback__)).rstrip(),
                )
    finally:
        await client.aclose()
    return renewed


@dataclass(frozen=True)
class _Charge:
    order_id: uuid.UUID
    parent_id: int
    amount: int
    order_number: str
    description: str


@dataclass(frozen=True)
class _Unsettled:
    order_id: uuid.UUID
    payment_id: int


async def _renew(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    client: GoPay,
    subscription_id: uuid.UUID,
) -> int:
    """Renew one subscription: record the order, charge the card, record the result.

    The charge happens between transactions: nothing after it can roll back the order and so
    lead the next run to charge again. A run that finds the period's renewal charged but not
    settled asks the gateway about it instead.
    """
    try:
        async with sessionmaker() as session, session.begin():
            begun = await _begin_renewal(session, subscription_id)
    except IntegrityError:
        return 0  # another worker took this renewal
    if isinstance(begun, _Unsettled):
        await _ask_about(sessionmaker, settings, client, begun)
        return 0
    if begun is None:
        return 0
    try:
        payment = await client.create_recurrence(
            begun.parent_id,
            amount=begun.amount,
            currency=CURRENCY,
            order_number=begun.order_number,
            description=begun.description,
        )
    except GatewayError as exc:
        if exc.status_code is None or exc.status_code >= 500:
            # No answer: the card may have been charged. The order waits, pending, for the
            # gateway's notification, which names the recurrence and the order number.
            logger.warning("recurring payment sent, its outcome unknown: %s", exc)
            return 0
        logger.warning("recurring payment declined or refused: %s", exc)
        async with sessionmaker() as session, session.begin():
            await retention.lock_writes(session)
            order = await _locked_order(session, begun.order_id)
            if order.status == "pending":
                await _order_failed(session, settings, order)
        return 0
    async with sessionmaker() as session, session.begin():
        await retention.lock_writes(session)
        order = await _locked_order(session, begun.order_id)
        order.gateway_payment_id = payment.id
    async with sessionmaker() as session, session.begin():
        await retention.lock_writes(session)
        order = await _locked_order(session, begun.order_id)
        await _settle(session, settings, order, payment)
    return 0 if payment.state in ("CANCELED", "TIMEOUTED") else 1


async def _begin_renewal(
    session: AsyncSession, subscription_id: uuid.UUID
) -> _Charge | _Unsettled | None:
    """Record the period's renewal order, or find the one recorded already."""
    await retention.lock_writes(session)
    subscription = await session.get(Subscription, subscription_id, with_for_update=True)
    if (
        subscription is None
        or subscription.gateway_parent_id is None
        or subscription.recurrence_stopped_at is not None
    ):
        return None
    if await session.scalar(
        select(Organisation.cancelled_at).where(Organisation.id == subscription.organisation_id)
    ):
        return None  # cancelled since renew_due listed it
    # One attempt per paid period: every paid order started or extended the period, so an
    # order after the last paid one is this period's renewal.
    previous = await session.scalar(
        select(Order)
        .where(Order.subscription_id == subscription.id)
        .order_by(Order.created_at.desc())
        .limit(1)
    )
    if previous is not None and previous.status != "paid":
        if previous.status == "pending" and previous.gateway_payment_id is not None:
            return _Unsettled(previous.id, previous.gateway_payment_id)
        return None  # failed, or charged without an answer: its notification settles it
    plan = await session.get(Plan, subscription.plan_id)
    assert plan is not None  # noqa: S101
    # The price agreed when the plan started, whatever the price list says now.
    base = subscription.agreed_price if subscription.agreed_price is not None else plan.price_month
    rate = subscription.agreed_vat_rate
    rate = rate if rate is not None else plan.vat_rate
    vat = _vat(base, rate)
    order = Order(
        organisation_id=subscription.organisation_id,
        plan_id=plan.id,
        term="recurring",
        method="card",
        base=base,
        vat=vat,
        total=base + vat,
        vat_rate=rate,
        currency=CURRENCY,
        variable_symbol=_variable_symbol(),
        status="pending",
        subscription_id=subscription.id,
    )
    session.add(order)
    await session.flush()
    return _Charge(
        order_id=order.id,
        parent_id=subscription.gateway_parent_id,
        amount=order.total,
        order_number=order.variable_symbol,
        description=_description(plan, "recurring"),
    )


async def _ask_about(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    client: GoPay,
    unsettled: _Unsettled,
) -> None:
    try:
        payment = await client.status(unsettled.payment_id)
    except GatewayError as exc:
        logger.warning("gateway status of payment %d failed: %s", unsettled.payment_id, exc)
        return
    async with sessionmaker() as session, session.begin():
        await retention.lock_writes(session)
        order = await _locked_order(session, unsettled.order_id)
        if order.status == "pending":
            await _settle(session, settings, order, payment)


async def ending_notices(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, day: date | None = None
) -> int:
    """Tell organisations whose paid plan ends in 14 days and will not renew by itself."""
    day = day or today()
    sent = 0
    async with sessionmaker() as session, session.begin():
        await retention.lock_writes(session)
        subscriptions = await session.scalars(
            select(Subscription)
            .where(
                Subscription.paid_until <= day + timedelta(days=ENDING_NOTICE_DAYS),
                Subscription.paid_until >= day,
            )
            .with_for_update(skip_locked=True)
        )
        for subscription in subscriptions:
            renews = (
                subscription.gateway_parent_id is not None
                and subscription.recurrence_stopped_at is None
                and subscription.recurring_until is not None
                and subscription.paid_until < subscription.recurring_until
            )
            if renews or subscription.ending_notice_for == subscription.paid_until:
                continue
            if await session.scalar(
                select(Subscription.id).where(
                    Subscription.organisation_id == subscription.organisation_id,
                    Subscription.starts_on <= subscription.paid_until + timedelta(days=1),
                    Subscription.paid_until > subscription.paid_until,
                )
            ):
                continue  # the days after it are paid already
            subscription.ending_notice_for = subscription.paid_until
            organisation = await session.get(Organisation, subscription.organisation_id)
            assert organisation is not None  # noqa: S101
            await _mail(
                session, settings, organisation, "billing_ending",
                paid_until=subscription.paid_until.strftime("%d. %m. %Y"),
            )  # fmt: skip
            sent += 1
    return sent
