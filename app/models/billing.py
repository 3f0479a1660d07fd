import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UUIDPrimaryKey, utcnow


class Plan(UUIDPrimaryKey, Base):
    """A plan of the price list: data the operator edits, never code. Prices in hellers."""

    __tablename__ = "plan"

    code: Mapped[str] = mapped_column(String(40), unique=True)
    name_cs: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    description_cs: Mapped[str] = mapped_column(Text, default="")
    description_en: Mapped[str] = mapped_column(Text, default="")
    # Without VAT: one payment for 12 months, or the monthly payment of the 24-month commitment.
    price_year: Mapped[int] = mapped_column(Integer, default=0)
    price_month: Mapped[int] = mapped_column(Integer, default=0)
    vat_rate: Mapped[int] = mapped_column(Integer, default=21)
    max_designated_persons: Mapped[int] = mapped_column(Integer)
    max_embed_origins: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    sort_order: Mapped[int] = mapped_column(Integer, default=0)

    @property
    def free(self) -> bool:
        return self.price_year == 0 and self.price_month == 0


class Subscription(UUIDPrimaryKey, Base):
    """A paid plan of an organisation from `starts_on` to `paid_until`, both inclusive."""

    __tablename__ = "subscription"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), index=True
    )
    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("plan.id"))
    # "year": 12 months paid at once; "recurring": 24 months paid month by month by card.
    term: Mapped[str] = mapped_column(String(20))
    starts_on: Mapped[date]
    paid_until: Mapped[date]
    # The recurring card payment: the gateway's initial payment and the last day it may renew.
    gateway_parent_id: Mapped[int | None] = mapped_column(BigInteger)
    recurring_until: Mapped[date | None]
    recurrence_stopped_at: Mapped[datetime | None]
    # The paid_until for which the "plan ending in 14 days" mail went out.
    ending_notice_for: Mapped[date | None]
    # The price agreed when the plan started (one payment of the term, without VAT, in hellers)
    # and its VAT rate: a renewal charges these, whatever the price list says later.
    # Empty only for subscriptions from before they were recorded.
    agreed_price: Mapped[int | None] = mapped_column(Integer)
    agreed_vat_rate: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Order(UUIDPrimaryKey, Base):
    """An order of a plan, paid by card through the gateway or by transfer of a proforma."""

    __tablename__ = "billing_order"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisation.id", ondelete="CASCADE"), index=True
    )
    plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("plan.id"))
    term: Mapped[str] = mapped_column(String(20))
    method: Mapped[str] = mapped_column(String(20))  # card, transfer
    # Amounts in hellers: without VAT, the VAT and the total to pay.
    base: Mapped[int] = mapped_column(Integer)
    vat: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    vat_rate: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="CZK")
    variable_symbol: Mapped[str] = mapped_column(String(10), unique=True)
    # requested (transfer, awaiting the proforma), pending (awaiting payment), paid, failed
    status: Mapped[str] = mapped_column(String(20))
    gateway_payment_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    # A renewal of a recurring subscription (no new subscription, the paid period grows).
    subscription_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("subscription.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    paid_on: Mapped[date | None]


class Invoice(UUIDPrimaryKey, Base):
    """An invoice (tax document) or a proforma invoice; numbered without gaps per year.

    The operator keeps tax documents for 10 years (VAT Act § 35), longer than an erased
    organisation's data: erasing the organisation or its orders leaves the invoice, with the
    customer as issued in `document`, and only empties the links.
    """

    __tablename__ = "invoice"
    __table_args__ = (UniqueConstraint("kind", "year", "sequence"),)

    organisation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organisation.id", ondelete="SET NULL"), index=True
    )
    order_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("billing_order.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))  # invoice, proforma
    year: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    number: Mapped[str] = mapped_column(String(20))
    issued_on: Mapped[date]
    # The document as issued (parties, lines, dates) in JSON: the PDF is drawn from it.
    document: Mapped[str] = mapped_column(Text)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InvoiceCounter(Base):
    """The last number of a series; taken under a row lock in the issuing transaction."""

    __tablename__ = "invoice_counter"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)
