"""Key custody: integrity tags on the organisation key and memberships, key rotation, recovery
key pairs

Revision ID: 20261205a
Revises: 20261127
Create Date: 2026-12-05 08:30:00.000000

Rows that exist at the upgrade were written by the service and are tagged here under the server
key; from then on only the service tags rows, so rows written into the database directly are
told apart. Organisations keep their recovery key as it is (it wraps the organisation private
key itself) until their first key rotation, which gives them a recovery key pair.
"""

import hashlib
import hmac
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

import app.models.base
from app.crypto import derive_key

revision: str = "20261205a"
down_revision: str | None = "20261127"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tag(key: bytes, purpose: bytes, *parts: bytes) -> bytes:
    # Frozen copy of keys.integrity_tag at this revision.
    mac = hmac.new(key, purpose, hashlib.sha256)
    for part in parts:
        mac.update(len(part).to_bytes(4, "big"))
        mac.update(part)
    return mac.digest()


_organisation = sa.table(
    "organisation",
    sa.column("id", sa.Uuid()),
    sa.column("public_key", sa.LargeBinary()),
    sa.column("key_tag", sa.LargeBinary()),
)
_membership = sa.table(
    "membership",
    sa.column("id", sa.Uuid()),
    sa.column("organisation_id", sa.Uuid()),
    sa.column("member_id", sa.Uuid()),
    sa.column("tag", sa.LargeBinary()),
)
_member = sa.table("member", sa.column("id", sa.Uuid()), sa.column("public_key", sa.LargeBinary()))


def _tag_existing_rows() -> None:
    connection = op.get_bind()
    organisations = connection.execute(sa.select(_organisation.c.id, _organisation.c.public_key))
    memberships = connection.execute(
        sa.select(
            _membership.c.id,
            _membership.c.organisation_id,
            _membership.c.member_id,
            _member.c.public_key,
        ).join(_member, _member.c.id == _membership.c.member_id)
    )
    organisation_rows, membership_rows = organisations.all(), memberships.all()
    if not organisation_rows and not membership_rows:
        return  # a new database: the server key is not needed (nor created) here
    key = derive_key(context.config.attributes["settings"].server_key, "integrity")
    version = (1).to_bytes(4, "big")
    for organisation_id, public_key in organisation_rows:
        tag = _tag(key, b"organisation-key", organisation_id.bytes, version, public_key, b"")
        connection.execute(
            _organisation.update().where(_organisation.c.id == organisation_id).values(key_tag=tag)
        )
    for row_id, organisation_id, member_id, public_key in membership_rows:
        tag = _tag(key, b"membership", organisation_id.bytes, member_id.bytes, public_key)
        connection.execute(_membership.update().where(_membership.c.id == row_id).values(tag=tag))


def upgrade() -> None:
    # In place (ADD COLUMN), never a table rebuild: on SQLite a rebuilt organisation table would
    # cascade the deletion to every row that refers to it.
    op.add_column(
        "organisation",
        sa.Column("key_version", sa.Integer(), nullable=False, server_default="1"),
    )
    op.add_column("organisation", sa.Column("recovery_public_key", sa.LargeBinary()))
    op.add_column("organisation", sa.Column("recovery_grant", sa.LargeBinary()))
    op.add_column("organisation", sa.Column("key_tag", sa.LargeBinary(length=32)))
    op.add_column("membership", sa.Column("next_org_key_grant", sa.LargeBinary()))
    op.add_column("membership", sa.Column("tag", sa.LargeBinary(length=32)))
    op.add_column(
        "report", sa.Column("key_version", sa.Integer(), nullable=False, server_default="1")
    )
    op.create_table(
        "key_rotation",
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("recovery_public_key", sa.LargeBinary(), nullable=True),
        sa.Column("recovery_wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("recovery_grant", sa.LargeBinary(), nullable=False),
        sa.Column("started_at", app.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_by", sa.Uuid(), nullable=True),
        sa.Column("tag", sa.LargeBinary(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisation.id"],
            name=op.f("fk_key_rotation_organisation_id_organisation"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["started_by"],
            ["member.id"],
            name=op.f("fk_key_rotation_started_by_member"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("organisation_id", name=op.f("pk_key_rotation")),
    )
    _tag_existing_rows()


def downgrade() -> None:
    op.drop_table("key_rotation")
    # SQLite >= 3.35 drops columns in place, without the rebuild that would cascade.
    op.drop_column("report", "key_version")
    op.drop_column("membership", "tag")
    op.drop_column("membership", "next_org_key_grant")
    for column in ("key_tag", "recovery_grant", "recovery_public_key", "key_version"):
        op.drop_column("organisation", column)
