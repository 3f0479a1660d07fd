"""SQLAlchemy models; importing this package registers every table on Base.metadata."""

from app.models.audit import AuditEvent
from app.models.base import Base
from app.models.member import Invitation, LoginThrottle, Member, MemberSession, Membership
from app.models.organisation import Organisation
from app.models.outbox import OutboxMail
from app.models.report import (
    Attachment,
    AttachmentChunk,
    CaseNote,
    DeadlineReminder,
    Report,
    ReportMessage,
)

__all__ = [
    "Attachment",
    "AttachmentChunk",
    "AuditEvent",
    "Base",
    "CaseNote",
    "DeadlineReminder",
    "Invitation",
    "LoginThrottle",
    "Member",
    "MemberSession",
    "Membership",
    "Organisation",
    "OutboxMail",
    "Report",
    "ReportMessage",
]
