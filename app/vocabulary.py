"""The product's words: every value a state, outcome, channel or triage column holds, with the
label a person reads for it.

Stored values are the enums' values (plain strings in the database); labels are gettext message
ids, translated where they are shown. One home for each: pages, exports, statistics and the
schemas all take them from here.
"""

from enum import StrEnum

from app.i18n import N_


class CaseStatus(StrEnum):
    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"
    ASSESSED = "assessed"
    CLOSED = "closed"


# A case in one of these still runs against its deadlines.
OPEN_STATUSES = (CaseStatus.RECEIVED, CaseStatus.ACKNOWLEDGED)

STATUS_LABELS: dict[str, str] = {
    CaseStatus.RECEIVED: N_("Received"),
    CaseStatus.ACKNOWLEDGED: N_("Acknowledged"),
    CaseStatus.ASSESSED: N_("Assessed"),
    CaseStatus.CLOSED: N_("Closed"),
}


class Outcome(StrEnum):
    VALID = "valid"
    NOT_VALID = "not_valid"
    NOT_A_REPORT = "not_a_report"


OUTCOME_LABELS: dict[str, str] = {
    Outcome.VALID: N_("Valid"),
    Outcome.NOT_VALID: N_("Not valid"),
    Outcome.NOT_A_REPORT: N_("Not a report under the Act"),
}


class Channel(StrEnum):
    """How a report was received: the web form, or taken down by a designated person."""

    WEB = "web"
    TELEPHONE = "telephone"
    IN_PERSON = "in_person"
    POST = "post"
    ORAL = "oral"


class RecordedChannel(StrEnum):
    """The channels of a report a designated person takes down, in the order the form offers."""

    TELEPHONE = Channel.TELEPHONE.value
    IN_PERSON = Channel.IN_PERSON.value
    POST = Channel.POST.value
    ORAL = Channel.ORAL.value


RECORDED_CHANNELS = tuple(RecordedChannel)

CHANNEL_LABELS: dict[str, str] = {
    Channel.WEB: N_("Web form"),
    # Stored by early versions for a telephone report; still shown by its name.
    "phone": N_("Telephone"),
    Channel.TELEPHONE: N_("Telephone"),
    Channel.IN_PERSON: N_("In person"),
    Channel.POST: N_("Post"),
    Channel.ORAL: N_("Orally, another way"),
}


class WaiveReason(StrEnum):
    """The two statutory reasons not to acknowledge a report."""

    WHISTLEBLOWER_ASKED = "whistleblower_asked"
    WOULD_REVEAL_IDENTITY = "would_reveal_identity"


WAIVE_REASON_LABELS: dict[str, str] = {
    WaiveReason.WHISTLEBLOWER_ASKED: N_(
        "The whistleblower asked not to be sent an acknowledgement"
    ),
    WaiveReason.WOULD_REVEAL_IDENTITY: N_(
        "An acknowledgement would reveal the whistleblower's identity"
    ),
}


class MeasureKind(StrEnum):
    """Measures on a valid report: proposed by a designated person, taken by the organisation."""

    PROPOSED = "proposed"
    TAKEN = "taken"


MEASURE_KIND_LABELS: dict[str, str] = {
    MeasureKind.PROPOSED: N_("Measures proposed by the designated person"),
    MeasureKind.TAKEN: N_("Measures taken by the organisation"),
}

# Consent to an audio recording of a report taken down, as the record's form sends it.
CONSENT_LABELS: dict[str, str] = {
    "true": N_("Yes, the whistleblower consented to an audio recording"),
    "false": N_("No, the whistleblower did not consent: a written record only"),
    "": N_("Not asked (a letter, or the question did not arise)"),
}


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class Completeness(StrEnum):
    COMPLETE = "complete"
    NEEDS_MORE_INFORMATION = "needs_more_information"


class RetaliationRisk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


# ISO 37002 triage values; the three enums share "low" and "high".
TRIAGE_LABELS: dict[str, str] = {
    Priority.LOW: N_("Low"),
    Priority.NORMAL: N_("Normal"),
    RetaliationRisk.MEDIUM: N_("Medium"),
    Priority.HIGH: N_("High"),
    Completeness.COMPLETE: N_("Complete"),
    Completeness.NEEDS_MORE_INFORMATION: N_("Needs more information"),
    # Statistics: a case nobody has triaged yet.
    "not_triaged": N_("Not triaged yet"),
}

# The audit trail's actions in words; the case's timeline shows the case.* ones.
CASE_ACTION_LABELS: dict[str, str] = {
    "case.read": N_("Opened the case"),
    "case.acknowledge": N_("Acknowledged receipt"),
    "case.acknowledgement_waived": N_("Waived the acknowledgement"),
    "case.extend": N_("Extended the deadline"),
    "case.decision": N_("Recorded the outcome"),
    "case.measures": N_("Recorded the measures"),
    "case.message": N_("Wrote to the whistleblower"),
    "case.note": N_("Added an internal note"),
    "case.close": N_("Closed the case"),
    "case.file": N_("Downloaded a file"),
    "case.record": N_("Recorded a report received in another way"),
    "case.record_comments": N_("Stored the whistleblower's comments on the record"),
    "case.identity": N_("Recorded the whistleblower's identity"),
    "case.meeting": N_("Planned the personal meeting"),
    "case.triage": N_("Recorded the triage"),
    "case.summary": N_("Wrote the summary for the register"),
    "case.legal_hold": N_("Put the case on legal hold"),
    "case.legal_hold_released": N_("Released the legal hold"),
    "case.share": N_("Let a colleague read the case"),
}
AUDIT_ACTION_LABELS: dict[str, str] = {
    **CASE_ACTION_LABELS,
    "register.export": N_("Exported the register"),
    "organisation.export": N_("Exported all data"),
    "stats.read": N_("Viewed the statistics"),
    "member.invite": N_("Invited a designated person"),
    "member.grant": N_("Granted access to the reports"),
    "member.remove": N_("Removed a designated person"),
    "member.appointment": N_("Recorded an appointment"),
    "member.published_name": N_("Changed the name on the report form"),
    "member.recover": N_("Restored access with the recovery key"),
    "key.rotate": N_("Started changing the organisation key"),
    "key.rotated": N_("Finished changing the organisation key"),
}
# Events whose detail the timeline shows: the reason of access and values chosen from a list.
# Other details (a file's id, say) say nothing useful and are left to the audit page.
DETAIL_SHOWN = {"case.read", "case.decision", "case.acknowledgement_waived", "case.record"}
DETAIL_LABELS: dict[str, str] = {**OUTCOME_LABELS, **WAIVE_REASON_LABELS, **CHANNEL_LABELS}
