"""SQLAlchemy models; importing this package registers every table on Base.metadata."""

from app.models.audit import AuditEvent
from app.models.base import Base
from app.models.billing import Invoice, InvoiceCounter, Order, Plan, Subscription
from app.models.member import Invitation, LoginThrottle, Member, MemberSession, Membership
from app.models.operator import (
    IncidentNotice,
    Operator,
    OperatorEvent,
    OperatorSession,
    SecurityIncident,
    TermsVersion,
)
from app.models.organisation import KeyRotation, Organisation
from app.models.outbox import OutboxMail
from app.models.report import (
    Attachment,
    AttachmentChunk,
    CaseMeasure,
    CaseNote,
    DeadlineReminder,
    PurgedReport,
    Report,
    ReportMessage,
    ReportRecipient,
)

__all__ = [
    "Attachment",
    "AttachmentChunk",
    "AuditEvent",
    "Base",
    "CaseMeasure",
    "CaseNote",
    "DeadlineReminder",
    "IncidentNotice",
    "Invoice",
    "InvoiceCounter",
    "Invitation",
    "KeyRotation",
    "LoginThrottle",
    "Member",
    "MemberSession",
    "Membership",
    "Operator",
    "Order",
    "OperatorEvent",
    "OperatorSession",
    "Organisation",
    "Plan",
    "OutboxMail",
    "PurgedReport",
    "Report",
    "ReportMessage",
    "ReportRecipient",
    "SecurityIncident",
    "Subscription",
    "TermsVersion",
]
