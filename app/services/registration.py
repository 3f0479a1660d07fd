"""Organisation registration and verification of its notification address."""

import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import crypto
from app.config import Settings
from app.errors import Conflict, NotFound
from app.i18n import N_
from app.models import Member, Organisation, TermsVersion
from app.models.base import utcnow
from app.schemas.organisation import OrganisationCreate
from app.services import deadlines, grants, keys, mail, passwords, team
from app.templating import render_mail


@dataclass(frozen=True)
class Registered:
    organisation: Organisation
    recovery_key: str


def _verification_hash(settings: Settings, token: str) -> bytes:
    return keys.keyed_hash(settings, "email-verification", token.encode())


async def register_organisation(
    session: AsyncSession, settings: Settings, data: OrganisationCreate
) -> Registered:
    """Create the organisation, its key pair, its first designated person and recovery key.

    An e-mail that already has an account gets the same answer, so registering does not tell
    whether an address has an account: the organisation is created without a designated person
    (its slug, form page and recovery key behave as any new one's; it can never be verified or
    receive reports), the account is left untouched and its owner is told by mail.
    """
    email = data.email.lower()
    await passwords.check_password(data.password, email, data.name)
    if await session.scalar(select(Organisation.id).where(Organisation.slug == data.slug)):
        raise Conflict(N_("This address is already taken."), code="slug_taken", field="slug")
    existing = await session.scalar(select(Member.id).where(Member.email == email))

    org_keys = crypto.generate_keypair()
    organisation_id = uuid.uuid4()
    recovery = keys.new_recovery(organisation_id)
    token = secrets.token_urlsafe(32)
    organisation = Organisation(
        id=organisation_id,
        slug=data.slug,
        name=data.name,
        ico=data.ico,
        address=data.address,
        email=email,
        email_verification_hash=_verification_hash(settings, token),
        public_key=org_keys.public,
        key_version=1,
        recovery_wrapped_key=recovery.wrapped_private_key,
        recovery_public_key=recovery.public_key,
        recovery_grant=keys.seal_recovery_grant(
            recovery.public_key, org_keys.private, organisation_id
        ),
        # Registering accepts the terms in effect, whose version the form names.
        terms_version=await terms_in_effect(session),
        terms_accepted_at=utcnow(),
    )
    grants.tag_organisation(settings, organisation)
    # Argon2 runs for a known e-mail too, so the answer takes as long.
    member = await team.new_member(settings, email, data.password)
    try:
        if existing is None:
            session.add_all([organisation, member])
            await session.flush()
            session.add(
                grants.new_membership(
                    settings,
                    organisation.id,
                    member,
                    org_key_grant=keys.grant_org_key(
                        org_keys.private, member.public_key, organisation.id, member.id
                    ),
                )
            )
        else:  # its verification link is never sent, so it can never be verified
            session.add(organisation)
        await session.flush()
    except IntegrityError as exc:  # a concurrent registration took the slug or e-mail
        raise Conflict(N_("This address or e-mail is already taken."), code="taken") from exc
    if existing is None:
        await _queue_verification_mail(session, settings, organisation, token)
    else:
        await _queue_attempt_mail(session, settings, organisation)
    return Registered(organisation=organisation, recovery_key=recovery.recovery_key)


async def _queue_attempt_mail(
    session: AsyncSession, settings: Settings, organisation: Organisation
) -> None:
    link = f"{settings.public_url.rstrip('/')}/login"
    subject, text = render_mail("registration_attempt", organisation=organisation, link=link)
    await mail.enqueue(
        session,
        settings,
        kind="registration_attempt",
        to=organisation.email,
        subject=subject,
        text=text,
    )


async def _queue_verification_mail(
    session: AsyncSession, settings: Settings, organisation: Organisation, token: str
) -> None:
    link = f"{settings.public_url.rstrip('/')}/verify/{token}"
    subject, text = render_mail("verify_email", organisation=organisation, link=link)
    await mail.enqueue(
        session, settings, kind="verify_email", to=organisation.email, subject=subject, text=text
    )


async def verify_email(session: AsyncSession, settings: Settings, token: str) -> Organisation:
    """Mark the organisation's notification address verified; the link works once."""
    if not 16 <= len(token) <= 128:
        raise NotFound(N_("This verification link is not valid."))
    organisation = await session.scalar(
        select(Organisation).where(
            Organisation.email_verification_hash == _verification_hash(settings, token)
        )
    )
    if organisation is None:
        raise NotFound(N_("This verification link is not valid."))
    organisation.email_verified_at = utcnow()
    organisation.email_verification_hash = None
    await session.flush()
    return organisation


async def find_organisation(session: AsyncSession, slug: str) -> Organisation:
    """The organisation of a public address; NotFound if there is none."""
    organisation = await session.scalar(
        select(Organisation).where(Organisation.slug == slug.lower()[:40])
    )
    if organisation is None:
        raise NotFound(N_("No organisation uses this address."))
    return organisation


INITIAL_TERMS_VERSION = "1"


async def terms_in_effect(session: AsyncSession) -> str:
    """The version of the operator's terms in effect today."""
    version = await session.scalar(
        select(TermsVersion.version)
        .where(TermsVersion.effective_on <= deadlines.local_date(utcnow()))
        .order_by(TermsVersion.effective_on.desc(), TermsVersion.announced_at.desc())
        .limit(1)
    )
    return version or INITIAL_TERMS_VERSION


NOT_RECEIVING = {
    "cancelled": N_("This organisation no longer receives reports here. You can report to the "
                    "Ministry of Justice's external channel."),
    "blocked": N_("This organisation's reporting channel is suspended. You can report to the "
                  "Ministry of Justice's external channel."),
    "not_verified": N_("This organisation cannot receive reports yet: it has not verified its "
                       "address."),
    "no_designated_persons_published": N_(
        "This organisation cannot receive reports yet: it has not published who its designated "
        "persons are. You can report to the Ministry of Justice's external channel."
    ),
}  # fmt: skip


def ensure_can_receive(organisation: Organisation) -> None:
    """The one rule of whether a form accepts reports: Conflict with the reason when not."""
    reason = organisation.not_receiving_because
    if reason is not None:
        code = "organisation_" + reason if reason != "no_designated_persons_published" else reason
        raise Conflict(NOT_RECEIVING[reason], code=code)


async def get_receiving_organisation(session: AsyncSession, slug: str) -> Organisation:
    """The organisation behind a public form, if it may receive reports now."""
    organisation = await find_organisation(session, slug)
    ensure_can_receive(organisation)
    return organisation
