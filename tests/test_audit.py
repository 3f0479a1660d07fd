"""The audit trail: a hash chain per organisation that `pistalka audit verify` checks."""

import asyncio
import hashlib
import hmac
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.cli import main
from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.models import AuditEvent, Member, Organisation
from app.services import audit

Sessionmaker = async_sessionmaker[AsyncSession]


async def new_organisation(sessionmaker: Sessionmaker) -> Organisation:
    slug = f"audit-{uuid.uuid4().hex[:12]}"
    organisation = Organisation(
        slug=slug,
        name=f"{slug} s.r.o.",
        ico="26843820",
        address="Street 1, 110 00 Praha 1",
        email=f"{slug}@example.cz",
        public_key=b"public",
        recovery_wrapped_key=b"wrapped",
    )
    async with sessionmaker() as session, session.begin():
        session.add(organisation)
    return organisation


async def new_member(sessionmaker: Sessionmaker) -> Member:
    member = Member(
        email=f"dp-{uuid.uuid4().hex[:12]}@example.cz",
        password_salt=bytes(16),
        password_params="test",
        password_verifier=bytes(32),
        public_key=b"public",
        wrapped_private_key=b"wrapped",
    )
    async with sessionmaker() as session, session.begin():
        session.add(member)
    return member


async def append(
    sessionmaker: Sessionmaker, organisation_id: uuid.UUID, count: int = 1, **fields: Any
) -> list[AuditEvent]:
    recorded = []
    for _ in range(count):
        async with sessionmaker() as session, session.begin():
            recorded.append(
                await audit.record(
                    session, organisation_id=organisation_id, action="case.read", **fields
                )
            )
    return recorded


async def chain(sessionmaker: Sessionmaker, organisation_id: uuid.UUID) -> list[AuditEvent]:
    async with sessionmaker() as session:
        rows = await session.scalars(
            select(AuditEvent)
            .where(AuditEvent.organisation_id == organisation_id)
            .order_by(AuditEvent.seq)
        )
        return list(rows.all())


async def verify(sessionmaker: Sessionmaker, organisation_id: uuid.UUID) -> audit.VerifyResult:
    async with sessionmaker() as session:
        return await audit.verify(session, organisation_id)


async def tamper(
    sessionmaker: Sessionmaker, organisation_id: uuid.UUID, at_seq: int, /, **values: Any
) -> None:
    """Change an event behind the service's back, as someone with database access could."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(AuditEvent)
            .where(AuditEvent.organisation_id == organisation_id, AuditEvent.seq == at_seq)
            .values(**values)
        )


WRONG_KEY = bytes.fromhex("22" * 32)
# What someone who can write to the database but holds no server key may hash a chain with.
REHASHES: dict[str, Callable[[bytes], bytes]] = {
    "sha256": lambda encoded: hashlib.sha256(encoded).digest(),
    "wrong key": lambda encoded: hmac.new(WRONG_KEY, encoded, hashlib.sha256).digest(),
}


async def remove_and_rechain(
    sessionmaker: Sessionmaker,
    organisation_id: uuid.UUID,
    seq: int,
    rehash: Callable[[bytes], bytes],
) -> None:
    """Delete one event, renumber the rest and recompute every hash, all by SQL."""
    async with sessionmaker() as session, session.begin():
        await session.execute(
            delete(AuditEvent).where(
                AuditEvent.organisation_id == organisation_id, AuditEvent.seq == seq
            )
        )
        events = (
            await session.scalars(
                select(AuditEvent)
                .where(AuditEvent.organisation_id == organisation_id)
                .order_by(AuditEvent.seq)
            )
        ).all()
        prev_hash = audit.GENESIS_HASH
        for number, event in enumerate(events, start=1):
            event.seq, event.prev_hash = number, prev_hash
            event.hash = rehash(
                audit.encode_event(
                    organisation_id=event.organisation_id,
                    seq=number,
                    created_at=event.created_at,
                    member_id=event.member_id,
                    report_id=event.report_id,
                    action=event.action,
                    detail=event.detail,
                    prev_hash=prev_hash,
                )
            )
            prev_hash = event.hash
            # One at a time: the (organisation_id, seq) constraint holds at every step.
            await session.flush()


async def test_recorded_events_form_a_chain(sessionmaker: Sessionmaker) -> None:
    organisation = await new_organisation(sessionmaker)
    member = await new_member(sessionmaker)
    report_id = uuid.uuid4()

    await append(
        sessionmaker, organisation.id, 3, member_id=member.id, report_id=report_id, detail="why"
    )

    events = await chain(sessionmaker, organisation.id)
    assert [event.seq for event in events] == [1, 2, 3]
    assert events[0].prev_hash == bytes(32)
    assert [event.prev_hash for event in events[1:]] == [event.hash for event in events[:-1]]
    assert len({event.hash for event in events}) == 3
    assert all(len(event.hash) == 32 for event in events)
    assert events[0].member_id == member.id
    assert events[0].report_id == report_id
    assert events[0].detail == "why"


async def test_hash_covers_every_field_and_the_previous_hash(
    sessionmaker: Sessionmaker, settings: Settings
) -> None:
    key = audit.chain_key(settings)
    organisation = await new_organisation(sessionmaker)
    [event] = await append(sessionmaker, organisation.id, report_id=uuid.uuid4())
    fields: dict[str, Any] = {
        "organisation_id": event.organisation_id,
        "seq": event.seq,
        "created_at": event.created_at,
        "member_id": event.member_id,
        "report_id": event.report_id,
        "action": event.action,
        "detail": event.detail,
        "prev_hash": event.prev_hash,
    }
    assert audit.event_hash(key, **fields) == event.hash

    changed = {
        "organisation_id": uuid.uuid4(),
        "seq": 2,
        "created_at": event.created_at + timedelta(microseconds=1),
        "member_id": uuid.uuid4(),
        "report_id": None,
        "action": "case.close",
        "detail": "x",
        "prev_hash": b"\x01" * 32,
    }
    for name, value in changed.items():
        assert audit.event_hash(key, **{**fields, name: value}) != event.hash, name
    assert audit.event_hash(bytes(32), **fields) != event.hash


async def test_intact_chain_verifies(sessionmaker: Sessionmaker) -> None:
    organisation = await new_organisation(sessionmaker)
    await append(sessionmaker, organisation.id, 5, detail="Kontrola lhůt / deadline check")

    result = await verify(sessionmaker, organisation.id)

    events = await chain(sessionmaker, organisation.id)
    assert result == audit.VerifyResult(ok=True, checked=5, head=events[-1].hash)


async def test_organisation_without_events_verifies_empty(sessionmaker: Sessionmaker) -> None:
    organisation = await new_organisation(sessionmaker)

    assert await verify(sessionmaker, organisation.id) == audit.VerifyResult(ok=True, checked=0)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("detail", "a different reason"),
        ("action", "case.note"),
        ("member_id", None),
        ("report_id", uuid.UUID(int=7)),
    ],
)
async def test_edited_event_is_caught_at_its_seq(
    sessionmaker: Sessionmaker, column: str, value: object
) -> None:
    organisation = await new_organisation(sessionmaker)
    member = await new_member(sessionmaker)
    await append(sessionmaker, organisation.id, 4, member_id=member.id, report_id=uuid.uuid4())

    await tamper(sessionmaker, organisation.id, 3, **{column: value})

    result = await verify(sessionmaker, organisation.id)
    assert not result.ok
    assert result.first_broken_seq == 3
    assert result.checked == 2
    assert result.problem is not None
    assert "changed" in result.problem


async def test_backdated_event_is_caught(sessionmaker: Sessionmaker) -> None:
    organisation = await new_organisation(sessionmaker)
    events = await append(sessionmaker, organisation.id, 3)

    await tamper(
        sessionmaker, organisation.id, 2, created_at=events[1].created_at - timedelta(days=1)
    )

    result = await verify(sessionmaker, organisation.id)
    assert (result.ok, result.first_broken_seq) == (False, 2)


async def test_event_rehashed_after_an_edit_breaks_the_link_to_the_next(
    sessionmaker: Sessionmaker, settings: Settings
) -> None:
    # Even with the chain key, an event rehashed alone no longer fits the one after it.
    organisation = await new_organisation(sessionmaker)
    events = await append(sessionmaker, organisation.id, 3)
    forged = events[1]
    forged_hash = audit.event_hash(
        audit.chain_key(settings),
        organisation_id=forged.organisation_id,
        seq=forged.seq,
        created_at=forged.created_at,
        member_id=forged.member_id,
        report_id=forged.report_id,
        action=forged.action,
        detail="nothing to see",
        prev_hash=forged.prev_hash,
    )

    await tamper(sessionmaker, organisation.id, 2, detail="nothing to see", hash=forged_hash)

    result = await verify(sessionmaker, organisation.id)
    assert (result.ok, result.first_broken_seq) == (False, 3)
    assert result.problem is not None
    assert "does not follow" in result.problem


async def test_deleted_middle_event_is_caught(sessionmaker: Sessionmaker) -> None:
    organisation = await new_organisation(sessionmaker)
    await append(sessionmaker, organisation.id, 5)

    async with sessionmaker() as session, session.begin():
        await session.execute(
            delete(AuditEvent).where(
                AuditEvent.organisation_id == organisation.id, AuditEvent.seq == 3
            )
        )

    result = await verify(sessionmaker, organisation.id)
    assert result == audit.VerifyResult(
        ok=False,
        checked=2,
        first_broken_seq=3,
        problem="event 3 is missing (the next one found is 4)",
    )


async def test_deleted_and_renumbered_event_is_caught(sessionmaker: Sessionmaker) -> None:
    organisation = await new_organisation(sessionmaker)
    await append(sessionmaker, organisation.id, 4)

    async with sessionmaker() as session, session.begin():
        await session.execute(
            delete(AuditEvent).where(
                AuditEvent.organisation_id == organisation.id, AuditEvent.seq == 2
            )
        )
    # Closing the gap: 3 becomes 2 and 4 becomes 3.
    await tamper(sessionmaker, organisation.id, 3, seq=2)
    await tamper(sessionmaker, organisation.id, 4, seq=3)

    result = await verify(sessionmaker, organisation.id)
    assert (result.ok, result.first_broken_seq) == (False, 2)


async def test_swapped_events_are_caught(sessionmaker: Sessionmaker) -> None:
    organisation = await new_organisation(sessionmaker)
    await append(sessionmaker, organisation.id, 4)

    await tamper(sessionmaker, organisation.id, 2, seq=-1)
    await tamper(sessionmaker, organisation.id, 3, seq=2)
    await tamper(sessionmaker, organisation.id, -1, seq=3)

    result = await verify(sessionmaker, organisation.id)
    assert (result.ok, result.first_broken_seq) == (False, 2)


async def test_inserted_event_is_caught(sessionmaker: Sessionmaker, settings: Settings) -> None:
    organisation = await new_organisation(sessionmaker)
    events = await append(sessionmaker, organisation.id, 3)
    # A forged event with a correct hash slotted in after the first, the rest moved up.
    await tamper(sessionmaker, organisation.id, 3, seq=4)
    await tamper(sessionmaker, organisation.id, 2, seq=3)
    forged: dict[str, Any] = {
        "organisation_id": organisation.id,
        "seq": 2,
        "created_at": events[0].created_at + timedelta(seconds=1),
        "member_id": None,
        "report_id": None,
        "action": "case.read",
        "detail": "",
        "prev_hash": events[0].hash,
    }
    async with sessionmaker() as session, session.begin():
        key = audit.chain_key(settings)
        session.add(AuditEvent(**forged, hash=audit.event_hash(key, **forged)))

    result = await verify(sessionmaker, organisation.id)
    assert (result.ok, result.checked, result.first_broken_seq) == (False, 2, 3)


async def test_removed_newest_event_leaves_a_shorter_valid_chain(
    sessionmaker: Sessionmaker,
) -> None:
    # Documented limit: only a count kept elsewhere reveals a cut at the end.
    organisation = await new_organisation(sessionmaker)
    await append(sessionmaker, organisation.id, 3)

    async with sessionmaker() as session, session.begin():
        await session.execute(
            delete(AuditEvent).where(
                AuditEvent.organisation_id == organisation.id, AuditEvent.seq == 3
            )
        )

    result = await verify(sessionmaker, organisation.id)
    assert (result.ok, result.checked) == (True, 2)


async def test_chains_of_two_organisations_are_independent(sessionmaker: Sessionmaker) -> None:
    first = await new_organisation(sessionmaker)
    second = await new_organisation(sessionmaker)
    for _ in range(3):
        await append(sessionmaker, first.id)
        await append(sessionmaker, second.id)

    assert [event.seq for event in await chain(sessionmaker, first.id)] == [1, 2, 3]
    assert [event.seq for event in await chain(sessionmaker, second.id)] == [1, 2, 3]
    await tamper(sessionmaker, first.id, 1, detail="edited")

    async with sessionmaker() as session:
        results = await audit.verify_all(session)
    assert results[first.id].first_broken_seq == 1
    assert (results[second.id].ok, results[second.id].checked) == (True, 3)


async def test_long_detail_is_cut(sessionmaker: Sessionmaker) -> None:
    organisation = await new_organisation(sessionmaker)

    [event] = await append(sessionmaker, organisation.id, detail="ř" * 600)

    [stored] = await chain(sessionmaker, organisation.id)
    assert stored.detail == event.detail == "ř" * audit.MAX_DETAIL_LENGTH
    assert (await verify(sessionmaker, organisation.id)).ok


async def test_action_longer_than_its_column_is_refused(sessionmaker: Sessionmaker) -> None:
    organisation = await new_organisation(sessionmaker)

    async with sessionmaker() as session:
        with pytest.raises(ValueError, match="action"):
            await audit.record(session, organisation_id=organisation.id, action="x" * 41)


async def test_event_belongs_to_the_callers_transaction(sessionmaker: Sessionmaker) -> None:
    organisation = await new_organisation(sessionmaker)

    async with sessionmaker() as session:
        await audit.record(session, organisation_id=organisation.id, action="case.read")
        await session.rollback()

    assert await chain(sessionmaker, organisation.id) == []
    [event] = await append(sessionmaker, organisation.id)
    assert event.seq == 1


async def test_events_are_listed_newest_first_and_by_report(sessionmaker: Sessionmaker) -> None:
    organisation = await new_organisation(sessionmaker)
    other = await new_organisation(sessionmaker)
    report_id = uuid.uuid4()
    await append(sessionmaker, organisation.id, 2, report_id=report_id)
    await append(sessionmaker, organisation.id, 1, report_id=uuid.uuid4())
    await append(sessionmaker, organisation.id, 1, report_id=report_id)
    await append(sessionmaker, other.id, 1, report_id=report_id)

    async with sessionmaker() as session:
        everything = await audit.events(session, organisation.id)
        of_report = await audit.events(session, organisation.id, report_id=report_id)
        newest = await audit.events(session, organisation.id, limit=1)

    assert [event.seq for event in everything] == [4, 3, 2, 1]
    assert [event.seq for event in of_report] == [4, 2, 1]
    assert [event.seq for event in newest] == [4]


async def test_concurrent_records_take_consecutive_seqs(sessionmaker: Sessionmaker) -> None:
    organisation = await new_organisation(sessionmaker)

    async def record_one(number: int) -> int:
        async with sessionmaker() as session, session.begin():
            event = await audit.record(
                session, organisation_id=organisation.id, action="case.read", detail=str(number)
            )
            # Hold the transaction open across a switch, so the writers really overlap.
            await asyncio.sleep(0)
            return event.seq

    seqs = await asyncio.gather(*(record_one(number) for number in range(20)))

    assert sorted(seqs) == list(range(1, 21))
    events = await chain(sessionmaker, organisation.id)
    assert sorted(event.detail for event in events) == sorted(str(n) for n in range(20))
    result = await verify(sessionmaker, organisation.id)
    assert (result.ok, result.checked) == (True, 20)


@pytest.mark.parametrize("rehash", REHASHES.values(), ids=REHASHES.keys())
async def test_a_database_writer_cannot_rechain_after_removing_an_event(
    sessionmaker: Sessionmaker, rehash: Callable[[bytes], bytes]
) -> None:
    organisation = await new_organisation(sessionmaker)
    await append(sessionmaker, organisation.id, 4, detail="planted")

    await remove_and_rechain(sessionmaker, organisation.id, 2, rehash)

    assert [event.seq for event in await chain(sessionmaker, organisation.id)] == [1, 2, 3]
    result = await verify(sessionmaker, organisation.id)
    assert (result.ok, result.checked, result.first_broken_seq) == (False, 0, 1)
    assert result.problem is not None
    assert "changed" in result.problem


async def test_a_session_without_the_settings_writes_no_event(
    settings: Settings, sessionmaker: Sessionmaker
) -> None:
    organisation = await new_organisation(sessionmaker)
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            with pytest.raises(RuntimeError, match="audit chain"):
                await audit.record(session, organisation_id=organisation.id, action="case.read")
    finally:
        await engine.dispose()


def test_lock_key_is_a_positive_bigint_per_organisation() -> None:
    keys = {audit.lock_key(uuid.uuid4()) for _ in range(100)}
    assert len(keys) == 100
    assert all(0 <= key < 2**63 for key in keys)
    organisation_id = uuid.uuid4()
    assert audit.lock_key(organisation_id) == audit.lock_key(organisation_id)


async def run_cli(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *argv: str
) -> None:
    monkeypatch.setenv("PISTALKA_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PISTALKA_DATA_DIR", str(tmp_path / "cli"))
    monkeypatch.setenv("PISTALKA_SECRET_KEY", settings.server_key.hex())
    # The command runs its own event loop, so it cannot run on this one.
    await asyncio.to_thread(main, list(argv))


async def test_audit_verify_command_passes_intact_chains(
    sessionmaker: Sessionmaker,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = await new_organisation(sessionmaker)
    second = await new_organisation(sessionmaker)
    await append(sessionmaker, first.id, 3)
    await append(sessionmaker, second.id, 1)

    await run_cli(settings, tmp_path, monkeypatch, "audit", "verify")

    lines = capsys.readouterr().out.splitlines()
    assert sorted(lines) == sorted(
        [f"{first.slug}: 3 events checked, OK", f"{second.slug}: 1 events checked, OK"]
    )


async def test_audit_verify_command_fails_on_a_tampered_chain(
    sessionmaker: Sessionmaker,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tampered = await new_organisation(sessionmaker)
    intact = await new_organisation(sessionmaker)
    await append(sessionmaker, tampered.id, 3)
    await append(sessionmaker, intact.id, 2)
    await tamper(sessionmaker, tampered.id, 2, action="case.close")

    with pytest.raises(SystemExit) as exit_info:
        await run_cli(settings, tmp_path, monkeypatch, "audit", "verify")

    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    assert f"{tampered.slug}: 1 events checked, BROKEN at seq 2: event was changed" in out
    assert f"{intact.slug}: 2 events checked, OK" in out


@pytest.mark.parametrize("rehash", REHASHES.values(), ids=REHASHES.keys())
async def test_audit_verify_command_fails_on_a_chain_rewritten_without_the_key(
    sessionmaker: Sessionmaker,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    rehash: Callable[[bytes], bytes],
) -> None:
    organisation = await new_organisation(sessionmaker)
    await append(sessionmaker, organisation.id, 3)
    await remove_and_rechain(sessionmaker, organisation.id, 3, rehash)

    with pytest.raises(SystemExit) as exit_info:
        await run_cli(settings, tmp_path, monkeypatch, "audit", "verify")

    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    assert f"{organisation.slug}: 0 events checked, BROKEN at seq 1: event was changed" in out
