"""JSON API of the whistleblower: submit a report, read the case, write to the designated persons.

A report is JSON, or multipart/form-data with the same fields and `files`. The tracking code
travels only in the `X-Tracking-Code` header, never in a path or query string.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from app.bodylimit import takes_files
from app.db import SessionDep
from app.deps import SettingsDep
from app.routers.uploads import rate_limit, read_submission
from app.schemas.report import (
    DesignatedPersonList,
    DesignatedPersonRead,
    MessageCreate,
    ReportCreated,
    ReportSelfRead,
    ReportSubmit,
)
from app.services import attachments, exclusion, registration, reports

router = APIRouter(prefix="/api/v1/public", tags=["whistleblower"])
TrackingCode = Annotated[str, Header(alias="X-Tracking-Code", max_length=100)]

_BOTH_BODIES: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ReportSubmit"}},
            "multipart/form-data": {
                "schema": {
                    "allOf": [{"$ref": "#/components/schemas/ReportSubmit"}],
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                }
            },
        },
    }
}


@router.post(
    "/{slug}/reports",
    status_code=201,
    openapi_extra=_BOTH_BODIES,
    responses={
        409: {
            "description": "the organisation cannot receive reports now, or excluding the persons"
            " chosen would leave nobody to read the report (`nobody_left`)"
        }
    },
)
@takes_files
async def submit_report(
    slug: str, request: Request, session: SessionDep, settings: SettingsDep
) -> ReportCreated:
    """Submit a report; the answer carries the tracking code, shown only this once."""
    rate_limit(request, "submit", settings.submissions_per_hour, 3600)
    # The body first: no database connection is held while a slow client uploads.
    data, files = await read_submission(request, settings, ReportSubmit)
    organisation = await registration.get_receiving_organisation(session, slug)
    submitted = await reports.submit_report(
        session, settings, organisation, data.content(), files,
        exclude=data.exclude, name_excluded=data.name_excluded,
    )  # fmt: skip
    return ReportCreated(
        tracking_code=submitted.tracking_code,
        tracking_url=reports.tracking_url(settings, submitted.tracking_code),
        received_at=submitted.report.received_at,
    )


@router.get("/{slug}/designated-persons")
async def list_designated_persons(
    slug: str, session: SessionDep, settings: SettingsDep
) -> DesignatedPersonList:
    """The designated persons a report may exclude (`exclude` of a report), by the names the
    organisation publishes; empty when the organisation offers no exclusion."""
    organisation = await registration.get_receiving_organisation(session, slug)
    listed = await exclusion.listed_persons(session, settings, organisation)
    return DesignatedPersonList(
        items=[DesignatedPersonRead(member_id=h.member_id, name=h.published_name) for h in listed]
    )


async def _open(
    request: Request, session: SessionDep, settings: SettingsDep, code: str
) -> reports.OpenedReport:
    rate_limit(request, "lookup", settings.lookups_per_10_minutes, 600)
    return await reports.open_by_code(session, settings, code)


@router.get("/reports/self")
async def read_own_report(
    request: Request, session: SessionDep, settings: SettingsDep, code: TrackingCode
) -> ReportSelfRead:
    """The whistleblower's case: status, deadlines, the report and the whole thread."""
    opened = await _open(request, session, settings, code)
    return await reports.whistleblower_view(session, opened)


@router.post(
    "/reports/self/messages",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/MessageCreate"}},
                "multipart/form-data": {"schema": {"$ref": "#/components/schemas/MessageCreate"}},
            },
        }
    },
)
@takes_files
async def write_message(
    request: Request, session: SessionDep, settings: SettingsDep, code: TrackingCode
) -> ReportSelfRead:
    """Write to the designated persons (JSON `body`, or multipart with `body` and `files`)."""
    opened = await _open(request, session, settings, code)
    data, files = await read_submission(request, settings, MessageCreate)
    await reports.add_whistleblower_message(session, settings, opened, data.body, files)
    return await reports.whistleblower_view(session, opened)


@router.post("/reports/self/record-comments")
async def comment_on_record(
    request: Request,
    data: MessageCreate,
    session: SessionDep,
    settings: SettingsDep,
    code: TrackingCode,
) -> ReportSelfRead:
    """Comment on the record a designated person made of an oral or in-person report (`body`);
    earlier comments stay, each dated."""
    opened = await _open(request, session, settings, code)
    await reports.comment_on_record(session, settings, opened, data.body)
    return await reports.whistleblower_view(session, opened)


@router.post("/reports/self/meeting")
async def request_meeting(
    request: Request, session: SessionDep, settings: SettingsDep, code: TrackingCode
) -> ReportSelfRead:
    """Ask for a personal meeting; the designated person must offer it within 14 days."""
    opened = await _open(request, session, settings, code)
    await reports.request_meeting(session, settings, opened)
    return await reports.whistleblower_view(session, opened)


@router.get("/reports/self/files/{attachment_id}")
async def download_file(
    attachment_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    code: TrackingCode,
) -> StreamingResponse:
    """Download one file of the case, decrypted as it streams."""
    opened = await _open(request, session, settings, code)
    attachment, read = await reports.report_attachment(
        session, opened.report, opened.report_key, attachment_id
    )
    chunks = attachments.stream_file(request.app.state.sessionmaker, attachment, opened.report_key)
    return attachments.download_response(chunks, read.name, read.content_type, read.size)
