"""The organisation's full export: every case with its files, the register and the audit trail.

For an organisation that leaves the service. The archive holds the reports decrypted, so it is
made only for a member holding the organisation key, with a reason that is audited, and it is
streamed: zipfile writes into a sink the response drains, and each file is decrypted chunk by
chunk, so memory stays bounded whatever the size of the files.
"""

import json
import re
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import i18n
from app.models import Attachment, AuditEvent, Member, PurgedReport, Report, ReportMessage
from app.models.base import utcnow
from app.schemas.case import CaseRead
from app.schemas.report import CATEGORIES, RELATIONSHIPS
from app.services import attachments, audit, cases, deadlines, register
from app.services.auth import CurrentMember
from app.templating import environment
from app.vocabulary import (
    CASE_ACTION_LABELS,
    CHANNEL_LABELS,
    DETAIL_LABELS,
    DETAIL_SHOWN,
    MEASURE_KIND_LABELS,
    OUTCOME_LABELS,
    STATUS_LABELS,
    TRIAGE_LABELS,
    WAIVE_REASON_LABELS,
)

ACTION = "organisation.export"
AUDIT_BATCH = 1000
TIMELINE_LIMIT = 100_000
MAX_NAME_LENGTH = 100
# Regular files, readable by all, when the archive is unpacked on Unix.
FILE_MODE = 0o644 << 16


@dataclass(frozen=True)
class Export:
    """An archive ready to stream: its file name and its bytes as they are made."""

    filename: str
    chunks: AsyncIterator[bytes]


class _Sink:
    """A write-only file for zipfile; without tell() or seek() it writes data descriptors."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes, /) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def drain(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


async def export_zip(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    current: CurrentMember,
    slug: str,
    reason: str | None,
    language: str,
) -> Export:
    """Everything the organisation holds as a ZIP, after auditing the export with its reason.

    Allowed to a member holding the organisation key, also when the organisation is blocked.
    """
    [access] = await cases.accessible_organisations(session, current, slug)
    reason = register.check_reason(reason)
    await audit.record(
        session,
        organisation_id=access.organisation.id,
        action=ACTION,
        member_id=current.member.id,
        reason=reason,
    )
    made_at = utcnow()
    today = deadlines.local_date(made_at)
    return Export(
        filename=f"pistalka-{access.organisation.slug}-{today:%Y-%m-%d}.zip",
        chunks=_archive(
            sessionmaker, access, current.member.email, i18n.pick_language(language), made_at
        ),
    )


def _entry(name: str, made_at: datetime, size: int = 0) -> zipfile.ZipInfo:
    local = made_at.astimezone(cases.PRAGUE)
    info = zipfile.ZipInfo(name, date_time=local.timetuple()[:6])
    info.external_attr = FILE_MODE
    # A known size lets zipfile choose zip64 itself for a file over 4 GiB.
    info.file_size = size
    return info


def _write(archive: zipfile.ZipFile, name: str, made_at: datetime, data: bytes) -> None:
    info = _entry(name, made_at)
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def safe_name(name: str) -> str:
    """A file name safe in any unpacking tool: letters, digits, dots, dashes, underscores."""
    cleaned = re.sub(r"[^\w.\-]+", "_", name).strip("._")
    return cleaned[:MAX_NAME_LENGTH] or "file"


def _render(template: str, language: str, **context: Any) -> str:
    saved = i18n.current_language()
    i18n.set_language(language)
    try:
        return environment.get_template(template).render(lang=language, **context)
    finally:
        i18n.set_language(saved)


async def _emails(session: AsyncSession, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    wanted = {member_id for member_id in ids if member_id is not None}
    if not wanted:
        return {}
    rows = await session.execute(select(Member.id, Member.email).where(Member.id.in_(wanted)))
    return dict(rows.all())


async def _archive(
    sessionmaker: async_sessionmaker[AsyncSession],
    access: cases.CaseAccess,
    made_by: str,
    language: str,
    made_at: datetime,
) -> AsyncIterator[bytes]:
    organisation_id = access.organisation.id
    sink = _Sink()
    counts = {"cases": 0, "files": 0, "events": 0}
    # The response outlives the request's session: the archive reads with a session of its own.
    async with sessionmaker() as session:
        with zipfile.ZipFile(sink, "w") as archive:
            numbered = (
                await session.execute(
                    select(Report.id, Report.reference_year, Report.reference_number)
                    .where(Report.organisation_id == organisation_id, cases.readable([access]))
                    .order_by(Report.reference_year, Report.reference_number)
                )
            ).all()
            for report_id, *_ in numbered:
                report = await session.get(Report, report_id)
                if report is None:  # purged while the archive was being made
                    continue
                async for piece in _case(
                    session, sessionmaker, archive, sink, access, report, language, made_at, counts
                ):
                    yield piece
                # One case at a time in the identity map, however many there are.
                session.expunge_all()

            rows = await register.register_rows(session, [access])
            withheld = set(
                await session.scalars(
                    select(Report.id).where(
                        Report.organisation_id == organisation_id, ~cases.readable([access])
                    )
                )
            )
            register_csv = register.to_csv(rows, language, len(withheld))
            _write(archive, "register.csv", made_at, register_csv.encode())
            session.expunge_all()
            yield sink.drain()

            references = {report_id: f"{year}-{number:04d}" for report_id, year, number in numbered}
            purged = await session.execute(
                select(
                    PurgedReport.id, PurgedReport.reference_year, PurgedReport.reference_number
                ).where(PurgedReport.organisation_id == organisation_id)
            )
            references.update({rid: f"{year}-{number:04d}" for rid, year, number in purged})
            async for piece in _audit_trail(
                session, archive, sink, access, references, withheld, made_at, counts
            ):
                yield piece
            verification = await audit.verify(session, organisation_id)

            readme = _render(
                "admin/export_readme.txt",
                language,
                organisation=access.organisation,
                made_at=made_at.astimezone(cases.PRAGUE).strftime("%d. %m. %Y %H:%M"),
                made_by=made_by,
                counts=counts,
                verification=verification,
                withheld=len(withheld),
            )
            _write(archive, "README.txt", made_at, readme.encode())
    yield sink.drain()


async def _case(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    archive: zipfile.ZipFile,
    sink: _Sink,
    access: cases.CaseAccess,
    report: Report,
    language: str,
    made_at: datetime,
    counts: dict[str, int],
) -> AsyncIterator[bytes]:
    """One case's folder: case.json, case.html and its files, decrypted."""
    folder = f"cases/{report.reference}"
    case = await cases.decrypt_case(session, access, report)
    events = await cases.timeline(session, access, report, limit=TIMELINE_LIMIT)
    written_by = await session.execute(
        select(ReportMessage.id, ReportMessage.member_id).where(
            ReportMessage.organisation_id == report.organisation_id,
            ReportMessage.report_id == report.id,
        )
    )
    authors: dict[uuid.UUID, uuid.UUID | None] = dict(written_by.all())
    emails = await _emails(
        session,
        [
            *authors.values(),
            *(note.member_id for note in case.notes),
            *(measure.member_id for measure in case.measures),
        ],
    )
    # The report's own files first, then each message's, numbered in that order.
    listed = [*case.attachments, *(f for message in case.messages for f in message.attachments)]
    paths = {f.id: f"files/{n}-{safe_name(f.name)}" for n, f in enumerate(listed, start=1)}

    document = _case_document(case, events, authors, emails, paths)
    data = json.dumps(document, indent=2, ensure_ascii=False).encode()
    _write(archive, f"{folder}/case.json", made_at, data)
    html = _render(
        "admin/export_case.html",
        language,
        organisation=access.organisation,
        case=case,
        events=events,
        authors={str(k): emails.get(v) for k, v in authors.items() if v is not None},
        emails=emails,
        paths=paths,
        made_at=made_at,
        statuses=STATUS_LABELS,
        outcomes=OUTCOME_LABELS,
        channels=CHANNEL_LABELS,
        waive_reasons=WAIVE_REASON_LABELS,
        categories=CATEGORIES,
        relationships=RELATIONSHIPS,
        case_actions=CASE_ACTION_LABELS,
        detail_shown=DETAIL_SHOWN,
        detail_labels=DETAIL_LABELS,
        triage_labels=TRIAGE_LABELS,
        measure_kinds=MEASURE_KIND_LABELS,
        prague=cases.PRAGUE,
    )
    _write(archive, f"{folder}/case.html", made_at, html.encode())
    counts["cases"] += 1
    yield sink.drain()

    stored = {
        str(attachment.id): attachment
        for attachment in await session.scalars(
            select(Attachment).where(
                Attachment.organisation_id == report.organisation_id,
                Attachment.report_id == report.id,
                Attachment.complete.is_(True),
            )
        )
    }
    key = cases.report_key(access, report)
    for listed_file in listed:
        attachment = stored[listed_file.id]
        info = _entry(f"{folder}/{paths[listed_file.id]}", made_at, attachment.size)
        # Stored, not deflated: mostly photos and PDFs, already compressed.
        with archive.open(info, "w") as target:
            async for chunk in attachments.stream_file(sessionmaker, attachment, key):
                target.write(chunk)
                yield sink.drain()
        counts["files"] += 1
    yield sink.drain()


def _case_document(
    case: CaseRead,
    events: list[cases.CaseEvent],
    authors: dict[uuid.UUID, uuid.UUID | None],
    emails: dict[uuid.UUID, str],
    paths: dict[str, str],
) -> dict[str, Any]:
    """The case as the case API gives it, with who wrote what, the timeline and file paths."""
    document = case.model_dump(mode="json")
    for message in document["messages"]:
        member_id = authors.get(uuid.UUID(message["id"]))
        message["member_id"] = str(member_id) if member_id else None
        message["member_email"] = emails.get(member_id) if member_id else None
    for note in document["notes"]:
        member_id = uuid.UUID(note["member_id"]) if note["member_id"] else None
        note["member_email"] = emails.get(member_id) if member_id else None
    files = [*document["attachments"], *(f for m in document["messages"] for f in m["attachments"])]
    for listed_file in files:
        listed_file["path"] = paths[listed_file["id"]]
    document["timeline"] = [
        {
            "created_at": event.created_at.isoformat(),
            "email": event.email,
            "action": event.action,
            "detail": event.detail,
        }
        for event in events
    ]
    return document


async def _audit_trail(
    session: AsyncSession,
    archive: zipfile.ZipFile,
    sink: _Sink,
    access: cases.CaseAccess,
    references: dict[uuid.UUID, str],
    withheld: set[uuid.UUID],
    made_at: datetime,
    counts: dict[str, int],
) -> AsyncIterator[bytes]:
    """audit.json: every event in order with its hashes, and the reasons of access opened.

    The hashes are keyed under the server key, so the chain is checked by `pistalka audit
    verify`; a copy of the newest hash kept elsewhere shows a later rewrite of the events before.
    """
    organisation_id = access.organisation.id
    private_keys = cases.private_keys(access)
    info = _entry("audit.json", made_at)
    info.compress_type = zipfile.ZIP_DEFLATED
    after = 0
    with archive.open(info, "w") as target:
        target.write(b"[")
        while True:
            batch = list(
                await session.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.organisation_id == organisation_id, AuditEvent.seq > after)
                    .order_by(AuditEvent.seq)
                    .limit(AUDIT_BATCH)
                )
            )
            emails = await _emails(session, (event.member_id for event in batch))
            reasons = audit.open_reasons(batch, private_keys)
            for event in batch:
                entry = {
                    "seq": event.seq,
                    "created_at": event.created_at.isoformat(),
                    "member_id": str(event.member_id) if event.member_id else None,
                    "member_email": emails.get(event.member_id) if event.member_id else None,
                    # A case withheld from the exporter is not named, not even by its id.
                    "report_id": str(event.report_id)
                    if event.report_id and event.report_id not in withheld
                    else None,
                    "report_reference": references.get(event.report_id)
                    if event.report_id
                    else None,
                    "action": event.action,
                    "detail": event.detail,
                    "reason": reasons.get(event.id),
                    "prev_hash": event.prev_hash.hex(),
                    "hash": event.hash.hex(),
                }
                separator = b",\n" if counts["events"] else b"\n"
                target.write(separator + json.dumps(entry, ensure_ascii=False).encode())
                counts["events"] += 1
            session.expunge_all()
            yield sink.drain()
            if len(batch) < AUDIT_BATCH:
                break
            after = batch[-1].seq
        target.write(b"\n]\n")
