"""JSON API of the designated person: the case list, one case decrypted, and its actions."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from app.bodylimit import takes_files
from app.db import SessionDep
from app.deps import AccessReasonDep, CurrentMemberDep, SettingsDep
from app.routers.uploads import read_submission
from app.schemas.case import (
    AcknowledgeRequest,
    BodyRequest,
    CaseList,
    CaseRead,
    DecisionRequest,
    ExtendRequest,
    IdentityUpdate,
    LegalHoldRequest,
    MeasureCreate,
    MeetingPlan,
    RecordedReportCreate,
    RecordedReportCreated,
    ShareRequest,
    SummaryRequest,
    Triage,
)
from app.services import attachments, cases, reports

router = APIRouter(prefix="/api/v1/cases", tags=["cases"])


@router.get("")
async def list_cases(
    session: SessionDep,
    current: CurrentMemberDep,
    organisation: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    outcome: Annotated[str | None, Query(max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = cases.PAGE_SIZE,
    offset: Annotated[int, Query(ge=0, le=10**7)] = 0,
) -> CaseList:
    """The cases of the organisations the person serves, overdue first, then by next
    deadline; `limit` and `offset` page through them, `total` counts them all."""
    accesses = await cases.accessible_organisations(session, current, organisation)
    page = await cases.list_cases(
        session, accesses, status=status, outcome=outcome, limit=limit, offset=offset
    )
    return CaseList(items=page.items, total=page.total, limit=limit, offset=offset)


@router.post("", status_code=201)
@takes_files
async def record_report(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
    organisation: Annotated[str, Query(max_length=40)],
) -> RecordedReportCreated:
    """Open a case from a report received by telephone, in person or by post (JSON or
    multipart with the recording or the written record as `files`)."""
    [access] = await cases.accessible_organisations(session, current, organisation)
    data, files = await read_submission(request, settings, RecordedReportCreate)
    submitted = await cases.record_report(session, settings, access, data, files)
    return RecordedReportCreated(
        id=submitted.report.id,
        reference=submitted.report.reference,
        tracking_code=submitted.tracking_code,
        tracking_url=reports.tracking_url(settings, submitted.tracking_code),
    )


@router.get("/{case_id}")
async def read_case(
    case_id: str, session: SessionDep, current: CurrentMemberDep, reason: AccessReasonDep
) -> CaseRead:
    """One case decrypted; the first read in a session needs `X-Access-Reason`."""
    access, report = await cases.open_case(session, current, case_id)
    return await cases.read_case(session, access, current, report, reason)


@router.get("/{case_id}/files/{attachment_id}")
async def download_file(
    case_id: str,
    attachment_id: str,
    request: Request,
    session: SessionDep,
    current: CurrentMemberDep,
    reason: AccessReasonDep,
) -> StreamingResponse:
    """Download one file of the case, decrypted as it streams (audited)."""
    access, report = await cases.open_case(session, current, case_id)
    await cases.ensure_reason(session, access, current, report, reason)
    attachment, read = await cases.case_attachment(session, access, report, attachment_id)
    chunks = attachments.stream_file(
        request.app.state.sessionmaker, attachment, cases.report_key(access, report)
    )
    return attachments.download_response(chunks, read.name, read.content_type, read.size)


async def _reread(session: SessionDep, current: CurrentMemberDep, case_id: str) -> CaseRead:
    access, report = await cases.open_case(session, current, case_id)
    return await cases.read_case(session, access, current, report, None)


@router.post("/{case_id}/acknowledge")
async def acknowledge(
    case_id: str,
    data: AcknowledgeRequest,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
) -> CaseRead:
    """Acknowledge receipt to the whistleblower, or waive it for a statutory reason."""
    access, report = await cases.open_case(session, current, case_id)
    await cases.acknowledge(session, settings, access, report, data.message, data.waive)
    return await _reread(session, current, case_id)


@router.post("/{case_id}/extend")
async def extend(
    case_id: str,
    data: ExtendRequest,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
) -> CaseRead:
    """Extend the assessment deadline by 30 days (at most twice), telling the reason."""
    access, report = await cases.open_case(session, current, case_id)
    await cases.extend(session, settings, access, report, data.reason, data.days)
    return await _reread(session, current, case_id)


@router.post("/{case_id}/decision")
async def decide(
    case_id: str,
    data: DecisionRequest,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
) -> CaseRead:
    """Record the outcome (valid, not_valid, not_a_report) and tell the whistleblower."""
    access, report = await cases.open_case(session, current, case_id)
    await cases.decide(session, settings, access, report, data.outcome, data.message)
    return await _reread(session, current, case_id)


@router.post("/{case_id}/measures")
async def record_measures(
    case_id: str,
    data: MeasureCreate,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
) -> CaseRead:
    """Record measures proposed by the designated person or taken by the organisation, as a
    dated entry; the whistleblower is told unless `tell_whistleblower` is false."""
    access, report = await cases.open_case(session, current, case_id)
    await cases.record_measures(session, settings, access, report, data)
    return await _reread(session, current, case_id)


@router.post("/{case_id}/messages", status_code=201)
@takes_files
async def write_message(
    case_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
) -> CaseRead:
    """Write to the whistleblower (JSON `body`, or multipart with `body` and `files`)."""
    access, report = await cases.open_case(session, current, case_id)
    data, files = await read_submission(request, settings, BodyRequest)
    await cases.write_message(session, settings, access, report, data.body, files)
    return await _reread(session, current, case_id)


@router.post("/{case_id}/notes", status_code=201)
async def add_note(
    case_id: str, data: BodyRequest, session: SessionDep, current: CurrentMemberDep
) -> CaseRead:
    """An internal note the whistleblower never sees."""
    access, report = await cases.open_case(session, current, case_id)
    await cases.add_note(session, access, report, data.body)
    return await _reread(session, current, case_id)


@router.post("/{case_id}/recipients", status_code=204)
async def share_case(
    case_id: str,
    data: ShareRequest,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
) -> None:
    """Let a colleague who holds the organisation key read a case that excludes someone (its
    key sealed to theirs); never a person the whistleblower excluded."""
    access, report = await cases.open_case(session, current, case_id)
    await cases.share_case(session, settings, access, report, str(data.member_id))


@router.post("/{case_id}/record-comments")
async def add_record_comments(
    case_id: str, data: BodyRequest, session: SessionDep, current: CurrentMemberDep
) -> CaseRead:
    """Store the whistleblower's comments on the record of their oral report."""
    access, report = await cases.open_case(session, current, case_id)
    await cases.add_record_comments(session, access, report, data.body)
    return await _reread(session, current, case_id)


@router.post("/{case_id}/identity")
async def record_identity(
    case_id: str, data: IdentityUpdate, session: SessionDep, current: CurrentMemberDep
) -> CaseRead:
    """Record the identity the whistleblower revealed; it reaches the register."""
    access, report = await cases.open_case(session, current, case_id)
    await cases.record_identity(session, access, report, data)
    return await _reread(session, current, case_id)


@router.post("/{case_id}/meeting")
async def plan_meeting(
    case_id: str,
    data: MeetingPlan,
    session: SessionDep,
    settings: SettingsDep,
    current: CurrentMemberDep,
) -> CaseRead:
    """Plan the personal meeting the whistleblower asked for and tell them."""
    access, report = await cases.open_case(session, current, case_id)
    await cases.plan_meeting(session, settings, access, report, data)
    return await _reread(session, current, case_id)


@router.post("/{case_id}/triage")
async def triage(
    case_id: str, data: Triage, session: SessionDep, current: CurrentMemberDep
) -> CaseRead:
    """Record the triage (ISO 37002): priority, completeness, retaliation risk, protection."""
    access, report = await cases.open_case(session, current, case_id)
    await cases.triage(session, access, report, data)
    return await _reread(session, current, case_id)


@router.post("/{case_id}/summary")
async def write_summary(
    case_id: str, data: SummaryRequest, session: SessionDep, current: CurrentMemberDep
) -> CaseRead:
    """Write the summary of the report that the register (§ 21) shows."""
    access, report = await cases.open_case(session, current, case_id)
    await cases.write_summary(session, access, report, data.summary)
    return await _reread(session, current, case_id)


@router.post("/{case_id}/legal-hold")
async def hold(
    case_id: str, data: LegalHoldRequest, session: SessionDep, current: CurrentMemberDep
) -> CaseRead:
    """Put the case on legal hold: it is not purged after five years until released."""
    access, report = await cases.open_case(session, current, case_id)
    await cases.hold(session, access, report, data.reason)
    return await _reread(session, current, case_id)


@router.delete("/{case_id}/legal-hold")
async def release_hold(case_id: str, session: SessionDep, current: CurrentMemberDep) -> CaseRead:
    """Release the legal hold."""
    access, report = await cases.open_case(session, current, case_id)
    await cases.release_hold(session, access, report)
    return await _reread(session, current, case_id)


@router.post("/{case_id}/close")
async def close(case_id: str, session: SessionDep, current: CurrentMemberDep) -> CaseRead:
    """Close an assessed case."""
    access, report = await cases.open_case(session, current, case_id)
    await cases.close(session, access, report)
    return await _reread(session, current, case_id)
