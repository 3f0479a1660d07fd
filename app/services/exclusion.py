"""Reports that exclude a designated person: enforced by keys, not by a filter.

A whistleblower whose report concerns one of the organisation's designated persons may exclude
them on the form, which lists the key holders by the names they publish. The report key of such
a report is never sealed to the organisation key, which the excluded person holds: it is sealed
to each remaining key holder's own public key (a `ReportRecipient`, bound to report and person)
and to the organisation's recovery public key, the organisation's way back if every remaining
person loses their password. Whom the whistleblower excluded is kept only as keyed hashes under
the server key, so the service never shares the report with them, and, if the whistleblower
chose to say it, by name under the report key. A rotation of the organisation key neither
touches nor breaks such a report; a person who joins later reads it only once a recipient
shares it with them.
"""

import hmac
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import crypto
from app.config import Settings
from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.i18n import N_
from app.models import Member, Membership, Organisation, Report, ReportRecipient
from app.schemas.case import ExclusionRead
from app.services import audit, grants, keys

EXCLUDED = b"report-exclusion"
TAG_SIZE = 32
EXTERNAL_CHANNEL = "https://oznamovatel.justice.cz/"
NOBODY_LEFT = N_(
    "If you exclude these persons, nobody at the organisation could read your report. You may "
    "report to the external reporting system of the Ministry of Justice instead."
)
UNAVAILABLE = N_(
    "This organisation cannot take reports that exclude a designated person yet. You may report "
    "to the external reporting system of the Ministry of Justice instead."
)
NOT_LISTED = N_("Choose only from the designated persons listed on the form.")


@dataclass(frozen=True)
class Holder:
    """A designated person who holds the organisation key, with a membership the service made."""

    member_id: uuid.UUID
    email: str
    published_name: str
    public_key: bytes = field(repr=False)


@dataclass(frozen=True)
class Plan:
    remaining: list[Holder]
    excluded: list[Holder]


def _aad(purpose: bytes, *ids: uuid.UUID) -> bytes:
    return purpose + b"|" + b"".join(i.bytes for i in ids)


def seal_for_member(
    public_key: bytes, report_key: bytes, report_id: uuid.UUID, member_id: uuid.UUID
) -> bytes:
    """The report key sealed to one designated person's public key."""
    return crypto.seal_to(public_key, report_key, _aad(b"report-key-member", report_id, member_id))


def open_for_member(
    private_key: bytes, sealed: bytes, report_id: uuid.UUID, member_id: uuid.UUID
) -> bytes:
    return crypto.open_with(private_key, sealed, _aad(b"report-key-member", report_id, member_id))


def open_for_recovery(recovery_private_key: bytes, report: Report) -> bytes:
    """The report key from its copy sealed to the recovery public key."""
    if report.key_for_recovery is None:
        raise crypto.CryptoError("no recovery copy")
    return crypto.open_with(
        recovery_private_key, report.key_for_recovery, _aad(b"report-key-recovery", report.id)
    )


def _tag(settings: Settings, report_id: uuid.UUID, member_id: uuid.UUID) -> bytes:
    return keys.integrity_tag(settings, EXCLUDED, report_id.bytes, member_id.bytes)


def is_excluded(settings: Settings, report: Report, member_id: uuid.UUID) -> bool:
    tags = report.exclusion_tags or b""
    wanted = _tag(settings, report.id, member_id)
    found = False
    for start in range(0, len(tags), TAG_SIZE):
        found |= hmac.compare_digest(tags[start : start + TAG_SIZE], wanted)
    return found


async def key_holders(
    session: AsyncSession, settings: Settings, organisation: Organisation
) -> list[Holder]:
    """The persons who hold the organisation key, by their published names."""
    rows = await session.execute(
        select(Membership, Member.email, Member.public_key)
        .join(Member, Member.id == Membership.member_id)
        .where(Membership.organisation_id == organisation.id, Membership.org_key_grant.is_not(None))
        .order_by(Membership.published_name, Member.email)
    )
    return [
        Holder(membership.member_id, email, membership.published_name, public_key)
        for membership, email, public_key in rows.all()
        if grants.membership_is_authentic(settings, membership, public_key)
    ]


async def listed_persons(
    session: AsyncSession, settings: Settings, organisation: Organisation
) -> list[Holder]:
    """Whom the form offers to exclude: key holders with a published name, when there are two
    or more key holders and the organisation has a recovery key pair."""
    if organisation.recovery_public_key is None:
        return []
    holders = await key_holders(session, settings, organisation)
    if len(holders) < 2:
        return []
    return [holder for holder in holders if holder.published_name]


async def plan(
    session: AsyncSession,
    settings: Settings,
    organisation: Organisation,
    excluded_ids: Collection[uuid.UUID],
) -> Plan:
    """Who reads a report excluding `excluded_ids`; refused when that would be nobody."""
    listed = await listed_persons(session, settings, organisation)
    if not listed:
        raise Conflict(UNAVAILABLE, code="exclusion_unavailable")
    if not set(excluded_ids) <= {holder.member_id for holder in listed}:
        raise InvalidInput(NOT_LISTED, code="unknown_designated_person", field="exclude")
    holders = await key_holders(session, settings, organisation)
    remaining = [holder for holder in holders if holder.member_id not in excluded_ids]
    if not remaining:
        raise Conflict(NOBODY_LEFT, code="nobody_left")
    excluded = [holder for holder in holders if holder.member_id in excluded_ids]
    return Plan(remaining=remaining, excluded=excluded)


def seal_excluding(
    settings: Settings,
    organisation: Organisation,
    report: Report,
    report_key: bytes,
    chosen: Plan,
    *,
    name_excluded: bool,
) -> list[ReportRecipient]:
    """Seal the report key to the remaining persons and the recovery key pair, not to the
    organisation key; the recipients to store with the report."""
    grants.check_organisation_key(settings, organisation)  # the tag covers the recovery key
    assert organisation.recovery_public_key is not None  # noqa: S101 - plan() checked it
    report.key_for_organisation = None
    report.key_for_recovery = crypto.seal_to(
        organisation.recovery_public_key, report_key, _aad(b"report-key-recovery", report.id)
    )
    report.exclusion_tags = b"".join(
        _tag(settings, report.id, holder.member_id) for holder in chosen.excluded
    )
    names = [holder.published_name for holder in chosen.excluded] if name_excluded else []
    exclusion = ExclusionRead(count=len(chosen.excluded), names=names)
    report.sealed_exclusion = crypto.seal(
        report_key, exclusion.model_dump_json().encode(), _aad(b"exclusion", report.id)
    )
    return [
        ReportRecipient(
            report_id=report.id,
            member_id=holder.member_id,
            organisation_id=organisation.id,
            sealed_report_key=seal_for_member(
                holder.public_key, report_key, report.id, holder.member_id
            ),
        )
        for holder in chosen.remaining
    ]


def read_exclusion(report_key: bytes, report: Report) -> ExclusionRead | None:
    if report.sealed_exclusion is None:
        return None
    plaintext = crypto.open_sealed(
        report_key, report.sealed_exclusion, _aad(b"exclusion", report.id)
    )
    return ExclusionRead.model_validate_json(plaintext)


async def sealed_for_member(
    session: AsyncSession, member_id: uuid.UUID, organisation_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, bytes]:
    """The report keys sealed to this person, by report, in the given organisations."""
    if not organisation_ids:
        return {}
    rows = await session.execute(
        select(ReportRecipient.report_id, ReportRecipient.sealed_report_key).where(
            ReportRecipient.member_id == member_id,
            ReportRecipient.organisation_id.in_(list(organisation_ids)),
        )
    )
    return dict(rows.all())


async def recipient_emails(session: AsyncSession, report_id: uuid.UUID) -> list[str]:
    """Where notices about a report that excludes someone go: its recipients, one by one."""
    return list(
        await session.scalars(
            select(Member.email)
            .join(ReportRecipient, ReportRecipient.member_id == Member.id)
            .where(ReportRecipient.report_id == report_id)
            .order_by(Member.email)
        )
    )


async def share(
    session: AsyncSession,
    settings: Settings,
    organisation: Organisation,
    actor_id: uuid.UUID,
    report: Report,
    report_key: bytes,
    member_id: uuid.UUID,
) -> None:
    """A recipient shares a report that excludes someone with a colleague who holds the key."""
    if report.key_for_organisation is not None:
        raise Conflict(
            N_("Every designated person can read this case already."), code="wrong_state"
        )
    holders = {h.member_id: h for h in await key_holders(session, settings, organisation)}
    target = holders.get(member_id)
    if target is None:
        raise NotFound(grants.NO_SUCH_MEMBER)
    if is_excluded(settings, report, member_id):
        raise Forbidden(
            N_("The whistleblower excluded this person from the report."), code="excluded"
        )
    known = await session.get(ReportRecipient, (report.id, member_id))
    if known is not None:
        raise Conflict(N_("This person can read the case already."), code="has_access")
    session.add(
        ReportRecipient(
            report_id=report.id,
            member_id=member_id,
            organisation_id=organisation.id,
            sealed_report_key=seal_for_member(target.public_key, report_key, report.id, member_id),
            granted_by=actor_id,
        )
    )
    await audit.record(
        session,
        organisation_id=organisation.id,
        action="case.share",
        member_id=actor_id,
        report_id=report.id,
        detail=str(member_id),
    )
    await session.flush()


async def shareable(
    session: AsyncSession, settings: Settings, organisation: Organisation, report: Report
) -> list[Holder]:
    """Key holders who cannot read the report yet and were not excluded from it."""
    readers = set(
        await session.scalars(
            select(ReportRecipient.member_id).where(ReportRecipient.report_id == report.id)
        )
    )
    return [
        holder
        for holder in await key_holders(session, settings, organisation)
        if holder.member_id not in readers and not is_excluded(settings, report, holder.member_id)
    ]


async def release_member(
    session: AsyncSession, organisation_id: uuid.UUID, member_id: uuid.UUID
) -> None:
    """Before a person leaves: refuse while a report would be left to nobody, then drop their
    copies of the report keys."""
    theirs = select(ReportRecipient.report_id).where(
        ReportRecipient.organisation_id == organisation_id, ReportRecipient.member_id == member_id
    )
    others = await session.execute(
        select(ReportRecipient.report_id, func.count())
        .where(ReportRecipient.report_id.in_(theirs))
        .group_by(ReportRecipient.report_id)
    )
    if any(count <= 1 for _, count in others.all()):
        raise Conflict(
            N_(
                "This person is the only one who can read a report that excludes someone: they "
                "must share it with another designated person first."
            ),
            code="sole_recipient",
        )
    await session.execute(
        delete(ReportRecipient).where(
            ReportRecipient.organisation_id == organisation_id,
            ReportRecipient.member_id == member_id,
        )
    )


async def reseal_for_recovered(
    session: AsyncSession,
    organisation: Organisation,
    recovery_key: str,
    member_id: uuid.UUID,
    public_key: bytes,
) -> None:
    """A person regaining access with the recovery key gets back the reports they could read,
    sealed to their new key from the copies sealed to the recovery key pair."""
    if organisation.recovery_public_key is None:
        return
    rows = (
        await session.execute(
            select(ReportRecipient, Report)
            .join(Report, Report.id == ReportRecipient.report_id)
            .where(
                ReportRecipient.organisation_id == organisation.id,
                ReportRecipient.member_id == member_id,
            )
        )
    ).all()
    if not rows:
        return
    recovery_private = keys.open_recovery_private_key(
        recovery_key, organisation.recovery_wrapped_key, organisation.id
    )
    for recipient, report in rows:
        report_key = open_for_recovery(recovery_private, report)
        recipient.sealed_report_key = seal_for_member(public_key, report_key, report.id, member_id)
