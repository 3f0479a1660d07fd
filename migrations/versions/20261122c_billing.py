"""Billing: the price list, subscriptions, orders and invoices; the starting plans

Revision ID: 20261122c
Revises: 20261122b
Create Date: 2026-11-22 02:11:38.666074
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.base

revision: str = "20261122c"
down_revision: str | None = "20261122b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STARTING_PLANS = [
    {
        "code": "free",
        "name_cs": "Zdarma",
        "name_en": "Free",
        "description_cs": "Vše, co zákon vyžaduje: formulář, lhůty, evidence, šifrování.",
        "description_en": "Everything the Act requires: the form, deadlines, register, encryption.",
        "price_year": 0,
        "price_month": 0,
        "vat_rate": 21,
        "max_designated_persons": 2,
        "max_embed_origins": 1,
        "active": True,
        "sort_order": 0,
    },
    {
        "code": "standard",
        "name_cs": "Standard",
        "name_en": "Standard",
        "description_cs": "Pro větší týmy a více webů.",
        "description_en": "For larger teams and more websites.",
        "price_year": 490000,
        "price_month": 49000,
        "vat_rate": 21,
        "max_designated_persons": 5,
        "max_embed_origins": 5,
        "active": True,
        "sort_order": 1,
    },
    {
        "code": "premium",
        "name_cs": "Premium",
        "name_en": "Premium",
        "description_cs": "Pro skupiny organizací a rozsáhlé týmy.",
        "description_en": "For groups of organisations and large teams.",
        "price_year": 990000,
        "price_month": 99000,
        "vat_rate": 21,
        "max_designated_persons": 20,
        "max_embed_origins": 20,
        "active": True,
        "sort_order": 2,
    },
]


def upgrade() -> None:
    op.create_table(
        "invoice_counter",
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "year", name=op.f("pk_invoice_counter")),
    )
    plan = op.create_table(
        "plan",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name_cs", sa.String(length=100), nullable=False),
        sa.Column("name_en", sa.String(length=100), nullable=False),
        sa.Column("description_cs", sa.Text(), nullable=False),
        sa.Column("description_en", sa.Text(), nullable=False),
        sa.Column("price_year", sa.Integer(), nullable=False),
        sa.Column("price_month", sa.Integer(), nullable=False),
        sa.Column("vat_rate", sa.Integer(), nullable=False),
        sa.Column("max_designated_persons", sa.Integer(), nullable=False),
        sa.Column("max_embed_origins", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("sort_order", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan")),
        sa.UniqueConstraint("code", name=op.f("uq_plan_code")),
    )
    op.create_table(
        "subscription",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("term", sa.String(length=20), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("paid_until", sa.Date(), nullable=False),
        sa.Column("gateway_parent_id", sa.BigInteger(), nullable=True),
        sa.Column("recurring_until", sa.Date(), nullable=True),
        sa.Column(
            "recurrence_stopped_at", app.models.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("ending_notice_for", sa.Date(), nullable=True),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
            name=op.f("fk_subscription_organisation_id_organisation"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plan.id"], name=op.f("fk_subscription_plan_id_plan")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription")),
    )
    with op.batch_alter_table("subscription", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subscription_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "billing_order",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=False),
        sa.Column("term", sa.String(length=20), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("base", sa.Integer(), nullable=False),
        sa.Column("vat", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("vat_rate", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("variable_symbol", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("gateway_payment_id", sa.BigInteger(), nullable=True),
        sa.Column("subscription_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
            name=op.f("fk_billing_order_organisation_id_organisation"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plan.id"], name=op.f("fk_billing_order_plan_id_plan")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscription.id"],
            name=op.f("fk_billing_order_subscription_id_subscription"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_order")),
        sa.UniqueConstraint("gateway_payment_id", name=op.f("uq_billing_order_gateway_payment_id")),
        sa.UniqueConstraint("variable_symbol", name=op.f("uq_billing_order_variable_symbol")),
    )
    with op.batch_alter_table("billing_order", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_billing_order_organisation_id"), ["organisation_id"], unique=False
        )

    op.create_table(
        "invoice",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["billing_order.id"],
            name=op.f("fk_invoice_order_id_billing_order"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
            name=op.f("fk_invoice_organisation_id_organisation"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice")),
        sa.UniqueConstraint("kind", "year", "sequence", name=op.f("uq_invoice_kind")),
    )
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invoice_order_id"), ["order_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_invoice_organisation_id"), ["organisation_id"], unique=False
        )

    with op.batch_alter_table("organisation", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("dic", sa.String(length=14), nullable=False, server_default="")
        )

    # The starting price list; the operator edits it in the console from then on.
    op.bulk_insert(plan, [{"id": uuid.uuid4(), **row} for row in STARTING_PLANS])


def downgrade() -> None:
    with op.batch_alter_table("organisation", schema=None) as batch_op:
        batch_op.drop_column("dic")

    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invoice_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_invoice_order_id"))

    op.drop_table("invoice")
    with op.batch_alter_table("billing_order", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_order_organisation_id"))

    op.drop_table("billing_order")
    with op.batch_alter_table("subscription", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscription_organisation_id"))

    op.drop_table("subscription")
    op.drop_table("plan")
    op.drop_table("invoice_counter")
    # ### end Alembic commands ###
