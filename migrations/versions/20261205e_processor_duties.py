"""Processor duties: the sub-processors list with its history, the support contact and status
line, incidents recorded before their organisations are notified

Revision ID: 20261205e
Revises: 20261205d
Create Date: 2026-12-05 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.base

revision: str = "20261205e"
down_revision: str | None = "20261205d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sub_processor",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("purpose_cs", sa.String(length=500), nullable=False),
        sa.Column("purpose_en", sa.String(length=500), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("effective_on", sa.Date(), nullable=False),
        sa.Column("removed_on", sa.Date(), nullable=True),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sub_processor")),
    )
    op.create_table(
        "sub_processor_change",
        sa.Column("sub_processor_id", sa.Uuid(), nullable=False),
        sa.Column("change", sa.String(length=10), nullable=False),
        sa.Column("effective_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("purpose_cs", sa.String(length=500), nullable=False),
        sa.Column("purpose_en", sa.String(length=500), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sub_processor_id"],
            ["sub_processor.id"],
            name=op.f("fk_sub_processor_change_sub_processor_id_sub_processor"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sub_processor_change")),
    )
    with op.batch_alter_table("sub_processor_change", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sub_processor_change_recorded_at"), ["recorded_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_sub_processor_change_sub_processor_id"),
            ["sub_processor_id"],
            unique=False,
        )
    op.create_table(
        "service_contact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("support_email", sa.String(length=254), nullable=False),
        sa.Column("support_phone", sa.String(length=40), nullable=False),
        sa.Column("status_cs", sa.String(length=200), nullable=False),
        sa.Column("status_en", sa.String(length=200), nullable=False),
        sa.Column("updated_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_contact")),
    )
    with op.batch_alter_table("incident_notice", schema=None) as batch_op:
        batch_op.alter_column(
            "notified_at", existing_type=app.models.base.UTCDateTime(timezone=True), nullable=True
        )


def downgrade() -> None:
    # Notices still waiting are sent by nobody once this is undone: mark them as of now.
    notice = sa.table(
        "incident_notice", sa.column("notified_at", app.models.base.UTCDateTime(timezone=True))
    )
    op.execute(
        notice.update()
        .where(notice.c.notified_at.is_(None))
        .values(notified_at=app.models.base.utcnow())
    )
    with op.batch_alter_table("incident_notice", schema=None) as batch_op:
        batch_op.alter_column(
            "notified_at", existing_type=app.models.base.UTCDateTime(timezone=True), nullable=False
        )
    op.drop_table("service_contact")
    with op.batch_alter_table("sub_processor_change", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sub_processor_change_sub_processor_id"))
        batch_op.drop_index(batch_op.f("ix_sub_processor_change_recorded_at"))
    op.drop_table("sub_processor_change")
    op.drop_table("sub_processor")
