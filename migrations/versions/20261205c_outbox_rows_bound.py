"""Outbox rows bound to their purpose and row; sent and given-up mails deleted

Revision ID: 20261205c
Revises: 20261205b
Create Date: 2026-12-05 15:00:00.000000

A sealed outbox message had one constant as its associated data. Each waiting mail is re-sealed
here once, under a random `seal_id` of its row and its kind, so it stays deliverable and nothing
keeps opening the old form. Rows of mails already sent (their message blanked) or given up are
deleted, as the worker now does; so is a waiting row the server key cannot open (sealed under a
key that is gone, it could never have been sent).
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

import app.models.base
from app.crypto import CryptoError, derive_key, open_sealed, seal

revision: str = "20261205c"
down_revision: str | None = "20261205b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEGACY_AAD = b"outbox"
MAX_ATTEMPTS = 20  # frozen copy of mail.MAX_ATTEMPTS at this revision

_outbox = sa.table(
    "outbox_mail",
    sa.column("id", sa.Integer()),
    sa.column("kind", sa.String()),
    sa.column("seal_id", sa.Uuid()),
    sa.column("sealed_message", sa.LargeBinary()),
    sa.column("attempts", sa.Integer()),
    sa.column("sent_at", app.models.base.UTCDateTime(timezone=True)),
)


def _aad(kind: str, seal_id: uuid.UUID) -> bytes:
    # Frozen copy of mail.outbox_aad at this revision.
    return b"outbox|" + seal_id.bytes + kind.encode()


def _key() -> bytes:
    return derive_key(context.config.attributes["settings"].server_key, "outbox")


def _reseal_waiting_mails() -> None:
    connection = op.get_bind()
    connection.execute(
        sa.delete(_outbox).where(
            sa.or_(
                _outbox.c.sent_at.is_not(None),
                _outbox.c.sealed_message.is_(None),
                _outbox.c.attempts >= MAX_ATTEMPTS,
            )
        )
    )
    rows = connection.execute(sa.select(_outbox.c.id, _outbox.c.kind, _outbox.c.sealed_message))
    waiting = rows.all()
    if not waiting:
        return  # a new database: the server key is not needed (nor created) here
    key = _key()
    for row_id, kind, sealed in waiting:
        try:
            plaintext = open_sealed(key, sealed, LEGACY_AAD)
        except CryptoError:
            connection.execute(sa.delete(_outbox).where(_outbox.c.id == row_id))
            continue
        seal_id = uuid.uuid4()
        connection.execute(
            sa.update(_outbox)
            .where(_outbox.c.id == row_id)
            .values(seal_id=seal_id, sealed_message=seal(key, plaintext, _aad(kind, seal_id)))
        )


def upgrade() -> None:
    op.add_column("outbox_mail", sa.Column("seal_id", sa.Uuid(), nullable=True))
    _reseal_waiting_mails()
    with op.batch_alter_table("outbox_mail", schema=None) as batch_op:
        batch_op.alter_column("seal_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.alter_column("sealed_message", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_index(batch_op.f("ix_outbox_mail_sent_at"))
        batch_op.drop_column("sent_at")


def downgrade() -> None:
    with op.batch_alter_table("outbox_mail", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sent_at", app.models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_outbox_mail_sent_at"), ["sent_at"], unique=False)
        batch_op.alter_column("sealed_message", existing_type=sa.LargeBinary(), nullable=True)
    connection = op.get_bind()
    waiting = connection.execute(
        sa.select(_outbox.c.id, _outbox.c.kind, _outbox.c.seal_id, _outbox.c.sealed_message)
    ).all()
    if waiting:
        key = _key()
        for row_id, kind, seal_id, sealed in waiting:
            plaintext = open_sealed(key, sealed, _aad(kind, seal_id))
            connection.execute(
                sa.update(_outbox)
                .where(_outbox.c.id == row_id)
                .values(sealed_message=seal(key, plaintext, LEGACY_AAD))
            )
    with op.batch_alter_table("outbox_mail", schema=None) as batch_op:
        batch_op.drop_column("seal_id")
