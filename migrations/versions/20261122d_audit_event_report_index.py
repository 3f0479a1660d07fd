"""Audit events indexed by report: a case's timeline and its reads in a session

Revision ID: 20261122d
Revises: 20261122c
Create Date: 2026-11-22 02:21:10.051609
"""

from collections.abc import Sequence

from alembic import op

revision: str = "20261122d"
down_revision: str | None = "20261122c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_event_report_id"), ["report_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_event_report_id"))
