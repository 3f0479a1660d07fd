"""Who is written to about an organisation's account: its address and its designated persons."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Member, Membership, Organisation


async def organisation_recipients(session: AsyncSession, organisation: Organisation) -> list[str]:
    """The organisation's e-mail address and every designated person's, sorted, each once."""
    designated_persons = await session.scalars(
        select(Member.email)
        .join(Membership, Membership.member_id == Member.id)
        .where(Membership.organisation_id == organisation.id)
    )
    return sorted({organisation.email, *designated_persons})
