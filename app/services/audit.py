"""The audit trail: append-only events, hash-chained per organisation.

Each event's hash is an HMAC under a sub-key of the server key over its own fields and the
previous event's hash, so changing, removing, reordering or inserting an event breaks the chain
from that point on, and whoever can only write to the database cannot compute a chain of their
own. `verify` walks a chain and names the first event that does not fit. Events say who did what
and why, never what a report says.

The reason a person types (opening a case, an export) is sealed to the organisation key: the
event's detail holds only a commitment, SHA-256 over a random nonce and the reason, which the chain
covers; the ciphertext beside it is not chained, so a key rotation can re-seal it.
"""

import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Row, false, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import crypto
from app.config import Settings
from app.db import sqlite_write_lock
from app.models import Organisation
from app.models.audit import AuditEvent
from app.models.base import utcnow
from app.services import keys

GENESIS_HASH = bytes(32)
MAX_ACTION_LENGTH = 40
MAX_DETAIL_LENGTH = 500
VERIFY_BATCH = 1000
LOCK_NAMESPACE = b"pistalka.audit:"
KEY_PURPOSE = "audit-chain"
REASON_PREFIX = "sealed:"
REASON_NONCE_SIZE = 16


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of walking one chain; `checked` counts the events found intact."""

    ok: bool
    checked: int
    first_broken_seq: int | None = None
    problem: str | None = None
    # The newest event's hash of an intact chain, for comparing with a copy kept elsewhere.
    head: bytes | None = None


def chain_key(settings: Settings) -> bytes:
    """The key of the organisations' audit chains; the database never holds it."""
    return keys.server_subkey(settings, KEY_PURPOSE)


def _session_key(session: AsyncSession) -> bytes:
    settings = session.info.get("settings")
    if not isinstance(settings, Settings):
        raise RuntimeError(
            "the audit chain needs a session of create_sessionmaker(engine, settings)"
        )
    return chain_key(settings)


def encode_event(
    *,
    organisation_id: uuid.UUID,
    seq: int,
    created_at: datetime,
    member_id: uuid.UUID | None,
    report_id: uuid.UUID | None,
    action: str,
    detail: str,
    prev_hash: bytes,
) -> bytes:
    """The canonical JSON encoding of an event's fields and the previous hash."""
    # Sorted keys, no optional whitespace and JSON string escaping: one byte string per event,
    # and no two different events share it (no field can spill into another).
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


def event_hash(
    key: bytes,
    *,
    organisation_id: uuid.UUID,
    seq: int,
    created_at: datetime,
    member_id: uuid.UUID | None,
    report_id: uuid.UUID | None,
    action: str,
    detail: str,
    prev_hash: bytes,
) -> bytes:
    """HMAC-SHA256 under the chain key over the event's canonical encoding."""
    encoded = encode_event(
        organisation_id=organisation_id,
        seq=seq,
        created_at=created_at,
        member_id=member_id,
        report_id=report_id,
        action=action,
        detail=detail,
        prev_hash=prev_hash,
    )
    return hmac.new(key, encoded, hashlib.sha256).digest()


def _reason_aad(event_id: uuid.UUID) -> bytes:
    return b"audit-reason|" + event_id.bytes


def _commitment(sealed: bytes) -> str:
    return REASON_PREFIX + hashlib.sha256(sealed).hexdigest()


def seal_reason(public_key: bytes, event_id: uuid.UUID, reason: str) -> tuple[str, bytes]:
    """The commitment an event's detail holds, and the reason sealed to the organisation key."""
    # The nonce keeps a short reason ("kontrola") from being found by hashing guesses.
    sealed = secrets.token_bytes(REASON_NONCE_SIZE) + reason.encode()
    return _commitment(sealed), crypto.seal_to(public_key, sealed, _reason_aad(event_id))


def _case_reason_aad(event_id: uuid.UUID) -> bytes:
    return b"audit-reason-case|" + event_id.bytes


def open_case_reasons(events: Iterable[AuditEvent], report_key: bytes) -> dict[uuid.UUID, str]:
    """Reasons of access to a case that excludes someone: sealed under its report key."""
    opened = {}
    for event in events:
        if event.sealed_reason is None or event.reason_key_version is not None:
            continue
        try:
            sealed = crypto.open_sealed(report_key, event.sealed_reason, _case_reason_aad(event.id))
        except crypto.CryptoError:
            continue
        if hmac.compare_digest(_commitment(sealed).encode(), event.detail.encode()):
            opened[event.id] = sealed[REASON_NONCE_SIZE:].decode(errors="replace")
    return opened


def reseal_reason(
    old_private_key: bytes, new_public_key: bytes, event_id: uuid.UUID, sealed_reason: bytes
) -> bytes | None:
    """The same nonce and reason sealed to a new key (the commitment stays); None if unreadable."""
    aad = _reason_aad(event_id)
    try:
        sealed = crypto.open_with(old_private_key, sealed_reason, aad)
    except crypto.CryptoError:
        return None
    return crypto.seal_to(new_public_key, sealed, aad)


def is_sealed(detail: str) -> bool:
    return detail.startswith(REASON_PREFIX)


def open_reasons(
    events: Iterable[AuditEvent], private_keys: Mapping[int, bytes]
) -> dict[uuid.UUID, str]:
    """The reasons of those events that open with the keys (by version) and fit their commitment."""
    opened = {}
    for event in events:
        key = private_keys.get(event.reason_key_version or 0)
        if event.sealed_reason is None or key is None:
            continue
        try:
            sealed = crypto.open_with(key, event.sealed_reason, _reason_aad(event.id))
        except crypto.CryptoError:
            continue
        # A ciphertext swapped in by SQL opens (the public key is public) but fits no commitment.
        if hmac.compare_digest(_commitment(sealed).encode(), event.detail.encode()):
            opened[event.id] = sealed[REASON_NONCE_SIZE:].decode(errors="replace")
    return opened


def short_hash(value: bytes) -> str:
    """The first 64 bits of a chain hash in hex: enough to compare with a note kept elsewhere."""
    return value[:8].hex()


def lock_key(organisation_id: uuid.UUID) -> int:
    """The PostgreSQL advisory lock key (63 bits, so always a positive bigint) of a chain."""
    digest = hashlib.sha256(LOCK_NAMESPACE + organisation_id.bytes).digest()
    return int.from_bytes(digest[:8], "big") >> 1


async def _lock_chain(session: AsyncSession, organisation_id: uuid.UUID) -> None:
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        # Held until the caller's transaction ends, so the next writer reads our event as last.
        await session.execute(select(func.pg_advisory_xact_lock(lock_key(organisation_id))))
    elif connection.dialect.name == "sqlite":
        # pysqlite runs a SELECT outside any transaction until the first write, so two writers
        # could read the same last event. A write that matches nothing takes SQLite's write lock
        # first (waiting out the busy timeout), and the read below then sees every commit.
        await session.execute(
            update(AuditEvent)
            .where(AuditEvent.organisation_id == organisation_id, false())
            .values(seq=AuditEvent.seq)
            .execution_options(synchronize_session=False)
        )


@dataclass(frozen=True)
class _Pending:
    action: str
    report_id: uuid.UUID | None
    detail: str
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    sealed_reason: bytes | None = field(default=None, repr=False)
    reason_key_version: int | None = None


async def _organisation_key(session: AsyncSession, organisation_id: uuid.UUID) -> tuple[bytes, int]:
    # Locked before the chain, in the order a key rotation's last step takes both, so the
    # rotation either sees this event to re-seal or has already swapped the key we read.
    await sqlite_write_lock(session)
    row = (
        await session.execute(
            select(Organisation.public_key, Organisation.key_version)
            .where(Organisation.id == organisation_id)
            .with_for_update()
        )
    ).one()
    return row.public_key, row.key_version


async def record(
    session: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    action: str,
    member_id: uuid.UUID | None = None,
    report_id: uuid.UUID | None = None,
    detail: str = "",
    reason: str | None = None,
    reason_key: bytes | None = None,
) -> AuditEvent:
    """Append the next event of the organisation's chain in the caller's transaction.

    `reason`, typed by a person, is sealed to the organisation key instead of being stored in
    `detail`; with `reason_key` (the report key of a case that excludes someone, which the
    organisation key must not open) it is sealed under that key, with no key version.
    """
    pending = _Pending(action, report_id, detail)
    if reason is not None:
        if detail:
            raise ValueError("an audit event has either a detail or a reason")
        if reason_key is not None:
            sealed = secrets.token_bytes(REASON_NONCE_SIZE) + reason[:MAX_DETAIL_LENGTH].encode()
            pending = _Pending(
                action, report_id, _commitment(sealed), pending.id,
                crypto.seal(reason_key, sealed, _case_reason_aad(pending.id)),
            )  # fmt: skip
        else:
            public_key, key_version = await _organisation_key(session, organisation_id)
            commitment, sealed = seal_reason(public_key, pending.id, reason[:MAX_DETAIL_LENGTH])
            pending = _Pending(action, report_id, commitment, pending.id, sealed, key_version)
    [event] = await _append(session, organisation_id, member_id, [pending])
    return event


async def record_many(
    session: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    events: Sequence[tuple[str, uuid.UUID | None, str]],
    member_id: uuid.UUID | None = None,
) -> list[AuditEvent]:
    """Append events (action, report id, detail) to the chain under one lock, in order."""
    return await _append(
        session, organisation_id, member_id, [_Pending(*event) for event in events]
    )


async def _append(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    member_id: uuid.UUID | None,
    events: Sequence[_Pending],
) -> list[AuditEvent]:
    key = _session_key(session)
    for pending in events:
        if not pending.action or len(pending.action) > MAX_ACTION_LENGTH:
            raise ValueError(f"audit action must be 1 to {MAX_ACTION_LENGTH} characters")
    await _lock_chain(session, organisation_id)
    last = (
        await session.execute(
            select(AuditEvent.seq, AuditEvent.hash)
            .where(AuditEvent.organisation_id == organisation_id)
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        )
    ).first()
    seq, prev_hash = (last.seq, last.hash) if last is not None else (0, GENESIS_HASH)
    # Set here rather than by the column default: the hash must cover the stored value.
    created_at = utcnow()
    appended = []
    for pending in events:
        seq += 1
        detail = pending.detail[:MAX_DETAIL_LENGTH]
        event = AuditEvent(
            id=pending.id,
            organisation_id=organisation_id,
            seq=seq,
            created_at=created_at,
            member_id=member_id,
            report_id=pending.report_id,
            action=pending.action,
            detail=detail,
            sealed_reason=pending.sealed_reason,
            reason_key_version=pending.reason_key_version,
            prev_hash=prev_hash,
            hash=event_hash(
                key,
                organisation_id=organisation_id,
                seq=seq,
                created_at=created_at,
                member_id=member_id,
                report_id=pending.report_id,
                action=pending.action,
                detail=detail,
                prev_hash=prev_hash,
            ),
        )
        prev_hash = event.hash
        appended.append(event)
    session.add_all(appended)
    # The unique (organisation_id, seq) constraint is the last guard against a lost race.
    await session.flush()
    return appended


ChainRow = Row[uuid.UUID, int, datetime, uuid.UUID | None, uuid.UUID | None, str, str, bytes, bytes]
_CHAIN_COLUMNS = (
    AuditEvent.organisation_id,
    AuditEvent.seq,
    AuditEvent.created_at,
    AuditEvent.member_id,
    AuditEvent.report_id,
    AuditEvent.action,
    AuditEvent.detail,
    AuditEvent.prev_hash,
    AuditEvent.hash,
)


def _check(key: bytes, event: ChainRow, expected_seq: int, expected_prev: bytes) -> str | None:
    if event.seq != expected_seq:
        return f"event {expected_seq} is missing (the next one found is {event.seq})"
    recomputed = event_hash(
        key,
        organisation_id=event.organisation_id,
        seq=event.seq,
        created_at=event.created_at,
        member_id=event.member_id,
        report_id=event.report_id,
        action=event.action,
        detail=event.detail,
        prev_hash=event.prev_hash,
    )
    if not hmac.compare_digest(recomputed, event.hash):
        return "event was changed (its hash does not match its contents)"
    if not hmac.compare_digest(event.prev_hash, expected_prev):
        return "event does not follow the previous one (an event was removed or inserted)"
    return None


async def verify(session: AsyncSession, organisation_id: uuid.UUID) -> VerifyResult:
    """Walk the organisation's chain in seq order and report the first event that breaks it.

    Detected: an event whose fields were changed (its hash no longer matches), an event removed
    from the start or the middle (a gap in seq, or a prev_hash that does not match), and events
    reordered or inserted (their hashes cover seq and the previous hash), also when the events
    after were rehashed: that takes the chain key, which the database does not hold. Not
    detectable from the chain alone: removing the newest events, which leaves a shorter chain
    that is still intact, and a rewrite by whoever holds the server key. A caller that kept the
    number of events and the newest hash elsewhere can compare them with `checked` and `head`.
    """
    key = _session_key(session)
    checked = 0
    expected_prev = GENESIS_HASH
    after = 0
    while True:
        # Columns rather than entities: a long chain does not fill the caller's identity map.
        batch = (
            await session.execute(
                select(*_CHAIN_COLUMNS)
                .where(AuditEvent.organisation_id == organisation_id, AuditEvent.seq > after)
                .order_by(AuditEvent.seq)
                .limit(VERIFY_BATCH)
            )
        ).all()
        for event in batch:
            expected_seq = checked + 1
            problem = _check(key, event, expected_seq, expected_prev)
            if problem is not None:
                return VerifyResult(
                    ok=False, checked=checked, first_broken_seq=expected_seq, problem=problem
                )
            checked += 1
            expected_prev = event.hash
        if len(batch) < VERIFY_BATCH:
            return VerifyResult(ok=True, checked=checked, head=expected_prev if checked else None)
        after = batch[-1].seq


async def verify_all(session: AsyncSession) -> dict[uuid.UUID, VerifyResult]:
    """Verify the chain of every organisation that has audit events."""
    organisation_ids = (
        await session.scalars(
            select(AuditEvent.organisation_id).distinct().order_by(AuditEvent.organisation_id)
        )
    ).all()
    return {
        organisation_id: await verify(session, organisation_id)
        for organisation_id in organisation_ids
    }


async def events(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    *,
    report_id: uuid.UUID | None = None,
    limit: int = 200,
) -> list[AuditEvent]:
    """The organisation's newest events first, optionally those of one report only."""
    query = select(AuditEvent).where(AuditEvent.organisation_id == organisation_id)
    if report_id is not None:
        query = query.where(AuditEvent.report_id == report_id)
    return list((await session.scalars(query.order_by(AuditEvent.seq.desc()).limit(limit))).all())
