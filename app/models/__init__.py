"""SQLAlchemy models; importing this package registers every table on Base.metadata."""

from app.models.base import Base
from app.models.member import LoginThrottle, Member, MemberSession, Membership
from app.models.organisation import Organisation
from app.models.outbox import OutboxMail
from app.models.report import Attachment, AttachmentChunk, Report, ReportMessage

__all__ = [
    "Attachment",
    "AttachmentChunk",
    "Base",
    "LoginThrottle",
    "Member",
    "MemberSession",
    "Membership",
    "Organisation",
    "OutboxMail",
    "Report",
    "ReportMessage",
]
