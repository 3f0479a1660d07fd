"""A whistleblower may exclude designated persons from a report: published names of the persons,
the report key sealed to each remaining person and to the recovery key pair

Revision ID: 20261205f
Revises: 20261205e
Create Date: 2026-12-05 20:00:00.000000

A report that excludes someone has no copy of its key sealed to the organisation key, which the
excluded person holds: `report.key_for_organisation` becomes nullable.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.base

revision: str = "20261205f"
down_revision: str | None = "20261205e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("membership", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("published_name", sa.String(length=200), nullable=False, server_default="")
        )
    with op.batch_alter_table("report", schema=None) as batch_op:
        batch_op.alter_column("key_for_organisation", existing_type=sa.LargeBinary(), nullable=True)
        batch_op.add_column(sa.Column("key_for_recovery", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("exclusion_tags", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("sealed_exclusion", sa.LargeBinary(), nullable=True))
    op.create_table(
        "report_recipient",
        sa.Column("report_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("sealed_report_key", sa.LargeBinary(), nullable=False),
        sa.Column("granted_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["granted_by"],
            ["member.id"],
            name=op.f("fk_report_recipient_granted_by_member"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["member.id"],
            name=op.f("fk_report_recipient_member_id_member"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
            name=op.f("fk_report_recipient_organisation_id_organisation"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["report.id"],
            name=op.f("fk_report_recipient_report_id_report"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("report_id", "member_id", name=op.f("pk_report_recipient")),
    )
    op.create_index(
        op.f("ix_report_recipient_member_id"), "report_recipient", ["member_id"], unique=False
    )
    op.create_index(
        op.f("ix_report_recipient_organisation_id"),
        "report_recipient",
        ["organisation_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_table("report_recipient")
    # Reports that exclude someone have no key for the organisation: they cannot stay.
    op.execute("DELETE FROM report WHERE key_for_organisation IS NULL")
    with op.batch_alter_table("report", schema=None) as batch_op:
        batch_op.drop_column("sealed_exclusion")
        batch_op.drop_column("exclusion_tags")
        batch_op.drop_column("key_for_recovery")
        batch_op.alter_column(
            "key_for_organisation", existing_type=sa.LargeBinary(), nullable=False
        )
    with op.batch_alter_table("membership", schema=None) as batch_op:
        batch_op.drop_column("published_name")
