"""The organisation's designated persons: invitations, grants of the organisation key, removal,
password changes and recovery with the recovery key.

A new person has no access to the reports until a person who holds the organisation key confirms
them on the team page, which seals the key to the newcomer's public key (a grant, grants.py);
the server alone cannot do it.
"""

import secrets
import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app import crypto
from app.config import Settings
from app.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    KeyIntegrityFailure,
    NotFound,
    Unauthorized,
)
from app.i18n import N_
from app.models import Invitation, Member, MemberSession, Membership, Organisation
from app.models.base import utcnow
from app.services import audit, billing, exclusion, grants, keys, mail, passwords, rotation
from app.services.auth import CurrentMember
from app.templating import render_mail

INVITATION_DAYS = 7
INVALID_INVITATION = N_("This invitation is not valid or has expired.")


@dataclass(frozen=True)
class MemberRow:
    member_id: uuid.UUID
    email: str
    has_access: bool
    # The fingerprint of the public key a grant would be sealed to; the person sees their own
    # on their profile, so the two can be compared out of band before access is confirmed.
    fingerprint: str
    # False for a membership the service did not create (written into the database directly).
    authentic: bool
    appointed_on: date | None
    instructed_on: date | None
    instruction_document: str
    # The name the report form lists the person by, for excluding them from a report.
    published_name: str = ""


def _invitation_hash(settings: Settings, token: str) -> bytes:
    return keys.keyed_hash(settings, "invitation", token.encode())


async def list_members(
    session: AsyncSession, settings: Settings, organisation: Organisation
) -> list[MemberRow]:
    rows = await session.execute(
        select(Membership, Member.email, Member.public_key)
        .join(Member, Member.id == Membership.member_id)
        .where(Membership.organisation_id == organisation.id)
        .order_by(Member.email)
    )
    return [
        MemberRow(
            member_id=membership.member_id,
            email=email,
            has_access=membership.org_key_grant is not None,
            fingerprint=crypto.fingerprint(public_key),
            authentic=grants.membership_is_authentic(settings, membership, public_key),
            appointed_on=membership.appointed_on,
            instructed_on=membership.instructed_on,
            instruction_document=membership.instruction_document,
            published_name=membership.published_name,
        )
        for membership, email, public_key in rows
    ]


async def invite(
    session: AsyncSession,
    settings: Settings,
    organisation: Organisation,
    inviter: CurrentMember,
    email: str,
) -> None:
    """Add a person who already has an account, or send an invitation to set one up."""
    email = email.strip().lower()
    await billing.check_designated_persons(session, organisation)
    existing = await session.scalar(select(Member).where(Member.email == email))
    if existing is not None:
        already = await session.scalar(
            select(Membership.id).where(
                Membership.organisation_id == organisation.id, Membership.member_id == existing.id
            )
        )
        if already is not None:
            raise Conflict(N_("This person is already a designated person here."), field="email")
        session.add(grants.new_membership(settings, organisation.id, existing))
        subject, text = render_mail(
            "member_added", organisation=organisation, link=_link(settings, "/login")
        )
    else:
        token = secrets.token_urlsafe(32)
        session.add(
            Invitation(
                organisation_id=organisation.id,
                email=email,
                token_hash=_invitation_hash(settings, token),
                invited_by=inviter.member.id,
                expires_at=utcnow() + timedelta(days=INVITATION_DAYS),
            )
        )
        subject, text = render_mail(
            "invitation", organisation=organisation, link=_link(settings, f"/invite/{token}")
        )
    await mail.enqueue(session, settings, kind="invitation", to=email, subject=subject, text=text)
    await audit.record(
        session,
        organisation_id=organisation.id,
        action="member.invite",
        member_id=inviter.member.id,
    )
    await session.flush()


def _link(settings: Settings, path: str) -> str:
    return f"{settings.public_url.rstrip('/')}{path}"


async def new_member(settings: Settings, email: str, password: str) -> Member:
    """A designated person's account with a fresh key pair wrapped under the password."""
    member = Member(id=uuid.uuid4(), email=email)
    _set_password_keys(member, await keys.new_member_keys(settings, member.id, password))
    return member


async def find_invitation(session: AsyncSession, settings: Settings, token: str) -> Invitation:
    invitation = await session.scalar(
        select(Invitation).where(Invitation.token_hash == _invitation_hash(settings, token[:128]))
    )
    if invitation is None or invitation.accepted_at is not None or invitation.expires_at < utcnow():
        raise NotFound(INVALID_INVITATION)
    return invitation


async def accept_invitation(
    session: AsyncSession, settings: Settings, token: str, password: str
) -> Member:
    """Create the invited person's account; access follows when a key holder confirms it."""
    invitation = await find_invitation(session, settings, token)
    await passwords.check_password(password, invitation.email)
    if await session.scalar(select(Member.id).where(Member.email == invitation.email)):
        raise Conflict(N_("An account with this e-mail already exists."), code="email_taken")
    member = await new_member(settings, invitation.email, password)
    session.add(member)
    await session.flush()
    session.add(grants.new_membership(settings, invitation.organisation_id, member))
    invitation.accepted_at = utcnow()
    await session.flush()
    await _ask_for_confirmation(session, settings, invitation, member)
    return member


async def _ask_for_confirmation(
    session: AsyncSession, settings: Settings, invitation: Invitation, member: Member
) -> None:
    """Tell the inviter (or, if they left, every key holder) that someone waits for access."""
    organisation = await session.get_one(Organisation, invitation.organisation_id)
    holders = (
        select(Member.email)
        .join(Membership, Membership.member_id == Member.id)
        .where(Membership.organisation_id == organisation.id, Membership.org_key_grant.is_not(None))
    )
    recipients = list(await session.scalars(holders.where(Member.id == invitation.invited_by)))
    if not recipients:
        recipients = list(await session.scalars(holders))
    subject, text = render_mail(
        "access_waiting",
        organisation=organisation,
        email=member.email,
        fingerprint=crypto.fingerprint(member.public_key),
        link=_link(settings, f"/organisations/{organisation.slug}/team"),
    )
    for recipient in recipients:
        await mail.enqueue(
            session, settings, kind="access_waiting", to=recipient, subject=subject, text=text
        )


async def _membership(
    session: AsyncSession, organisation: Organisation, member_id: uuid.UUID
) -> Membership:
    membership = await session.scalar(
        select(Membership).where(
            Membership.organisation_id == organisation.id, Membership.member_id == member_id
        )
    )
    if membership is None:
        raise NotFound(N_("No such designated person."))
    return membership


async def remove_member(
    session: AsyncSession,
    settings: Settings,
    organisation: Organisation,
    actor: CurrentMember,
    member_id: uuid.UUID,
) -> rotation.Job | None:
    """Remove a person from the organisation; the last one cannot be removed.

    A person who had access held the organisation key: it is rotated, so that their copy opens
    none of the reports that come after (the job to finish after the commit is returned).
    """
    count = await session.scalar(
        select(func.count()).where(Membership.organisation_id == organisation.id)
    )
    membership = await _membership(session, organisation, member_id)
    if (count or 0) <= 1:
        raise Conflict(N_("The last designated person cannot be removed."), code="last_member")
    if await rotation.in_progress(session, organisation.id):
        raise Conflict(grants.ROTATION_FIRST, code="key_rotation_in_progress")
    await exclusion.release_member(session, organisation.id, member_id)
    job = None
    if membership.org_key_grant is not None:
        job = await rotation.start(
            session, settings, organisation, actor.member.id, actor.private_key, leaving=member_id
        )
    await session.delete(membership)
    await audit.record(
        session,
        organisation_id=organisation.id,
        action="member.remove",
        member_id=actor.member.id,
        detail=str(member_id),
    )
    await session.flush()
    return job


async def rotate_key(
    session: AsyncSession, settings: Settings, organisation: Organisation, actor: CurrentMember
) -> rotation.Job:
    """Start a rotation of the organisation key, or take up one left unfinished."""
    job = await rotation.resume(session, settings, organisation, actor.member.id, actor.private_key)
    if job is not None:
        return job
    return await rotation.start(session, settings, organisation, actor.member.id, actor.private_key)


async def record_appointment(
    session: AsyncSession,
    organisation: Organisation,
    actor: CurrentMember,
    member_id: uuid.UUID,
    appointed_on: date | None,
    instructed_on: date | None,
    instruction_document: str,
) -> None:
    """The appointment and the written instruction of duties that the Act asks to keep."""
    membership = await _membership(session, organisation, member_id)
    membership.appointed_on = appointed_on
    membership.instructed_on = instructed_on
    membership.instruction_document = instruction_document
    await audit.record(
        session,
        organisation_id=organisation.id,
        action="member.appointment",
        member_id=actor.member.id,
        detail=str(member_id),
    )
    await session.flush()


async def set_published_name(
    session: AsyncSession,
    organisation: Organisation,
    actor: CurrentMember,
    member_id: uuid.UUID,
    name: str,
) -> None:
    """The name the report form lists a person by; set by the person or by a key holder."""
    own = await _membership(session, organisation, actor.member.id)
    if member_id != actor.member.id and own.org_key_grant is None:
        raise Forbidden(
            N_("Only the person or a designated person who has access can change this name."),
            code="no_grant",
        )
    membership = await _membership(session, organisation, member_id)
    membership.published_name = name
    await audit.record(
        session,
        organisation_id=organisation.id,
        action="member.published_name",
        member_id=actor.member.id,
        detail=str(member_id),
    )
    await session.flush()


async def change_password(
    session: AsyncSession, settings: Settings, current: CurrentMember, old: str, new: str
) -> None:
    """Re-wrap the member's private key under the new password; other sessions end."""
    member = current.member
    derived = await keys.derive_password_keys(
        old, member.password_salt, crypto.Argon2Params.decode(member.password_params)
    )
    if not crypto.verify_equal(derived.verifier, member.password_verifier):
        raise Unauthorized(N_("The current password is wrong."), code="invalid_credentials")
    await passwords.check_password(new, member.email, field="new_password")
    _set_password_keys(
        member, await keys.rewrap_member_key(settings, member.id, current.private_key, new)
    )
    await session.execute(
        delete(MemberSession).where(
            MemberSession.member_id == member.id, MemberSession.id != current.session.id
        )
    )
    await session.flush()


def _set_password_keys(member: Member, wrapped: keys.MemberKeys) -> None:
    member.password_salt = wrapped.salt
    member.password_params = wrapped.params
    member.password_verifier = wrapped.verifier
    member.public_key = wrapped.public_key
    member.wrapped_private_key = wrapped.wrapped_private_key


async def recover(
    session: AsyncSession,
    settings: Settings,
    slug: str,
    email: str,
    recovery_key: str,
    new_password: str,
) -> Member:
    """Regain access with the organisation's recovery key after every password is lost.

    The person gets a new key pair (the old private key is lost with the password) and a new
    grant for this organisation; grants of other organisations were sealed to the old key, so a
    key holder there must confirm the person again. Sessions end and TOTP is reset.
    """
    refused = InvalidInput(
        N_("The organisation, e-mail or recovery key does not match."), code="recovery_failed"
    )
    row = (
        await session.execute(
            select(Organisation, Member, Membership)
            .join(Membership, Membership.organisation_id == Organisation.id)
            .join(Member, Member.id == Membership.member_id)
            .where(Organisation.slug == slug.strip().lower(), Member.email == email.strip().lower())
        )
    ).one_or_none()
    if row is None:
        raise refused
    organisation, member, membership = row
    try:
        org_private = keys.open_with_recovery_key(
            recovery_key,
            organisation.recovery_wrapped_key,
            organisation.id,
            organisation.recovery_grant,
        )
    except crypto.CryptoError:
        raise refused from None
    grants.check_organisation_key(settings, organisation)
    if crypto.public_key_of(org_private) != organisation.public_key:
        raise KeyIntegrityFailure()
    await passwords.check_password(
        new_password, member.email, organisation.name, field="new_password"
    )
    fresh = await keys.new_member_keys(settings, member.id, new_password)
    _set_password_keys(member, fresh)
    member.totp_secret = None
    member.totp_enabled_at = None
    member.totp_last_counter = None
    others = await session.scalars(
        select(Membership).where(Membership.member_id == member.id, Membership.id != membership.id)
    )
    for other in others:
        other.org_key_grant = None
        other.next_org_key_grant = None
        grants.tag_membership(settings, other, fresh.public_key)
    grants.tag_membership(settings, membership, fresh.public_key)
    membership.org_key_grant = keys.grant_org_key(
        org_private, fresh.public_key, organisation.id, member.id
    )
    membership.next_org_key_grant = await rotation.recovered_grant(
        session, organisation, recovery_key, fresh.public_key, member.id
    )
    await exclusion.reseal_for_recovered(
        session, organisation, recovery_key, member.id, fresh.public_key
    )
    await session.execute(delete(MemberSession).where(MemberSession.member_id == member.id))
    await audit.record(
        session, organisation_id=organisation.id, action="member.recover", member_id=member.id
    )
    await session.flush()
    return member
