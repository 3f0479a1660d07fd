"""The service operator: accounts with required TOTP, the registrations list and its actions.

An operator has no key pair and is never given a grant, so no code path can decrypt a report,
message, name or file for an operator. What the operator sees of an organisation are counts.
"""

import asyncio
import base64
import hashlib
import re
import secrets
import unicodedata
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, cast

import argon2
import pyotp
from babel import Locale
from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import crypto
from app.config import Settings
from app.errors import AppError, Conflict, InvalidInput, NotFound, Unauthorized
from app.i18n import N_
from app.models import (
    IncidentNotice,
    Membership,
    Operator,
    OperatorEvent,
    OperatorSession,
    Order,
    Organisation,
    Plan,
    Report,
    SecurityIncident,
    TermsVersion,
)
from app.models.base import utcnow
from app.models.operator import ServiceContact, SubProcessor, SubProcessorChange
from app.services import audit, auth, deadlines, keys, mail, passwords
from app.services.recipients import organisation_recipients
from app.templating import render_mail

TERMS_NOTICE_DAYS = 15
# The processing agreements: a new sub-processor is announced as long ahead as new terms are,
# and a security incident is notified within 48 hours of its detection.
SUB_PROCESSOR_NOTICE_DAYS = TERMS_NOTICE_DAYS
INCIDENT_NOTICE_WINDOW = timedelta(hours=48)
SESSION_HOURS = 8
INVALID_LOGIN = N_("Wrong e-mail, password or authenticator code.")
_DUMMY_HASH = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("-")


@dataclass(frozen=True)
class CurrentOperator:
    operator: Operator
    session: OperatorSession
    csrf_token: str = field(repr=False)


@dataclass(frozen=True)
class NewOperator:
    operator: Operator
    totp_secret: str = field(repr=False)
    totp_uri: str = field(repr=False)


def _hasher(settings: Settings) -> argon2.PasswordHasher:
    return argon2.PasswordHasher(
        time_cost=settings.argon2_iterations,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_lanes,
    )


def _totp_key(settings: Settings) -> bytes:
    return keys.server_subkey(settings, "operator-totp")


async def create_operator(
    session: AsyncSession, settings: Settings, email: str, password: str
) -> NewOperator:
    """A new operator account with its TOTP secret, to be put into an authenticator app."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise InvalidInput(N_("Enter a valid e-mail address."), field="email")
    if not 12 <= len(password) <= 256:
        raise InvalidInput(N_("The password must have 12 to 256 characters."), field="password")
    await passwords.check_password(password, email)
    if await session.scalar(select(Operator.id).where(Operator.email == email)):
        raise Conflict(N_("An account with this e-mail already exists."), code="email_taken")
    operator_id = uuid.uuid4()
    secret = pyotp.random_base32()
    password_hash = await keys.in_argon2_pool(_hasher(settings).hash, password)
    operator = Operator(
        id=operator_id,
        email=email,
        password_hash=password_hash,
        totp_secret=crypto.seal(_totp_key(settings), secret.encode(), operator_id.bytes),
    )
    session.add(operator)
    session.add(OperatorEvent(operator_id=operator_id, action="operator.created"))
    await session.flush()
    uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name="Píšťalka operator")
    return NewOperator(operator=operator, totp_secret=secret, totp_uri=uri)


async def _password_ok(settings: Settings, stored: str, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher(settings).verify(stored, password)
        except argon2.exceptions.VerificationError:
            return False
        except argon2.exceptions.InvalidHashError:
            return False

    return await keys.in_argon2_pool(verify)


def _totp_counter(settings: Settings, operator: Operator, code: str, now: datetime) -> int | None:
    secret = crypto.open_sealed(_totp_key(settings), operator.totp_secret, operator.id.bytes)
    return auth.totp_counter(secret.decode("ascii"), code, now)


async def _take_totp_counter(session: AsyncSession, operator_id: uuid.UUID, counter: int) -> bool:
    """Accept a code's time step once, even when two logins present it at the same moment."""
    result = await session.execute(
        update(Operator)
        .where(
            Operator.id == operator_id,
            or_(Operator.totp_last_counter.is_(None), Operator.totp_last_counter < counter),
        )
        .values(totp_last_counter=counter)
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], result).rowcount == 1


async def login(
    session: AsyncSession, settings: Settings, email: str, password: str, code: str
) -> str:
    """Check password and TOTP (both always required); the new session's cookie value."""
    email = email.strip().lower()
    now = utcnow()
    throttle_key = keys.keyed_hash(settings, "operator-login-throttle", email.encode())
    throttle = await auth.open_throttle(session, throttle_key, now)
    locked_for = auth.lock_remaining(throttle, now)
    operator = await session.scalar(select(Operator).where(Operator.email == email))
    await auth.count_attempt(session, settings, throttle, now)
    try:
        # An unknown e-mail costs the same hashing, so timing does not tell accounts apart.
        stored = operator.password_hash if operator is not None else _DUMMY_HASH
        password_ok = await _password_ok(settings, stored, password)
        if operator is None or not password_ok:
            raise Unauthorized(INVALID_LOGIN, code="invalid_credentials")
        counter = _totp_counter(settings, operator, code, now)
        if counter is None or not await _take_totp_counter(session, operator.id, counter):
            raise Unauthorized(INVALID_LOGIN, code="invalid_credentials")
    except AppError:
        auth.lock_answer(locked_for)
        await asyncio.sleep(auth.slowdown_seconds(settings, throttle.failures))
        raise
    await auth.forget_failures(session, throttle_key)
    secret = secrets.token_bytes(32)
    session.add(
        OperatorSession(
            token_hash=hashlib.sha256(secret).digest(),
            operator_id=operator.id,
            created_at=now,
            expires_at=now + timedelta(hours=SESSION_HOURS),
        )
    )
    session.add(OperatorEvent(operator_id=operator.id, action="operator.login"))
    await session.flush()
    return base64.urlsafe_b64encode(secret).decode().rstrip("=")


async def resolve_session(
    session: AsyncSession, settings: Settings, cookie_value: str | None
) -> CurrentOperator | None:
    secret = auth._decode_cookie(cookie_value) if cookie_value else None
    if secret is None:
        return None
    token_hash = hashlib.sha256(secret).digest()
    row = await session.scalar(
        select(OperatorSession).where(OperatorSession.token_hash == token_hash)
    )
    if row is None or not crypto.verify_equal(row.token_hash, token_hash):
        return None
    if row.expires_at <= utcnow():
        await session.delete(row)
        return None
    operator = await session.get(Operator, row.operator_id)
    if operator is None:
        return None
    csrf = keys.keyed_hash(settings, "operator-csrf", token_hash).hex()
    return CurrentOperator(operator=operator, session=row, csrf_token=csrf)


async def logout(session: AsyncSession, current: CurrentOperator) -> None:
    await session.delete(current.session)


@dataclass(frozen=True)
class OrganisationRow:
    """What the operator sees of a registration: identification, state and counts."""

    id: uuid.UUID
    name: str
    ico: str
    slug: str
    email: str
    created_at: datetime
    email_verified: bool
    identity_verified: bool
    blocked: bool
    blocked_reason: str
    cancelled: bool
    terms_version: str | None
    designated_persons: int
    cases: int


async def list_organisations(session: AsyncSession) -> list[OrganisationRow]:
    members = (
        select(Membership.organisation_id, func.count().label("n"))
        .group_by(Membership.organisation_id)
        .subquery()
    )
    reports = (
        select(Report.organisation_id, func.count().label("n"))
        .group_by(Report.organisation_id)
        .subquery()
    )
    rows = await session.execute(
        select(Organisation, members.c.n, reports.c.n)
        .outerjoin(members, members.c.organisation_id == Organisation.id)
        .outerjoin(reports, reports.c.organisation_id == Organisation.id)
        .order_by(Organisation.created_at.desc())
    )
    return [
        OrganisationRow(
            id=organisation.id,
            name=organisation.name,
            ico=organisation.ico,
            slug=organisation.slug,
            email=organisation.email,
            created_at=organisation.created_at,
            email_verified=organisation.email_verified_at is not None,
            identity_verified=organisation.identity_verified_at is not None,
            blocked=organisation.blocked_at is not None,
            blocked_reason=organisation.blocked_reason,
            cancelled=organisation.cancelled_at is not None,
            terms_version=organisation.terms_version,
            designated_persons=member_count or 0,
            cases=case_count or 0,
        )
        for organisation, member_count, case_count in rows.all()
    ]


async def _organisation(session: AsyncSession, organisation_id: str) -> Organisation:
    try:
        key = uuid.UUID(organisation_id)
    except ValueError:
        raise NotFound(N_("No such organisation.")) from None
    organisation = await session.get(Organisation, key, with_for_update=True)
    if organisation is None:
        raise NotFound(N_("No such organisation."))
    return organisation


async def _log(
    session: AsyncSession,
    current: CurrentOperator,
    organisation: Organisation | None,
    action: str,
    detail: str = "",
) -> None:
    """The operator's log, and the organisation's own audit trail, so it sees what was done."""
    organisation_id = organisation.id if organisation is not None else None
    session.add(
        OperatorEvent(
            operator_id=current.operator.id,
            organisation_id=organisation_id,
            action=action,
            detail=detail[:500],
        )
    )
    if organisation_id is not None:
        await audit.record(session, organisation_id=organisation_id, action=action, detail=detail)


async def verify_identity(
    session: AsyncSession, current: CurrentOperator, organisation_id: str
) -> Organisation:
    organisation = await _organisation(session, organisation_id)
    if organisation.identity_verified_at is None:
        organisation.identity_verified_at = utcnow()
        await _log(session, current, organisation, "operator.identity_verified")
    await session.flush()
    return organisation


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not 3 <= len(reason) <= 500:
        raise InvalidInput(N_("Give the reason (3 to 500 characters)."), field="reason")
    return reason


async def block(
    session: AsyncSession, current: CurrentOperator, organisation_id: str, reason: str
) -> Organisation:
    """Block a registration: its form stops accepting reports; its people can still export."""
    reason = _reason(reason)
    organisation = await _organisation(session, organisation_id)
    if organisation.blocked_at is not None:
        raise Conflict(N_("The registration is already blocked."), code="already_blocked")
    organisation.blocked_at = utcnow()
    organisation.blocked_reason = reason
    await _log(session, current, organisation, "operator.block", reason)
    await session.flush()
    return organisation


async def unblock(
    session: AsyncSession, current: CurrentOperator, organisation_id: str, reason: str
) -> Organisation:
    reason = _reason(reason)
    organisation = await _organisation(session, organisation_id)
    if organisation.blocked_at is None:
        raise Conflict(N_("The registration is not blocked."), code="not_blocked")
    organisation.blocked_at = None
    organisation.blocked_reason = ""
    await _log(session, current, organisation, "operator.unblock", reason)
    await session.flush()
    return organisation


async def _announce(
    session: AsyncSession, settings: Settings, kind: str, subject: str, text: str
) -> None:
    """Mail a notice to every organisation using the service: an unverified address may not be
    theirs, and a cancelled registration ends before the notice matters (an erased one has no
    row left)."""
    organisations = await session.scalars(
        select(Organisation)
        .where(Organisation.email_verified_at.is_not(None), Organisation.cancelled_at.is_(None))
        .order_by(Organisation.created_at)
    )
    for organisation in organisations:
        await mail.enqueue(
            session, settings, kind=kind, to=organisation.email, subject=subject, text=text
        )


async def upcoming_terms(session: AsyncSession, today: date) -> TermsVersion | None:
    result: TermsVersion | None = await session.scalar(
        select(TermsVersion)
        .where(TermsVersion.effective_on > today)
        .order_by(TermsVersion.effective_on.desc())
        .limit(1)
    )
    return result


async def newest_terms(session: AsyncSession) -> TermsVersion | None:
    """The newest announced version, in effect or not: organisations that have not accepted it
    are asked to, before and after the day it takes effect."""
    result: TermsVersion | None = await session.scalar(
        select(TermsVersion)
        .order_by(TermsVersion.effective_on.desc(), TermsVersion.announced_at.desc())
        .limit(1)
    )
    return result


async def announce_terms(
    session: AsyncSession,
    settings: Settings,
    current: CurrentOperator,
    *,
    version: str,
    summary: str,
    url: str,
    effective_on: date,
) -> TermsVersion:
    """Record a new version of the terms and tell the organisations, at least 15 days ahead."""
    version, summary, url = version.strip(), summary.strip(), url.strip()
    if not 1 <= len(version) <= 20:
        raise InvalidInput(N_("Name the version (at most 20 characters)."), field="version")
    if not 3 <= len(summary) <= 5000:
        raise InvalidInput(N_("Summarise the changes (3 to 5,000 characters)."), field="summary")
    if url and not url.startswith("https://") or len(url) > 500:
        raise InvalidInput(N_("The address of the terms must start with https://."), field="url")
    today = deadlines.local_date(utcnow())
    if effective_on < today + timedelta(days=TERMS_NOTICE_DAYS):
        raise InvalidInput(
            N_("New terms can take effect at the earliest 15 days after they are announced."),
            field="effective_on",
        )
    if await session.scalar(select(TermsVersion.id).where(TermsVersion.version == version)):
        raise Conflict(N_("This version was already announced."), code="version_taken")
    terms = TermsVersion(version=version, summary=summary, url=url, effective_on=effective_on)
    session.add(terms)
    subject, text = render_mail(
        "terms_announced",
        version=version,
        summary=summary,
        url=url,
        effective_on=effective_on.strftime("%d. %m. %Y"),
    )
    await _announce(session, settings, "terms_announced", subject, text)
    await _log(session, current, None, "operator.terms_announced", version)
    await session.flush()
    return terms


async def accept_terms(
    session: AsyncSession, organisation: Organisation, terms: TermsVersion, member_id: uuid.UUID
) -> None:
    """A designated person accepts a version of the terms for the organisation."""
    organisation.terms_version = terms.version
    organisation.terms_accepted_at = utcnow()
    await audit.record(
        session,
        organisation_id=organisation.id,
        member_id=member_id,
        action="organisation.terms_accepted",
        detail=terms.version,
    )
    await session.flush()


async def record_incident(
    session: AsyncSession,
    settings: Settings,
    current: CurrentOperator,
    *,
    title: str,
    description: str,
    measures: str,
    detected_at: datetime,
    organisation_ids: list[str],
    notify: bool = True,
) -> SecurityIncident:
    """Record a security incident and its affected organisations, notifying them now or later."""
    title, description, measures = title.strip(), description.strip(), measures.strip()
    if not 3 <= len(title) <= 200:
        raise InvalidInput(N_("Give the incident a title (3 to 200 characters)."), field="title")
    if not 3 <= len(description) <= 20000:
        raise InvalidInput(N_("Describe the incident."), field="description")
    if len(measures) > 20000:
        raise InvalidInput(N_("The measures are too long."), field="measures")
    if detected_at > utcnow():
        raise InvalidInput(N_("An incident cannot be detected in the future."), field="detected_on")
    if not organisation_ids:
        raise InvalidInput(N_("Choose the affected organisations."), field="organisations")
    affected = [await _organisation(session, value) for value in dict.fromkeys(organisation_ids)]
    incident = SecurityIncident(
        title=title,
        description=description,
        measures=measures,
        detected_at=detected_at,
        operator_id=current.operator.id,
    )
    session.add(incident)
    await session.flush()
    for organisation in affected:
        session.add(IncidentNotice(incident_id=incident.id, organisation_id=organisation.id))
        await _log(session, current, organisation, "operator.incident", title)
    await session.flush()
    if notify:
        await notify_incident(session, settings, current, str(incident.id))
    return incident


async def notify_incident(
    session: AsyncSession, settings: Settings, current: CurrentOperator, incident_id: str
) -> int:
    """E-mail each affected organisation not yet notified of an incident; how many were."""
    try:
        key = uuid.UUID(incident_id)
    except ValueError:
        raise NotFound(N_("No such incident.")) from None
    incident = await session.get(SecurityIncident, key, with_for_update=True)
    if incident is None:
        raise NotFound(N_("No such incident."))
    waiting = list(
        await session.scalars(
            select(IncidentNotice)
            .where(IncidentNotice.incident_id == key, IncidentNotice.notified_at.is_(None))
            .with_for_update()
        )
    )
    if not waiting:
        raise Conflict(N_("Every affected organisation was already notified."), code="notified")
    subject, text = render_mail(
        "security_incident",
        title=incident.title,
        description=incident.description,
        measures=incident.measures,
        detected_at=deadlines.local_date(incident.detected_at).strftime("%d. %m. %Y"),
    )
    now = utcnow()
    for notice in waiting:
        organisation = await _organisation(session, str(notice.organisation_id))
        for email in await organisation_recipients(session, organisation):
            await mail.enqueue(
                session, settings, kind="security_incident", to=email, subject=subject, text=text
            )
        notice.notified_at = now
        await _log(session, current, organisation, "operator.incident_notice", incident.title)
    await session.flush()
    return len(waiting)


@dataclass(frozen=True)
class IncidentRow:
    incident: SecurityIncident
    affected: int
    notified: int
    notify_by: datetime

    @property
    def waiting(self) -> int:
        return self.affected - self.notified

    def overdue(self, now: datetime) -> bool:
        """Detected more than 48 hours ago, and an affected organisation still not notified."""
        return self.waiting > 0 and now > self.notify_by


async def incidents(session: AsyncSession) -> list[IncidentRow]:
    """Every recorded incident, newest first, with the 48-hour notification window."""
    rows = await session.execute(
        select(
            SecurityIncident,
            func.count(IncidentNotice.id),
            func.count(IncidentNotice.notified_at),
        )
        .outerjoin(IncidentNotice, IncidentNotice.incident_id == SecurityIncident.id)
        .group_by(SecurityIncident.id)
        .order_by(SecurityIncident.detected_at.desc(), SecurityIncident.recorded_at.desc())
    )
    return [
        IncidentRow(incident, affected, notified, incident.detected_at + INCIDENT_NOTICE_WINDOW)
        for incident, affected, notified in rows.all()
    ]


async def events(session: AsyncSession, limit: int = 200) -> list[OperatorEvent]:
    return list(
        await session.scalars(
            select(OperatorEvent).order_by(OperatorEvent.created_at.desc()).limit(limit)
        )
    )


@dataclass(frozen=True)
class PlanData:
    code: str
    name_cs: str
    name_en: str
    description_cs: str
    description_en: str
    price_year: int
    price_month: int
    vat_rate: int
    max_designated_persons: int
    max_embed_origins: int
    active: bool
    sort_order: int


async def save_plan(session: AsyncSession, current: CurrentOperator, data: PlanData) -> Plan:
    """Add a plan to the price list or change one; plans are never deleted, only withdrawn."""
    code = data.code.strip().lower()
    if not code or len(code) > 40 or not code.replace("-", "").isalnum():
        raise InvalidInput(N_("The code is letters, digits and dashes."), field="code")
    if not all(1 <= len(name.strip()) <= 100 for name in (data.name_cs, data.name_en)):
        raise InvalidInput(N_("Name the plan in Czech and English."), field="name_cs")
    numbers = (data.price_year, data.price_month, data.max_designated_persons)
    if min(numbers) < 0 or max(numbers) > 10**9 or not 0 <= data.vat_rate <= 100:
        raise InvalidInput(N_("Prices and limits must be whole non-negative numbers."))
    if data.max_designated_persons < 1 or data.max_embed_origins < 0:
        raise InvalidInput(N_("A plan allows at least one designated person."))
    plan = await session.scalar(select(Plan).where(Plan.code == code))
    if plan is None:
        plan = Plan(code=code)
        session.add(plan)
    if code == "free" and (data.price_year or data.price_month or not data.active):
        raise InvalidInput(N_("The free plan stays free and offered."), field="code")
    for name, value in asdict(data).items():
        if name != "code":
            setattr(plan, name, value.strip() if isinstance(value, str) else value)
    await _log(session, current, None, "operator.plan_saved", code)
    await session.flush()
    return plan


async def waiting_orders(session: AsyncSession) -> list[tuple[Order, Organisation, Plan]]:
    """Orders by transfer that wait for a proforma or for their payment."""
    rows = await session.execute(
        select(Order, Organisation, Plan)
        .join(Organisation, Organisation.id == Order.organisation_id)
        .join(Plan, Plan.id == Order.plan_id)
        .where(Order.method == "transfer", Order.status.in_(("requested", "pending")))
        .order_by(Order.created_at)
    )
    return [(order, organisation, plan) for order, organisation, plan in rows.all()]


async def log_billing(
    session: AsyncSession,
    current: CurrentOperator,
    organisation_id: uuid.UUID,
    what: str,
    detail: str,
) -> None:
    """The sales department's steps on an order, in the operator's log."""
    session.add(
        OperatorEvent(
            operator_id=current.operator.id,
            organisation_id=organisation_id,
            action=f"operator.{what}",
            detail=detail,
        )
    )
    await session.flush()


def _line(value: str, field: str, longest: int, message: str, *, required: bool = True) -> str:
    """One line of the operator's text: trimmed, bounded, no control or formatting characters."""
    value = value.strip()
    if (required and not value) or len(value) > longest:
        raise InvalidInput(message, field=field)
    if any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in value):
        raise InvalidInput(N_("Remove the control characters."), field=field)
    return value


def country_name(code: str, language: str) -> str:
    """The country of an ISO 3166-1 code in the language of the page."""
    return str(Locale.parse(language).territories.get(code, code))


def _country(value: str) -> str:
    code = value.strip().upper()
    if not (len(code) == 2 and code.isascii() and code.isalpha()) or code not in COUNTRIES:
        raise InvalidInput(
            N_("Give the country as a two-letter code (CZ, DE, IE…)."), field="country"
        )
    return code


COUNTRIES = frozenset(str(code) for code in Locale("en").territories if len(str(code)) == 2)


@dataclass(frozen=True)
class SubProcessorData:
    name: str
    purpose_cs: str
    purpose_en: str
    country: str

    def cleaned(self) -> "SubProcessorData":
        purpose = N_("Say what it does, in Czech and English (at most 500 characters).")
        name = N_("Name the sub-processor (at most 200 characters).")
        return SubProcessorData(
            name=_line(self.name, "name", 200, name),
            purpose_cs=_line(self.purpose_cs, "purpose_cs", 500, purpose),
            purpose_en=_line(self.purpose_en, "purpose_en", 500, purpose),
            country=_country(self.country),
        )


def _record_change(processor: SubProcessor, change: str, effective_on: date) -> SubProcessorChange:
    return SubProcessorChange(
        sub_processor_id=processor.id,
        change=change,
        effective_on=effective_on,
        name=processor.name,
        purpose_cs=processor.purpose_cs,
        purpose_en=processor.purpose_en,
        country=processor.country,
    )


async def add_sub_processor(
    session: AsyncSession,
    settings: Settings,
    current: CurrentOperator,
    data: SubProcessorData,
    effective_on: date,
) -> SubProcessor:
    """Add a sub-processor from a day at least 15 days ahead, and tell every organisation now."""
    data = data.cleaned()
    today = deadlines.local_date(utcnow())
    if effective_on < today + timedelta(days=SUB_PROCESSOR_NOTICE_DAYS):
        raise InvalidInput(
            N_(
                "A new sub-processor can take effect at the earliest 15 days after it is announced."
            ),
            field="effective_on",
        )
    processor = SubProcessor(**asdict(data), effective_on=effective_on)
    session.add(processor)
    await session.flush()
    session.add(_record_change(processor, "added", effective_on))
    subject, text = render_mail(
        "sub_processor_announced",
        sub_processor=data.name,
        purpose_cs=data.purpose_cs,
        purpose_en=data.purpose_en,
        country_cs=country_name(data.country, "cs"),
        country_en=country_name(data.country, "en"),
        effective_on=effective_on.strftime("%d. %m. %Y"),
        link=f"{settings.public_url.rstrip('/')}/sub-processors",
    )
    await _announce(session, settings, "sub_processor_announced", subject, text)
    await _log(session, current, None, "operator.sub_processor_added", data.name)
    await session.flush()
    return processor


async def _sub_processor(session: AsyncSession, sub_processor_id: str) -> SubProcessor:
    try:
        key = uuid.UUID(sub_processor_id)
    except ValueError:
        raise NotFound(N_("No such sub-processor.")) from None
    processor = await session.get(SubProcessor, key, with_for_update=True)
    if processor is None or processor.removed_on is not None:
        raise NotFound(N_("No such sub-processor."))
    return processor


async def change_sub_processor(
    session: AsyncSession, current: CurrentOperator, sub_processor_id: str, data: SubProcessorData
) -> SubProcessor:
    """Correct a listed sub-processor's name, purpose or country, as of today."""
    data = data.cleaned()
    processor = await _sub_processor(session, sub_processor_id)
    if all(getattr(processor, name) == value for name, value in asdict(data).items()):
        raise Conflict(N_("Nothing changed."), code="unchanged")
    for name, value in asdict(data).items():
        setattr(processor, name, value)
    session.add(_record_change(processor, "changed", deadlines.local_date(utcnow())))
    await _log(session, current, None, "operator.sub_processor_changed", data.name)
    await session.flush()
    return processor


async def remove_sub_processor(
    session: AsyncSession, current: CurrentOperator, sub_processor_id: str
) -> SubProcessor:
    """Stop using a sub-processor from today; it stays in the history."""
    processor = await _sub_processor(session, sub_processor_id)
    processor.removed_on = deadlines.local_date(utcnow())
    session.add(_record_change(processor, "removed", processor.removed_on))
    await _log(session, current, None, "operator.sub_processor_removed", processor.name)
    await session.flush()
    return processor


async def sub_processors(session: AsyncSession) -> list[SubProcessor]:
    """Every sub-processor not removed, in effect or announced, by the day it took effect."""
    return list(
        await session.scalars(
            select(SubProcessor)
            .where(SubProcessor.removed_on.is_(None))
            .order_by(SubProcessor.effective_on, SubProcessor.name)
        )
    )


async def sub_processor_changes(session: AsyncSession) -> list[SubProcessorChange]:
    """The history of the list, newest first."""
    return list(
        await session.scalars(
            select(SubProcessorChange).order_by(
                SubProcessorChange.recorded_at.desc(), SubProcessorChange.effective_on.desc()
            )
        )
    )


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"\+?[0-9][0-9 ]{2,29}")


async def service_contact(session: AsyncSession) -> ServiceContact | None:
    """The support contact and status line, if the operator has set them."""
    return await session.get(ServiceContact, 1)


async def save_service_contact(
    session: AsyncSession,
    current: CurrentOperator,
    *,
    support_email: str,
    support_phone: str,
    status_cs: str,
    status_en: str,
) -> ServiceContact:
    """Set the support contact and the status line of every page and organisation's mail."""
    wrong_email = N_("Enter the support e-mail address.")
    support_email = _line(support_email, "support_email", 254, wrong_email, required=False)
    if support_email and not _EMAIL.fullmatch(support_email):
        raise InvalidInput(wrong_email, field="support_email")
    wrong_phone = N_("Enter the support phone number as digits, e.g. +420 123 456 789.")
    support_phone = _line(support_phone, "support_phone", 40, wrong_phone, required=False)
    if support_phone and not _PHONE.fullmatch(support_phone):
        raise InvalidInput(wrong_phone, field="support_phone")
    status = N_("Keep the status line to one line of at most 200 characters.")
    values = {
        "support_email": support_email,
        "support_phone": support_phone,
        "status_cs": _line(status_cs, "status_cs", 200, status, required=False),
        "status_en": _line(status_en, "status_en", 200, status, required=False),
    }
    contact = await session.get(ServiceContact, 1, with_for_update=True)
    if contact is None:
        contact = ServiceContact(id=1)
        session.add(contact)
    for name, value in values.items():
        setattr(contact, name, value)
    contact.updated_at = utcnow()
    await _log(session, current, None, "operator.service_contact", values["status_cs"])
    await session.flush()
    return contact
