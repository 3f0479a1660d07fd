"""The assessment deadline's unshifted day is stored: extensions run from the shifted deadline;
the register's summary written by a designated person; measures proposed and taken as dated
entries; the reason of a personal meeting planned past its deadline

Revision ID: 20261205d
Revises: 20261205c
Create Date: 2026-12-05 18:00:00.000000

Until now the unshifted day was recomputed as receipt + 30 days per period; an extension now runs
from the legal (already shifted) deadline, by up to 30 days, so the day is kept with the case.
Existing cases get the day they were shown until now.
"""

from collections.abc import Sequence
from datetime import timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

import app.models.base

revision: str = "20261205d"
down_revision: str | None = "20261205c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PRAGUE = ZoneInfo("Europe/Prague")
_report = sa.table(
    "report",
    sa.column("id", sa.Uuid()),
    sa.column("received_at", app.models.base.UTCDateTime(timezone=True)),
    sa.column("extensions", sa.Integer()),
    sa.column("assessment_unshifted_on", sa.Date()),
)


def upgrade() -> None:
    op.add_column("report", sa.Column("assessment_unshifted_on", sa.Date(), nullable=True))
    op.add_column("report", sa.Column("sealed_summary", sa.LargeBinary(), nullable=True))
    op.add_column(
        "report", sa.Column("sealed_meeting_late_reason", sa.LargeBinary(), nullable=True)
    )
    op.create_table(
        "case_measure",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("report_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("told_whistleblower", sa.Boolean(), nullable=False),
        sa.Column("created_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sealed_body", sa.LargeBinary(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["member.id"],
            name=op.f("fk_case_measure_member_id_member"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
            name=op.f("fk_case_measure_organisation_id_organisation"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["report.id"],
            name=op.f("fk_case_measure_report_id_report"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_measure")),
    )
    op.create_index(
        op.f("ix_case_measure_organisation_id"), "case_measure", ["organisation_id"], unique=False
    )
    op.create_index(op.f("ix_case_measure_report_id"), "case_measure", ["report_id"], unique=False)
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_report.c.id, _report.c.received_at, _report.c.extensions)
    ).all()
    for report_id, received_at, extensions in rows:
        received_on = received_at.astimezone(PRAGUE).date()
        unshifted = received_on + timedelta(days=30 * (1 + extensions))
        connection.execute(
            _report.update()
            .where(_report.c.id == report_id)
            .values(assessment_unshifted_on=unshifted)
        )


def downgrade() -> None:
    op.drop_table("case_measure")
    op.drop_column("report", "sealed_meeting_late_reason")
    op.drop_column("report", "sealed_summary")
    op.drop_column("report", "assessment_unshifted_on")
