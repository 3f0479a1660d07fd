"""JSON API: an organisation's settings, read and changed by its designated persons."""

from fastapi import APIRouter

from app.db import SessionDep
from app.deps import CurrentMemberDep, SettingsDep
from app.schemas.settings import OrganisationSettings, OrganisationSettingsRead
from app.services import organisations

router = APIRouter(prefix="/api/v1/organisations/{slug}/settings", tags=["settings"])


@router.get("")
async def read_settings(
    slug: str, current: CurrentMemberDep, session: SessionDep, settings: SettingsDep
) -> OrganisationSettingsRead:
    """The organisation's form rules, embedding origins, information texts and embed snippet."""
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    return organisations.settings_read(settings, organisation)


@router.put("")
async def update_settings(
    slug: str,
    data: OrganisationSettings,
    current: CurrentMemberDep,
    session: SessionDep,
    settings: SettingsDep,
) -> OrganisationSettingsRead:
    """Replace the organisation's settings; embedding origins must be https:// origins."""
    organisation = await organisations.member_organisation(session, current.member.id, slug)
    await organisations.update_settings(session, organisation, data)
    return organisations.settings_read(settings, organisation)
