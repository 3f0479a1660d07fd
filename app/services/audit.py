"""The audit trail: append-only events, hash-chained per organisation.

Each event's hash covers its own fields and the previous event's hash, so changing, removing,
reordering or inserting an event breaks the chain from that point on. `verify` walks a chain and
names the first event that does not fit. Events say who did what and why, never what a report says.
"""

import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Row, false, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models.audit import AuditEvent
from app.models.base import utcnow

GENESIS_HASH = bytes(32)
MAX_ACTION_LENGTH = 40
MAX_DETAIL_LENGTH = 500
VERIFY_BATCH = 1000
LOCK_NAMESPACE = b"pistalka.audit:"


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of walking one chain; `checked` counts the events found intact."""

    ok: bool
    checked: int
    first_broken_seq: int | None = None
    problem: str | None = None


def event_hash(
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
    """SHA-256 over a canonical JSON encoding of an event's fields and the previous hash."""
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
    return hashlib.sha256(encoded.encode()).digest()


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


async def record(
    session: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    action: str,
    member_id: uuid.UUID | None = None,
    report_id: uuid.UUID | None = None,
    detail: str = "",
) -> AuditEvent:
    """Append the next event of the organisation's chain in the caller's transaction."""
    events = await record_many(
        session,
        organisation_id=organisation_id,
        events=[(action, report_id, detail)],
        member_id=member_id,
    )
    return events[0]


async def record_many(
    session: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    events: Sequence[tuple[str, uuid.UUID | None, str]],
    member_id: uuid.UUID | None = None,
) -> list[AuditEvent]:
    """Append events (action, report id, detail) to the chain under one lock, in order."""
    for action, _, _ in events:
        if not action or len(action) > MAX_ACTION_LENGTH:
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
    for action, report_id, detail in events:
        seq += 1
        detail = detail[:MAX_DETAIL_LENGTH]
        event = AuditEvent(
            organisation_id=organisation_id,
            seq=seq,
            created_at=created_at,
            member_id=member_id,
            report_id=report_id,
            action=action,
            detail=detail,
            prev_hash=prev_hash,
            hash=event_hash(
                organisation_id=organisation_id,
                seq=seq,
                created_at=created_at,
                member_id=member_id,
                report_id=report_id,
                action=action,
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


def _check(event: ChainRow, expected_seq: int, expected_prev: bytes) -> str | None:
    if event.seq != expected_seq:
        return f"event {expected_seq} is missing (the next one found is {event.seq})"
    recomputed = event_hash(
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
    reordered or inserted (their hashes cover seq and the previous hash). Not detectable from the
    chain alone: removing the newest events, which leaves a shorter chain that is still intact,
    and rewriting the chain from some event to its end, since the hash is not keyed. A caller
    that kept the number of events or the newest hash elsewhere can compare it with `checked`.
    """
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
            problem = _check(event, expected_seq, expected_prev)
            if problem is not None:
                return VerifyResult(
                    ok=False, checked=checked, first_broken_seq=expected_seq, problem=problem
                )
            checked += 1
            expected_prev = event.hash
        if len(batch) < VERIFY_BATCH:
            return VerifyResult(ok=True, checked=checked)
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
