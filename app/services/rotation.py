"""Rotation of an organisation key: a new key pair, every report key re-sealed to it.

It runs when a designated person who had access is removed (their copy of the old key must not
open the reports that come after) or when a key holder asks for it. `start` makes the new key
pair in the key holder's request and seals its private half to every remaining key holder
(`Membership.next_org_key_grant`) and to the recovery key pair; nothing else ever holds it.
`complete` then re-seals the report keys and the reasons of access in short batches, each
marked with the key version it is sealed to, and swaps the keys in one last transaction that
destroys the old grants. A crash at any point leaves every report readable (by the old or the
new key, both granted to every remaining key holder) and the rotation resumable by any of them.
"""

import hmac
import logging
import uuid
from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import crypto
from app.config import Settings
from app.db import sqlite_write_lock
from app.errors import Conflict, Forbidden, KeyIntegrityFailure
from app.i18n import N_
from app.models import AuditEvent, KeyRotation, Member, Membership, Organisation, Report
from app.services import audit, grants, keys, reports

logger = logging.getLogger("pistalka.keys")

ROTATION = b"key-rotation"
BATCH = 500


@dataclass(frozen=True)
class Job:
    """What re-sealing needs, held in memory only: both private keys of the organisation."""

    organisation_id: uuid.UUID
    member_id: uuid.UUID
    old_version: int
    old_private_key: bytes = field(repr=False)
    new_private_key: bytes = field(repr=False)
    # A new recovery key, shown once, when the rotation replaced a legacy one.
    recovery_key: str | None = field(default=None, repr=False)


def _rotation_parts(rotation: KeyRotation) -> tuple[bytes, ...]:
    return (
        rotation.organisation_id.bytes,
        rotation.public_key,
        rotation.recovery_public_key or b"",
        rotation.recovery_wrapped_key or b"",
    )


def _check(settings: Settings, rotation: KeyRotation) -> None:
    if not keys.tag_matches(settings, rotation.tag, ROTATION, *_rotation_parts(rotation)):
        logger.error("organisation %s: its key rotation fails its integrity check",
                     rotation.organisation_id)  # fmt: skip
        raise KeyIntegrityFailure()


async def in_progress(session: AsyncSession, organisation_id: uuid.UUID) -> bool:
    return await session.get(KeyRotation, organisation_id) is not None


async def start(
    session: AsyncSession,
    settings: Settings,
    organisation: Organisation,
    actor_id: uuid.UUID,
    actor_private_key: bytes,
    *,
    leaving: uuid.UUID | None = None,
) -> Job:
    """Begin a rotation in the caller's transaction; `complete` finishes it after the commit.

    `leaving` is a person being removed (possibly the actor): they get no copy of the new key.
    """
    if await in_progress(session, organisation.id):
        raise Conflict(grants.ROTATION_FIRST, code="key_rotation_in_progress")
    grants.check_organisation_key(settings, organisation)
    holders = (
        await session.execute(
            select(Membership, Member.public_key)
            .join(Member, Member.id == Membership.member_id)
            .where(Membership.organisation_id == organisation.id)
        )
    ).all()
    own = next((m for m, _ in holders if m.member_id == actor_id), None)
    if own is None or own.org_key_grant is None:
        raise Forbidden(
            N_("Only a designated person who has access to the reports can change the key."),
            code="no_grant",
        )
    old_private = grants.open_organisation_key(
        organisation, own.org_key_grant, actor_private_key, actor_id
    )
    new = crypto.generate_keypair()
    recovery = None
    recovery_public = organisation.recovery_public_key
    if recovery_public is None:  # a legacy recovery key cannot be re-sealed: a new one
        recovery = keys.new_recovery(organisation.id)
        recovery_public = recovery.public_key
    rotation = KeyRotation(
        organisation_id=organisation.id,
        public_key=new.public,
        recovery_public_key=recovery.public_key if recovery else None,
        recovery_wrapped_key=recovery.wrapped_private_key if recovery else None,
        recovery_grant=keys.seal_recovery_grant(recovery_public, new.private, organisation.id),
        started_by=actor_id,
    )
    rotation.tag = keys.integrity_tag(settings, ROTATION, *_rotation_parts(rotation))
    session.add(rotation)
    for membership, public_key in holders:
        # Only those who hold the key now and whose membership the service made get the new one.
        if (
            membership.member_id != leaving
            and membership.org_key_grant is not None
            and grants.membership_is_authentic(settings, membership, public_key)
        ):
            membership.next_org_key_grant = keys.grant_org_key(
                new.private, public_key, organisation.id, membership.member_id
            )
    await audit.record(
        session, organisation_id=organisation.id, action="key.rotate", member_id=actor_id
    )
    await session.flush()
    return Job(
        organisation.id,
        actor_id,
        organisation.key_version,
        old_private,
        new.private,
        recovery.recovery_key if recovery else None,
    )


async def resume(
    session: AsyncSession,
    settings: Settings,
    organisation: Organisation,
    actor_id: uuid.UUID,
    actor_private_key: bytes,
) -> Job | None:
    """The job of a rotation left unfinished, for any key holder who has the new key too."""
    rotation = await session.get(KeyRotation, organisation.id)
    if rotation is None:
        return None
    _check(settings, rotation)
    own = await session.scalar(
        select(Membership).where(
            Membership.organisation_id == organisation.id, Membership.member_id == actor_id
        )
    )
    if own is None or own.org_key_grant is None or own.next_org_key_grant is None:
        raise Forbidden(
            N_("Only a designated person who has access to the reports can change the key."),
            code="no_grant",
        )
    old_private = grants.open_organisation_key(
        organisation, own.org_key_grant, actor_private_key, actor_id
    )
    new_private = grants.open_organisation_key(
        organisation, own.next_org_key_grant, actor_private_key, actor_id, rotation.public_key
    )
    return Job(organisation.id, actor_id, organisation.key_version, old_private, new_private)


def _reseal(job: Job, new_public_key: bytes, report_id: uuid.UUID, sealed: bytes) -> bytes:
    aad = reports.aad(b"report-key", report_id)
    report_key = crypto.open_with(job.old_private_key, sealed, aad)
    return crypto.seal_to(new_public_key, report_key, aad)


async def _reseal_batch(session: AsyncSession, job: Job, new_public_key: bytes) -> int:
    rows = (
        await session.execute(
            select(Report.id, Report.key_for_organisation)
            .where(
                Report.organisation_id == job.organisation_id,
                Report.key_version == job.old_version,
                # A report that excludes someone is sealed to persons, not to the key.
                Report.key_for_organisation.is_not(None),
            )
            .limit(BATCH)
        )
    ).all()
    if not rows:
        return 0
    table = cast(Table, Report.__table__)
    # One executemany; conditional, so two key holders resuming at once re-seal each report once.
    await session.execute(
        update(table)
        .where(table.c.id == bindparam("report_id"), table.c.key_version == job.old_version)
        .values(key_for_organisation=bindparam("sealed"), key_version=job.old_version + 1),
        [
            {"report_id": report_id, "sealed": _reseal(job, new_public_key, report_id, sealed)}
            for report_id, sealed in rows
            if sealed is not None
        ],
    )
    return len(rows)


async def _reseal_reasons_batch(session: AsyncSession, job: Job, new_public_key: bytes) -> int:
    """Re-seal reasons of access; their commitments, which the audit chain covers, stay."""
    rows = (
        await session.execute(
            select(AuditEvent.id, AuditEvent.sealed_reason)
            .where(
                AuditEvent.organisation_id == job.organisation_id,
                AuditEvent.reason_key_version == job.old_version,
            )
            .limit(BATCH)
        )
    ).all()
    if not rows:
        return 0
    table = cast(Table, AuditEvent.__table__)
    # A ciphertext the old key does not open (written by SQL) is dropped rather than stopping
    # the rotation: it opened for nobody anyway.
    await session.execute(
        update(table)
        .where(table.c.id == bindparam("event_id"), table.c.reason_key_version == job.old_version)
        .values(sealed_reason=bindparam("sealed"), reason_key_version=job.old_version + 1),
        [
            {
                "event_id": event_id,
                "sealed": None
                if sealed is None
                else audit.reseal_reason(job.old_private_key, new_public_key, event_id, sealed),
            }
            for event_id, sealed in rows
        ],
    )
    return len(rows)


async def complete(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, job: Job
) -> int:
    """Re-seal every report key in batches, then swap the keys; returns the reports re-sealed."""
    async with sessionmaker() as session:
        rotation = await session.get(KeyRotation, job.organisation_id)
        if rotation is None:
            return 0
        _check(settings, rotation)
        new_public_key = rotation.public_key
    if not hmac.compare_digest(crypto.public_key_of(job.new_private_key), new_public_key):
        raise KeyIntegrityFailure()
    resealed = 0
    while True:
        async with sessionmaker() as session, session.begin():
            done = await _reseal_batch(session, job, new_public_key)
        resealed += done
        if done < BATCH:
            break
    while True:
        async with sessionmaker() as session, session.begin():
            done = await _reseal_reasons_batch(session, job, new_public_key)
        if done < BATCH:
            break
    async with sessionmaker() as session, session.begin():
        resealed += await _swap(session, settings, job, new_public_key)
    return resealed


async def _swap(session: AsyncSession, settings: Settings, job: Job, new_public_key: bytes) -> int:
    """The last step, under the organisation's row lock that every new report also takes."""
    await sqlite_write_lock(session)
    organisation = await session.scalar(
        select(Organisation)
        .where(Organisation.id == job.organisation_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    rotation = await session.get(KeyRotation, job.organisation_id, populate_existing=True)
    if organisation is None or rotation is None or organisation.key_version != job.old_version:
        return 0  # another key holder finished it
    resealed = 0
    while done := await _reseal_batch(session, job, new_public_key):
        resealed += done
    while await _reseal_reasons_batch(session, job, new_public_key):
        pass
    organisation.public_key = new_public_key
    organisation.key_version = job.old_version + 1
    organisation.recovery_grant = rotation.recovery_grant
    if rotation.recovery_public_key is not None and rotation.recovery_wrapped_key is not None:
        organisation.recovery_public_key = rotation.recovery_public_key
        organisation.recovery_wrapped_key = rotation.recovery_wrapped_key
    grants.tag_organisation(settings, organisation)
    # The old grants are overwritten: the old private key is gone but for the removed person's
    # copy, which opens none of the reports from now on.
    await session.execute(
        update(Membership)
        .where(Membership.organisation_id == job.organisation_id)
        .values(org_key_grant=Membership.next_org_key_grant, next_org_key_grant=None)
        .execution_options(synchronize_session=False)
    )
    await session.delete(rotation)
    await audit.record(
        session, organisation_id=job.organisation_id, action="key.rotated", member_id=job.member_id
    )
    return resealed


async def recovered_grant(
    session: AsyncSession,
    organisation: Organisation,
    recovery_key: str,
    public_key: bytes,
    member_id: uuid.UUID,
) -> bytes | None:
    """During a rotation, the new key for a person regaining access with the recovery key.

    None when no rotation is under way, or when it replaces a legacy recovery key: the new
    recovery key then went to whoever started it, and that person can finish the rotation.
    """
    rotation = await session.get(KeyRotation, organisation.id)
    if rotation is None or rotation.recovery_public_key is not None:
        return None
    new_private = keys.open_with_recovery_key(
        recovery_key, organisation.recovery_wrapped_key, organisation.id, rotation.recovery_grant
    )
    if not hmac.compare_digest(crypto.public_key_of(new_private), rotation.public_key):
        raise KeyIntegrityFailure()
    return keys.grant_org_key(new_private, public_key, organisation.id, member_id)


async def complete_in_background(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, job: Job
) -> None:
    """`complete` after the answer was sent; a failure leaves it for a key holder to resume."""
    try:
        await complete(sessionmaker, settings, job)
    except Exception as exc:
        logger.error("organisation %s: key rotation stopped: %s", job.organisation_id,
                     type(exc).__name__)  # fmt: skip
