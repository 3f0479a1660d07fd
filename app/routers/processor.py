"""The operator as processor, in public: the sub-processors list and the footer's contact line."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.db import SessionDep
from app.models.base import utcnow
from app.services import deadlines, operator
from app.templating import render, request_language

router = APIRouter(include_in_schema=False)


async def load_service_contact(request: Request, session: SessionDep) -> None:
    """Put the operator's support contact and status line where every page's footer finds it."""
    if not request.url.path.startswith("/api/"):
        contact = await operator.service_contact(session)
        if contact is not None:
            # Detached, so an error page rendered after the rollback can still show it.
            session.expunge(contact)
        request.state.service_contact = contact


@router.get("/sub-processors", response_class=HTMLResponse)
async def list_sub_processors(request: Request, session: SessionDep) -> Response:
    """The sub-processors in effect, those announced, and every change with its date."""
    language = request_language(request)
    return render(
        request,
        "public/sub_processors.html",
        {
            "today": deadlines.local_date(utcnow()),
            "processors": await operator.sub_processors(session),
            "changes": await operator.sub_processor_changes(session),
            "country": lambda code: operator.country_name(code, language),
        },
    )
