"""Keyed audit chain and sealed access reasons

Revision ID: 20261205b
Revises: 20261205a
Create Date: 2026-12-05 12:00:00.000000

The audit chain was plain SHA-256, so whoever could write to the database could remove events and
recompute it. Each organisation's chain is re-chained here under a sub-key of the server key, as
far as it is intact: from an event that no longer fits the old chain on, the events keep their old
hashes, so the break stays visible. The reasons designated persons typed (opening a case,
exporting the register or all data) are sealed to the organisation's public key, and the event
keeps only a commitment to them. A new database needs (and creates) no server key here.
"""

import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import context, op

import app.models.base
from app.crypto import derive_key, seal_to

revision: str = "20261205b"
down_revision: str | None = "20261205a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS_HASH = bytes(32)
REASON_ACTIONS = ("case.read", "register.export", "organisation.export")
NONCE_SIZE = 16

_organisation = sa.table(
    "organisation",
    sa.column("id", sa.Uuid()),
    sa.column("public_key", sa.LargeBinary()),
    sa.column("key_version", sa.Integer()),
)
_event = sa.table(
    "audit_event",
    sa.column("id", sa.Uuid()),
    sa.column("organisation_id", sa.Uuid()),
    sa.column("seq", sa.Integer()),
    sa.column("created_at", app.models.base.UTCDateTime(timezone=True)),
    sa.column("member_id", sa.Uuid()),
    sa.column("report_id", sa.Uuid()),
    sa.column("action", sa.String()),
    sa.column("detail", sa.String()),
    sa.column("prev_hash", sa.LargeBinary()),
    sa.column("hash", sa.LargeBinary()),
    sa.column("sealed_reason", sa.LargeBinary()),
    sa.column("reason_key_version", sa.Integer()),
)


def _encoded(
    organisation_id: uuid.UUID,
    seq: int,
    created_at: datetime,
    member_id: uuid.UUID | None,
    report_id: uuid.UUID | None,
    action: str,
    detail: str,
    prev_hash: bytes,
) -> bytes:
    # Frozen copy of the canonical encoding of audit.event_hash at this revision.
    payload = {
        "organisation_id": str(organisation_id),
        "seq": seq,
        "created_at": created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "member_id": str(member_id) if member_id is not None else "",
        "report_id": str(report_id) if report_id is not None else "",
        "action": action,
        "detail": detail,
        "prev_hash": prev_hash.hex(),
    }
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return encoded.encode()


def _seal_reason(public_key: bytes, event_id: uuid.UUID, reason: str) -> tuple[str, bytes]:
    # Frozen copy of audit.seal_reason at this revision.
    sealed = secrets.token_bytes(NONCE_SIZE) + reason.encode()
    commitment = "sealed:" + hashlib.sha256(sealed).hexdigest()
    return commitment, seal_to(public_key, sealed, b"audit-reason|" + event_id.bytes)


def _rechain(
    connection: sa.Connection, key: bytes, organisation: sa.Row[tuple[uuid.UUID, bytes, int]]
) -> None:
    organisation_id, public_key, key_version = organisation
    rows = connection.execute(
        sa.select(_event).where(_event.c.organisation_id == organisation_id).order_by(_event.c.seq)
    ).all()
    updates = []
    intact = True
    old_prev = new_prev = GENESIS_HASH
    for expected_seq, row in enumerate(rows, start=1):
        fields = (row.organisation_id, row.seq, row.created_at, row.member_id, row.report_id,
                  row.action)  # fmt: skip
        if intact:
            old_hash = hashlib.sha256(_encoded(*fields, row.detail, row.prev_hash)).digest()
            intact = (
                row.seq == expected_seq
                and hmac.compare_digest(old_hash, row.hash)
                and hmac.compare_digest(row.prev_hash, old_prev)
            )
            old_prev = row.hash
        values: dict[str, object] = {
            "event_id": row.id,
            "new_detail": row.detail,
            "new_sealed": None,
            "new_version": None,
            "new_prev": row.prev_hash,
            "new_hash": row.hash,
        }
        if row.action in REASON_ACTIONS and row.detail:
            values["new_detail"], values["new_sealed"] = _seal_reason(
                public_key, row.id, row.detail
            )
            values["new_version"] = key_version
        if intact:
            values["new_prev"] = new_prev
            new_prev = hmac.new(
                key, _encoded(*fields, str(values["new_detail"]), new_prev), hashlib.sha256
            ).digest()
            values["new_hash"] = new_prev
        updates.append(values)
    if updates:
        connection.execute(
            _event.update()
            .where(_event.c.id == sa.bindparam("event_id"))
            .values(
                detail=sa.bindparam("new_detail"),
                sealed_reason=sa.bindparam("new_sealed"),
                reason_key_version=sa.bindparam("new_version"),
                prev_hash=sa.bindparam("new_prev"),
                hash=sa.bindparam("new_hash"),
            ),
            updates,
        )


def _rechain_existing_events() -> None:
    connection = op.get_bind()
    if connection.execute(sa.select(_event.c.id).limit(1)).first() is None:
        return  # a new database: the server key is not needed (nor created) here
    key = derive_key(context.config.attributes["settings"].server_key, "audit-chain")
    organisations = connection.execute(
        sa.select(_organisation.c.id, _organisation.c.public_key, _organisation.c.key_version)
    ).all()
    for organisation in organisations:
        _rechain(connection, key, organisation)


def upgrade() -> None:
    op.add_column("audit_event", sa.Column("sealed_reason", sa.LargeBinary(), nullable=True))
    op.add_column("audit_event", sa.Column("reason_key_version", sa.Integer(), nullable=True))
    _rechain_existing_events()


def downgrade() -> None:
    # The keyed chain and the sealed reasons stay as they are: the clear text is gone.
    op.drop_column("audit_event", "reason_key_version")
    op.drop_column("audit_event", "sealed_reason")
