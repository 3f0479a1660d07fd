"""JSON API: organisation registration."""

from fastapi import APIRouter, Request

from app.db import SessionDep
from app.deps import SettingsDep
from app.routers.uploads import rate_limit
from app.schemas.organisation import OrganisationCreate, OrganisationCreated
from app.services import registration

router = APIRouter(prefix="/api/v1/organisations", tags=["organisations"])


@router.post("", status_code=201)
async def register_organisation(
    data: OrganisationCreate, request: Request, session: SessionDep, settings: SettingsDep
) -> OrganisationCreated:
    """Register an organisation; a verification e-mail goes to its address."""
    rate_limit(request, "registration", settings.registrations_per_hour, 3600)
    registered = await registration.register_organisation(session, settings, data)
    return OrganisationCreated(
        slug=registered.organisation.slug,
        recovery_key=registered.recovery_key,
        form_url=f"{settings.public_url.rstrip('/')}/{registered.organisation.slug}",
    )
