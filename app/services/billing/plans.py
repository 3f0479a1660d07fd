"""Plans and their limits: the price list, the plan in force, what it allows."""

import calendar
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import Conflict
from app.i18n import N_
from app.models import Invitation, Invoice, Membership, Order, Organisation, Plan, Subscription
from app.models.base import utcnow
from app.payments.gopay import GoPay
from app.services import deadlines

FREE = "free"
RECURRING_MONTHS = 24
# A renewal missed on the last paid day (the worker down) is still charged this many days later;
# until then the recurrence counts as running: it can be stopped and it blocks new orders.
RENEWAL_GRACE_DAYS = 3
GATEWAY_TIMEOUT_SECONDS = 15.0


def add_months(day: date, months: int) -> date:
    """The same day `months` later, or the month's last day (Civil Code § 605)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def today() -> date:
    return deadlines.local_date(utcnow())


def card_payments(settings: Settings) -> bool:
    """Whether the card payment gateway is configured."""
    return bool(settings.gopay_url) and settings.gopay_client_secret is not None


def gateway(settings: Settings) -> GoPay | None:
    """A client of the card payment gateway, when configured; the caller closes it."""
    if not card_payments(settings) or settings.gopay_client_secret is None:
        return None
    return GoPay(
        base_url=settings.gopay_url,
        goid=settings.gopay_goid,
        client_id=settings.gopay_client_id,
        client_secret=settings.gopay_client_secret.get_secret_value(),
        timeout=GATEWAY_TIMEOUT_SECONDS,
    )


def supplier_configured(settings: Settings) -> bool:
    """Whether the operator's own details for invoices are filled in, not the placeholders."""
    placeholder_address = Settings.model_fields["supplier_address"].default
    ico = settings.supplier_ico.strip()
    return (
        len(ico) == 8
        and ico.isdigit()
        and ico != "00000000"
        and bool(settings.supplier_name.strip())
        and settings.supplier_address.strip() not in ("", placeholder_address)
        and bool(settings.supplier_dic.strip())
        and bool(settings.supplier_bank_account.strip())
    )


def _require_supplier(settings: Settings) -> None:
    # A tax document without the supplier's real IČO, DIČ and account is not valid.
    if not supplier_configured(settings):
        raise Conflict(
            N_(
                "Paid plans cannot be ordered yet: the operator has not filled in its details "
                "for invoices. The free plan works in full."
            ),
            code="supplier_not_configured",
        )


async def price_list(session: AsyncSession) -> list[Plan]:
    return list(
        await session.scalars(select(Plan).where(Plan.active).order_by(Plan.sort_order, Plan.code))
    )


async def current_subscription(
    session: AsyncSession, organisation_id: uuid.UUID, day: date | None = None
) -> Subscription | None:
    day = day or today()
    result: Subscription | None = await session.scalar(
        select(Subscription)
        .where(
            Subscription.organisation_id == organisation_id,
            Subscription.starts_on <= day,
            Subscription.paid_until >= day,
        )
        .order_by(Subscription.paid_until.desc())
        .limit(1)
    )
    return result


async def current_plan(
    session: AsyncSession, organisation_id: uuid.UUID, day: date | None = None
) -> Plan:
    """The plan in force: the paid one, else the free one."""
    subscription = await current_subscription(session, organisation_id, day)
    plan_id = subscription.plan_id if subscription is not None else None
    plan = await session.get(Plan, plan_id) if plan_id is not None else None
    if plan is None:
        plan = await session.scalar(select(Plan).where(Plan.code == FREE))
    if plan is None:
        raise RuntimeError("the price list has no free plan")
    return plan


@dataclass(frozen=True)
class Overview:
    """What an organisation's billing page shows."""

    plan: Plan
    subscription: Subscription | None
    price_list: list[Plan]
    plans: dict[uuid.UUID, Plan]  # every plan an order may name, inactive ones too
    orders: list[Order]
    invoices: list[Invoice]
    next_start: date  # the first day of a plan ordered now
    recurrence: Subscription | None  # a recurring card payment that will charge again


async def overview(session: AsyncSession, organisation: Organisation) -> Overview:
    """The organisation's plan, orders and invoices."""
    orders = await session.scalars(
        select(Order)
        .where(Order.organisation_id == organisation.id)
        .order_by(Order.created_at.desc())
    )
    invoices = await session.scalars(
        select(Invoice)
        .where(Invoice.organisation_id == organisation.id)
        .order_by(Invoice.issued_on.desc(), Invoice.number.desc())
    )
    return Overview(
        plan=await current_plan(session, organisation.id),
        subscription=await current_subscription(session, organisation.id),
        price_list=await price_list(session),
        plans={plan.id: plan for plan in await session.scalars(select(Plan))},
        orders=list(orders),
        invoices=list(invoices),
        next_start=await _next_start(session, organisation.id, today()),
        recurrence=await _renewing(session, organisation.id),
    )


async def _next_start(session: AsyncSession, organisation_id: uuid.UUID, day: date) -> date:
    """The day a plan paid on `day` starts: then, or after the paid days already running."""
    paid_until: date | None = await session.scalar(
        select(func.max(Subscription.paid_until)).where(
            Subscription.organisation_id == organisation_id, Subscription.paid_until >= day
        )
    )
    return day if paid_until is None else paid_until + timedelta(days=1)


async def check_designated_persons(session: AsyncSession, organisation: Organisation) -> None:
    """Before inviting one more designated person."""
    plan = await current_plan(session, organisation.id)
    members = await session.scalar(
        select(func.count()).where(Membership.organisation_id == organisation.id)
    )
    pending = await session.scalar(
        select(func.count()).where(
            Invitation.organisation_id == organisation.id,
            Invitation.accepted_at.is_(None),
            Invitation.expires_at > utcnow(),
        )
    )
    if (members or 0) + (pending or 0) >= plan.max_designated_persons:
        raise Conflict(
            N_(
                "Your plan allows no more designated persons. A higher plan on the price list "
                "allows more."
            ),
            code="plan_limit",
            field="email",
        )


async def check_embed_origins(
    session: AsyncSession, organisation: Organisation, count: int
) -> None:
    """Before saving the websites allowed to embed the form."""
    plan = await current_plan(session, organisation.id)
    if count > plan.max_embed_origins:
        raise Conflict(
            N_(
                "Your plan allows fewer websites to embed the form. A higher plan on the price "
                "list allows more."
            ),
            code="plan_limit",
            field="embed_origins",
        )


def _description(plan: Plan, term: str) -> str:
    if term == "year":
        return f"Píšťalka {plan.name_cs} – 12 měsíců / 12 months"
    return f"Píšťalka {plan.name_cs} – 1 měsíc (24měsíční předplatné) / 1 month (24-month plan)"


def _recurrences(organisation_id: uuid.UUID, day: date | None) -> Select[Subscription]:
    """The organisation's recurring card payments not stopped, of plans that renew_due may still
    renew on `day`."""
    query = select(Subscription).where(
        Subscription.organisation_id == organisation_id,
        Subscription.gateway_parent_id.is_not(None),
        Subscription.recurrence_stopped_at.is_(None),
    )
    if day is None:
        return query
    return query.where(Subscription.paid_until >= day - timedelta(days=RENEWAL_GRACE_DAYS))


async def _renewing(session: AsyncSession, organisation_id: uuid.UUID) -> Subscription | None:
    """The organisation's recurring card payment that will charge the card again, if any."""
    subscription: Subscription | None = await session.scalar(
        _recurrences(organisation_id, today())
        .where(Subscription.paid_until < Subscription.recurring_until)
        .limit(1)
    )
    return subscription
