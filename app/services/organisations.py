"""An organisation's settings, its embedding snippet and its public information page."""

import json
import uuid
from html import escape
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import i18n
from app.config import Settings
from app.errors import NotFound
from app.i18n import N_
from app.models import Membership, Organisation
from app.schemas.settings import OrganisationSettings, OrganisationSettingsRead
from app.services import billing, registration

UNKNOWN_ORGANISATION = N_("No organisation uses this address.")
FRAME_TITLE = N_("Whistleblowing report form of %(name)s")
# A tall form page still fits; anything larger is not a height the form would report.
MAX_FRAME_HEIGHT = 100000


async def member_organisation(
    session: AsyncSession, member_id: uuid.UUID, slug: str
) -> Organisation:
    """The organisation the member serves at this address; NotFound for any other."""
    # The same answer for an unknown address and for another organisation's: nothing confirms
    # that an organisation the member does not serve exists.
    organisation = await session.scalar(
        select(Organisation)
        .join(Membership, Membership.organisation_id == Organisation.id)
        .where(Membership.member_id == member_id, Organisation.slug == slug.lower())
    )
    if organisation is None:
        raise NotFound(UNKNOWN_ORGANISATION)
    return organisation


async def update_settings(
    session: AsyncSession, organisation: Organisation, data: OrganisationSettings
) -> Organisation:
    """Store validated settings; the form's framing policy follows the new origins at once."""
    if len(data.embed_origins) > len(organisation.allowed_embed_origins):
        # Only a growing list is checked: a plan that ended keeps the form where it is embedded.
        await billing.check_embed_origins(session, organisation, len(data.embed_origins))
    organisation.accepts_anonymous = data.accepts_anonymous
    organisation.only_own_people = data.only_own_people
    organisation.embed_origins = "\n".join(data.embed_origins)
    organisation.info_how_to_report = data.info_how_to_report
    organisation.info_designated_persons = data.info_designated_persons
    await session.flush()
    return organisation


async def get_public_organisation(session: AsyncSession, slug: str) -> Organisation:
    """The organisation behind a public information page; NotFound if unknown or blocked."""
    organisation = await registration.find_organisation(session, slug)
    if organisation.blocked_at is not None:
        # A registration blocked for false data must not keep publishing its texts.
        raise NotFound(UNKNOWN_ORGANISATION)
    return organisation


def _public_base(settings: Settings) -> str:
    return settings.public_url.rstrip("/")


def _service_origin(settings: Settings) -> str:
    public = urlsplit(settings.public_url)
    return f"{public.scheme}://{public.netloc}"


def form_url(settings: Settings, organisation: Organisation) -> str:
    return f"{_public_base(settings)}/{organisation.slug}"


def info_url(settings: Settings, organisation: Organisation) -> str:
    return f"{_public_base(settings)}/{organisation.slug}/info"


def embed_snippet(
    settings: Settings, organisation: Organisation, language: str = i18n.DEFAULT_LANGUAGE
) -> str:
    """The HTML an organisation pastes into its website: the form's iframe and a resize script."""
    # The snippet goes on the organisation's own website, which is Czech unless asked otherwise.
    title = i18n.translations(language).ugettext(FRAME_TITLE) % {"name": organisation.name}
    frame_id = f"pistalka-{organisation.slug}"
    src = form_url(settings, organisation)
    if language != i18n.DEFAULT_LANGUAGE:
        src += f"?lang={language}"
    # A JSON string with '<' escaped is a safe JavaScript literal inside <script>.
    origin = json.dumps(_service_origin(settings)).replace("<", "\\u003c")
    script_id = json.dumps(frame_id).replace("<", "\\u003c")
    return (
        f'<iframe id="{escape(frame_id)}" src="{escape(src)}" title="{escape(title)}"'
        ' style="width:100%;min-height:60rem;border:0" loading="lazy"'
        ' referrerpolicy="no-referrer"'
        ' sandbox="allow-forms allow-scripts allow-same-origin allow-popups'
        ' allow-top-navigation-by-user-activation"></iframe>\n'
        "<script>\n"
        'window.addEventListener("message", function (event) {\n'
        f"  var frame = document.getElementById({script_id});\n"
        f"  if (!frame || event.origin !== {origin}) return;\n"
        "  if (event.source !== frame.contentWindow) return;\n"
        '  if (!event.data || event.data.pistalka !== "height") return;\n'
        "  var height = Number(event.data.height);\n"
        f"  if (height > 0 && height < {MAX_FRAME_HEIGHT}) {{\n"
        '    frame.style.height = Math.ceil(height) + "px";\n'
        "  }\n"
        "});\n"
        "</script>\n"
    )


def settings_read(settings: Settings, organisation: Organisation) -> OrganisationSettingsRead:
    """The organisation's settings with the addresses and snippet to publish them."""
    return OrganisationSettingsRead(
        accepts_anonymous=organisation.accepts_anonymous,
        only_own_people=organisation.only_own_people,
        embed_origins=organisation.allowed_embed_origins,
        info_how_to_report=organisation.info_how_to_report,
        info_designated_persons=organisation.info_designated_persons,
        slug=organisation.slug,
        name=organisation.name,
        form_url=form_url(settings, organisation),
        info_url=info_url(settings, organisation),
        embed_snippet=embed_snippet(settings, organisation),
    )
