"""Grants: the organisation key sealed to each designated person's public key."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Member, Membership
from app.services import audit, keys


async def grant_pending(session: AsyncSession, member: Member, private_key: bytes) -> int:
    """Seal the organisation keys this member holds to every colleague still without one."""
    granted = 0
    own = await session.scalars(
        select(Membership).where(
            Membership.member_id == member.id, Membership.org_key_grant.is_not(None)
        )
    )
    for membership in list(own):
        assert membership.org_key_grant is not None  # noqa: S101 - filtered above
        org_private = keys.open_grant(
            membership.org_key_grant, private_key, membership.organisation_id, member.id
        )
        waiting = (
            await session.execute(
                select(Membership, Member.public_key)
                .join(Member, Member.id == Membership.member_id)
                .where(
                    Membership.organisation_id == membership.organisation_id,
                    Membership.org_key_grant.is_(None),
                )
            )
        ).all()
        for pending, public_key in waiting:
            pending.org_key_grant = keys.grant_org_key(
                org_private, public_key, pending.organisation_id, pending.member_id
            )
            await audit.record(
                session,
                organisation_id=pending.organisation_id,
                action="member.grant",
                member_id=member.id,
                detail=str(pending.member_id),
            )
            granted += 1
    await session.flush()
    return granted
