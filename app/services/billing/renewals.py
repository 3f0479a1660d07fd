import calendar
import json
import logging
import secrets
import traceback
import uuid
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import TypeVar

from sqlalchemy import Select, false, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.errors import AppError, Conflict, InvalidInput, NotFound
from app.i18n import N_
from app.models import (
    Invitation,
    Invoice,
    InvoiceCounter,
    Membership,
    Order,
    Organisation,
    Plan,
    Subscription,
)
from app.models.base import utcnow
from app.payments.gopay import RECURRENCE_STOPPED, GatewayError, GatewayPayment, GoPay
from app.services import deadlines, leaving, mail, retention
from app.services.invoice_pdf import (
    InvoiceDocument,
    InvoiceLine,
    Party,
    format_amount,
    render_invoice,
)
from app.templating import render_mail

logger = logging.getLogger("pistalka.billing")

FREE = "free"
TERMS = {"year": 12, "recurring": 24}
RECURRING_MONTHS = 24
ENDING_NOTICE_DAYS = 14
PROFORMA_DUE_DAYS = 14
# A renewal missed on the last paid day (the worker down) is still charged this many days later;
# until then the recurrence counts as running: it can be stopped and it blocks new orders.
RENEWAL_GRACE_DAYS = 3
CURRENCY = "CZK"
GATEWAY_TIMEOUT_SECONDS = 15.0
Owned = TypeVar("Owned", Invoice, Order)


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


def _description(plan: Plan, term: str) -> str:
    if term == "year":
        return f"Píšťalka {plan.name_cs} – 12 měsíců / 12 months"
    return f"Píšťalka {plan.name_cs} – 1 měsíc (24měsíční předplatné) / 1 month (24-month plan)"


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


async def _next_number(session: AsyncSession, kind: str, year: int) -> int:
    """The next number of the series, gap-free: taken under a lock, given back on rollback."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        counter_row = postgresql_insert(InvoiceCounter).values(kind=kind, year=year, last=0)
        await session.execute(counter_row.on_conflict_do_nothing())
    else:
        # SQLite: the write lock first, so two issuers never read the same last number.
        await session.execute(
            update(InvoiceCounter)
            .where(false())
            .values(last=InvoiceCounter.last)
            .execution_options(synchronize_session=False)
        )
        statement = sqlite_insert(InvoiceCounter).values(kind=kind, year=year, last=0)
        await session.execute(statement.on_conflict_do_nothing())
    counter = await session.scalar(
        select(InvoiceCounter)
        .where(InvoiceCounter.kind == kind, InvoiceCounter.year == year)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert counter is not None  # noqa: S101 - inserted above
    counter.last += 1
    await session.flush()
    return counter.last


def number_text(kind: str, year: int, sequence: int) -> str:
    return f"{'ZF' if kind == 'proforma' else ''}{year}{sequence:06d}"


async def _issue(
    session: AsyncSession,
    settings: Settings,
    order: Order,
    kind: str,
    *,
    issued_on: date,
    taxable_supply_on: date | None,
    due_on: date,
    advance_number: str | None = None,
) -> Invoice:
    _require_supplier(settings)
    organisation = await session.get(Organisation, order.organisation_id)
    plan = await session.get(Plan, order.plan_id)
    assert organisation is not None  # noqa: S101 - a foreign key
    assert plan is not None  # noqa: S101 - a foreign key
    sequence = await _next_number(session, kind, issued_on.year)
    document = InvoiceDocument(
        kind="proforma" if kind == "proforma" else "invoice",
        number=number_text(kind, issued_on.year, sequence),
        supplier=Party(
            settings.supplier_name,
            settings.supplier_address,
            settings.supplier_ico,
            settings.supplier_dic or None,
        ),
        customer=Party(
            organisation.name, organisation.address, organisation.ico, organisation.dic or None
        ),
        issued_on=issued_on,
        taxable_supply_on=taxable_supply_on,
        due_on=due_on,
        variable_symbol=order.variable_symbol,
        lines=[
            InvoiceLine(
                description=_description(plan, order.term),
                quantity=1,
                unit_price=order.base,
                vat_rate=order.vat_rate,
            )
        ],
        currency=order.currency,
        bank_account=settings.supplier_bank_account or None if kind == "proforma" else None,
        paid=kind == "invoice" and order.method == "card",
        advance_number=advance_number,
    )
    invoice = Invoice(
        organisation_id=organisation.id,
        order_id=order.id,
        kind=kind,
        year=issued_on.year,
        sequence=sequence,
        number=document.number,
        issued_on=issued_on,
        document=json.dumps(asdict(document), default=str, ensure_ascii=False),
        pdf=render_invoice(document),
    )
    session.add(invoice)
    await session.flush()
    return invoice


async def _mail(
    session: AsyncSession,
    settings: Settings,
    organisation: Organisation,
    name: str,
    **context: object,
) -> None:
    subject, text = render_mail(
        name,
        organisation=organisation,
        link=f"{settings.public_url.rstrip('/')}/organisations/{organisation.slug}/billing",
        **context,
    )
    for email in sorted(
        {organisation.email, *await leaving.designated_persons(session, organisation.id)}
    ):
        await mail.enqueue(session, settings, kind=name, to=email, subject=subject, text=text)


async def _locked_order(session: AsyncSession, order_id: uuid.UUID) -> Order:
    order = await session.scalar(
        select(Order)
        .where(Order.id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if order is None:
        raise NotFound(N_("No such order."))
    return order


async def issue_proforma(session: AsyncSession, settings: Settings, order_id: uuid.UUID) -> Invoice:
    """The sales department's proforma for an order paid by transfer."""
    order = await _locked_order(session, order_id)
    if order.method != "transfer" or order.status != "requested":
        raise Conflict(N_("This order does not wait for a proforma invoice."), code="order_state")
    day = today()
    invoice = await _issue(
        session,
        settings,
        order,
        "proforma",
        issued_on=day,
        taxable_supply_on=None,
        due_on=day + timedelta(days=PROFORMA_DUE_DAYS),
    )
    order.status = "pending"
    organisation = await session.get(Organisation, order.organisation_id)
    assert organisation is not None  # noqa: S101
    await _mail(
        session, settings, organisation, "billing_proforma", number=invoice.number,
        total=format_amount(order.total), variable_symbol=order.variable_symbol,
        due_on=(day + timedelta(days=PROFORMA_DUE_DAYS)).strftime("%d. %m. %Y"),
    )  # fmt: skip
    return invoice


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
