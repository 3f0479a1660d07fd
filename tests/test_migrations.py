import hashlib
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import select

from app import crypto, migrate
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.models import AuditEvent, Organisation
from app.models.base import UTCDateTime
from app.services import audit


def test_models_and_migrations_do_not_drift(settings: Settings) -> None:
    migrate.check(settings)


def test_migrations_go_down_and_up_again(settings: Settings) -> None:
    migrate.downgrade(settings, "base")
    migrate.upgrade(settings)
    migrate.check(settings)


def _old_chain(
    organisation_id: uuid.UUID, entries: list[tuple[str, str]]
) -> list[dict[str, object]]:
    """Events as the service wrote them before the chain was keyed: plain SHA-256."""
    rows: list[dict[str, object]] = []
    prev_hash = audit.GENESIS_HASH
    created_at = datetime(2026, 12, 1, 9, 30, 15, 123456, tzinfo=UTC)
    for seq, (action, detail) in enumerate(entries, start=1):
        fields = {
            "organisation_id": organisation_id,
            "seq": seq,
            "created_at": created_at,
            "member_id": None,
            "report_id": None,
            "action": action,
            "detail": detail,
            "prev_hash": prev_hash,
        }
        prev_hash = hashlib.sha256(audit.encode_event(**fields)).digest()  # type: ignore[arg-type]
        rows.append({**fields, "id": uuid.uuid4(), "hash": prev_hash})
    return rows


_old_event = sa.table(
    "audit_event",
    *(sa.column(name, sa.Uuid()) for name in ("id", "organisation_id", "member_id", "report_id")),
    sa.column("seq", sa.Integer()),
    sa.column("created_at", UTCDateTime(timezone=True)),
    *(sa.column(name, sa.String()) for name in ("action", "detail")),
    *(sa.column(name, sa.LargeBinary()) for name in ("prev_hash", "hash")),
)
OLD_TRAIL = [
    ("case.read", "kontrola spisu 17/2026"),
    ("case.note", ""),
    ("register.export", "výroční kontrola evidence"),
    ("stats.read", "statistics"),
    ("organisation.export", "předání dat"),
]


async def _trail_at_20261205a(
    settings: Settings, tamper_seq: int | None = None
) -> tuple[uuid.UUID, bytes]:
    """An organisation with a real key and a trail of the old kind; its id and private key."""
    pair = crypto.generate_keypair()
    organisation = Organisation(
        slug=f"legacy-{uuid.uuid4().hex[:12]}",
        name="Legacy s.r.o.",
        ico="26843820",
        address="Street 1, 110 00 Praha 1",
        email="legacy@example.cz",
        public_key=pair.public,
        recovery_wrapped_key=b"wrapped",
    )
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine, settings)() as session, session.begin():
            session.add(organisation)
    finally:
        await engine.dispose()
    migrate.downgrade(settings, "20261205a")
    rows = _old_chain(organisation.id, OLD_TRAIL)
    if tamper_seq is not None:
        rows[tamper_seq - 1]["action"] = "case.close"
    engine = create_engine(settings)
    try:
        async with engine.begin() as connection:
            await connection.execute(_old_event.insert(), rows)
    finally:
        await engine.dispose()
    return organisation.id, pair.private


async def _events_after_upgrade(
    settings: Settings, organisation_id: uuid.UUID
) -> tuple[audit.VerifyResult, list[AuditEvent], list[tuple[object, ...]]]:
    migrate.upgrade(settings)
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine, settings)() as session:
            verified = await audit.verify(session, organisation_id)
            events = list(
                await session.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.organisation_id == organisation_id)
                    .order_by(AuditEvent.seq)
                )
            )
            raw = [
                tuple(row) for row in await session.execute(sa.text("SELECT * FROM audit_event"))
            ]
    finally:
        await engine.dispose()
    return verified, events, raw


async def test_an_old_trail_is_rechained_under_the_key_with_its_reasons_sealed(
    settings: Settings,
) -> None:
    organisation_id, private_key = await _trail_at_20261205a(settings)

    verified, events, raw = await _events_after_upgrade(settings, organisation_id)

    assert (verified.ok, verified.checked) == (True, len(OLD_TRAIL))
    reasons = audit.open_reasons(events, {1: private_key})
    assert [reasons.get(event.id, event.detail) for event in events] == [
        detail for _, detail in OLD_TRAIL
    ]
    assert [audit.is_sealed(event.detail) for event in events] == [True, False, True, False, True]
    for action, detail in OLD_TRAIL:
        if action.endswith(("read", "export")) and action != "stats.read":
            assert not any(detail.encode() in str(value).encode() for row in raw for value in row)


async def test_an_old_trail_broken_before_the_upgrade_stays_broken(settings: Settings) -> None:
    organisation_id, private_key = await _trail_at_20261205a(settings, tamper_seq=3)

    verified, events, _ = await _events_after_upgrade(settings, organisation_id)

    assert (verified.ok, verified.first_broken_seq) == (False, 3)
    reasons = audit.open_reasons(events, {1: private_key})
    assert reasons[events[0].id] == "kontrola spisu 17/2026"
    assert reasons[events[4].id] == "předání dat"
