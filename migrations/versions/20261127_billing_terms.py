"""Billing terms: invoices outlive an erased organisation; subscriptions keep the agreed price

Revision ID: 20261127
Revises: 20261122d
Create Date: 2026-11-27 03:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261127"
down_revision: str | None = "20261122d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _invoice_links(ondelete: str, nullable: bool) -> None:
    # On SQLite the batch recreates the invoice table; nothing refers to it, so nothing cascades.
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.drop_constraint("fk_invoice_organisation_id_organisation", type_="foreignkey")
        batch_op.drop_constraint("fk_invoice_order_id_billing_order", type_="foreignkey")
        batch_op.alter_column("organisation_id", existing_type=sa.Uuid(), nullable=nullable)
        batch_op.alter_column("order_id", existing_type=sa.Uuid(), nullable=nullable)
        batch_op.create_foreign_key(
            batch_op.f("fk_invoice_organisation_id_organisation"),
            "organisation",
            ["organisation_id"],
            ["id"],
            ondelete=ondelete,
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_invoice_order_id_billing_order"),
            "billing_order",
            ["order_id"],
            ["id"],
            ondelete=ondelete,
        )


def upgrade() -> None:
    _invoice_links("SET NULL", nullable=True)
    # In place, never a table rebuild: on SQLite, dropping the old subscription table would
    # empty billing_order.subscription_id through its foreign key.
    op.add_column("subscription", sa.Column("agreed_price", sa.Integer(), nullable=True))
    op.add_column("subscription", sa.Column("agreed_vat_rate", sa.Integer(), nullable=True))
    # Running subscriptions keep the price of the order that started them.
    op.execute(
        """
        UPDATE subscription SET
          agreed_price = (
            SELECT billing_order.base FROM billing_order
            WHERE billing_order.subscription_id = subscription.id
            ORDER BY billing_order.created_at LIMIT 1),
          agreed_vat_rate = (
            SELECT billing_order.vat_rate FROM billing_order
            WHERE billing_order.subscription_id = subscription.id
            ORDER BY billing_order.created_at LIMIT 1)
        """
    )


def downgrade() -> None:
    op.drop_column("subscription", "agreed_vat_rate")  # SQLite >= 3.35 drops in place
    op.drop_column("subscription", "agreed_price")
    kept = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM invoice WHERE organisation_id IS NULL OR order_id IS NULL")
    )
    if kept:
        # They are tax documents the operator must keep; the old schema cannot hold them.
        raise RuntimeError(f"{kept} invoices of erased organisations would be lost")
    _invoice_links("CASCADE", nullable=False)
