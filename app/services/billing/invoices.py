"""Invoices and proforma invoices: gap-free numbering, the documents, their mails."""

import json
import uuid
from dataclasses import asdict
from datetime import date, timedelta

from sqlalchemy import false, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import Conflict, NotFound
from app.i18n import N_
from app.models import Invoice, InvoiceCounter, Order, Organisation, Plan
from app.services import mail
from app.services.billing.plans import _description, _require_supplier, today
from app.services.invoice_pdf import (
    InvoiceDocument,
    InvoiceLine,
    Party,
    format_amount,
    render_invoice,
)
from app.services.recipients import organisation_recipients
from app.templating import render_mail

PROFORMA_DUE_DAYS = 14


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
    for email in await organisation_recipients(session, organisation):
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
