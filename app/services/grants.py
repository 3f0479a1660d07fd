"""Key custody in the database: grants of the organisation key, and the tags that authenticate
the organisation's key columns and its memberships.

A grant is the organisation private key sealed to one designated person's public key. Only a
key holder makes one, in their own session, by an explicit act: confirming on the team page a
person whose e-mail and key fingerprint they see. The organisation's key columns and every
membership carry a MAC under a server sub-key (keys.integrity_tag): a membership planted by SQL
is never offered a grant, and a public key swapped by SQL is refused before anything is sealed
to it. Whoever also holds the server key can make tags; what stops them is the explicit act
and the fingerprint (docs/security.md).
"""

import hmac
import logging
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import crypto
from app.config import Settings
from app.errors import Conflict, Forbidden, KeyIntegrityFailure, NotFound
from app.i18n import N_
from app.models import KeyRotation, Member, Membership, Organisation
from app.services import audit, keys
from app.services.auth import CurrentMember

logger = logging.getLogger("pistalka.keys")

ORGANISATION_KEY = b"organisation-key"
MEMBERSHIP = b"membership"
NO_SUCH_MEMBER = N_("No such designated person.")


def _organisation_parts(organisation: Organisation) -> tuple[bytes, ...]:
    return (
        organisation.id.bytes,
        organisation.key_version.to_bytes(4, "big"),
        organisation.public_key,
        organisation.recovery_public_key or b"",
    )


def tag_organisation(settings: Settings, organisation: Organisation) -> None:
    """Authenticate the organisation's key columns after the service set them."""
    organisation.key_tag = keys.integrity_tag(
        settings, ORGANISATION_KEY, *_organisation_parts(organisation)
    )


def check_organisation_key(settings: Settings, organisation: Organisation) -> None:
    """Refuse to seal anything to an organisation key the service did not store."""
    if not keys.tag_matches(
        settings, organisation.key_tag, ORGANISATION_KEY, *_organisation_parts(organisation)
    ):
        logger.error("organisation %s: its key columns fail their integrity check", organisation.id)
        raise KeyIntegrityFailure()


def tag_membership(settings: Settings, membership: Membership, public_key: bytes) -> None:
    """Authenticate a membership the service created, bound to the member's public key."""
    membership.tag = keys.integrity_tag(
        settings, MEMBERSHIP, membership.organisation_id.bytes, membership.member_id.bytes,
        public_key,
    )  # fmt: skip


def membership_is_authentic(settings: Settings, membership: Membership, public_key: bytes) -> bool:
    return keys.tag_matches(
        settings, membership.tag, MEMBERSHIP, membership.organisation_id.bytes,
        membership.member_id.bytes, public_key,
    )  # fmt: skip


def new_membership(
    settings: Settings,
    organisation_id: uuid.UUID,
    member: Member,
    org_key_grant: bytes | None = None,
) -> Membership:
    """A tagged membership of `member`; access only with a grant."""
    membership = Membership(
        id=uuid.uuid4(),
        organisation_id=organisation_id,
        member_id=member.id,
        org_key_grant=org_key_grant,
    )
    tag_membership(settings, membership, member.public_key)
    return membership


def open_organisation_key(
    organisation: Organisation,
    grant: bytes,
    member_private_key: bytes,
    member_id: uuid.UUID,
    public_key: bytes | None = None,
) -> bytes:
    """The organisation private key of a grant, checked against the organisation public key.

    A grant made to a key of someone's own choosing (written into the database) opens to a key
    that is not the organisation's: refused, rather than used to seal or to confirm others.
    """
    private_key = keys.open_grant(grant, member_private_key, organisation.id, member_id)
    expected = organisation.public_key if public_key is None else public_key
    if not hmac.compare_digest(crypto.public_key_of(private_key), expected):
        logger.error("organisation %s: a grant opens to a key not its own", organisation.id)
        raise KeyIntegrityFailure()
    return private_key


async def confirm_access(
    session: AsyncSession,
    settings: Settings,
    organisation: Organisation,
    actor: CurrentMember,
    member_id: uuid.UUID,
) -> None:
    """A key holder grants a colleague access: the organisation key sealed to their key."""
    actor_id = actor.member.id
    rows = (
        await session.execute(
            select(Membership, Member.public_key)
            .join(Member, Member.id == Membership.member_id)
            .where(
                Membership.organisation_id == organisation.id,
                Membership.member_id.in_([actor_id, member_id]),
            )
        )
    ).all()
    found = {membership.member_id: (membership, public_key) for membership, public_key in rows}
    if member_id not in found or actor_id not in found:
        raise NotFound(NO_SUCH_MEMBER)
    own, _ = found[actor_id]
    target, public_key = found[member_id]
    if own.org_key_grant is None:
        raise Forbidden(
            N_("Only a designated person who has access to the reports can confirm others."),
            code="no_grant",
        )
    if target.org_key_grant is not None:
        raise Conflict(N_("This person has access already."), code="has_access")
    if not membership_is_authentic(settings, target, public_key):
        raise Conflict(UNAUTHENTIC, code="membership_not_authentic")
    if await session.get(KeyRotation, organisation.id) is not None:
        raise Conflict(ROTATION_FIRST, code="key_rotation_in_progress")
    check_organisation_key(settings, organisation)
    org_private = open_organisation_key(
        organisation, own.org_key_grant, actor.private_key, actor_id
    )
    target.org_key_grant = keys.grant_org_key(org_private, public_key, organisation.id, member_id)
    await audit.record(
        session,
        organisation_id=organisation.id,
        action="member.grant",
        member_id=actor_id,
        detail=str(member_id),
    )
    await session.flush()


UNAUTHENTIC = N_(
    "This entry was not made by Píšťalka: it may have been written into the database directly. "
    "Do not give it access; remove it and tell the operator."
)
ROTATION_FIRST = N_("Finish the change of the organisation key first.")
