"""Designated-person login, sessions, the failed-login throttle and TOTP."""

import asyncio
import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import pyotp
from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from app import crypto
from app.config import Settings
from app.errors import AppError, Conflict, RateLimited, Unauthorized
from app.i18n import N_
from app.models import LoginThrottle, Member, MemberSession, Membership, Organisation
from app.models.base import utcnow
from app.services import keys

SLOWDOWN_AFTER = 3
TOTP_ISSUER = "Píšťalka"
INVALID_CREDENTIALS = N_("Wrong e-mail or password.")
LOCKED = N_("Too many failed attempts. Try again later.")
# Spent on unknown e-mails so they take as long as known ones (a fixed salt is fine: the
# result is thrown away).
_DUMMY_SALT = bytes(16)


@dataclass(frozen=True)
class LoggedIn:
    member: Member
    session: MemberSession
    cookie_value: str = field(repr=False)
    key_fingerprint: str


@dataclass(frozen=True)
class CurrentMember:
    """The member behind a live session cookie, with the private key the cookie unlocks."""

    member: Member
    session: MemberSession
    private_key: bytes = field(repr=False)
    csrf_token: str = field(repr=False)

    @property
    def key_fingerprint(self) -> str:
        """The fingerprint of the key this person's password unlocks, not of the stored copy of
        the public key: compared with what a colleague is offered to confirm, it shows a public
        key swapped in the database."""
        return crypto.fingerprint(crypto.public_key_of(self.private_key))


def _token_hash(secret: bytes) -> bytes:
    return hashlib.sha256(secret).digest()


def _session_key(secret: bytes) -> bytes:
    return crypto.derive_key(secret, "session")


def _session_aad(session_id: uuid.UUID) -> bytes:
    return b"session|" + session_id.bytes


def _totp_key(settings: Settings) -> bytes:
    return keys.server_subkey(settings, "totp")


def slowdown_seconds(settings: Settings, failures: int) -> float:
    """How long a login answer waits after `failures` failed attempts: doubling, capped."""
    if failures < SLOWDOWN_AFTER:
        return 0.0
    delay: float = settings.login_slowdown_seconds * 2.0 ** (failures - SLOWDOWN_AFTER)
    return min(delay, 8.0)


def _throttle_key(settings: Settings, email: str) -> bytes:
    return keys.keyed_hash(settings, "login-throttle", email.encode())


async def login(
    session: AsyncSession, settings: Settings, email: str, password: str, totp: str | None
) -> LoggedIn:
    """Check the credentials and open a session; the same answer whether the e-mail exists.

    While the account is locked only the password with a valid TOTP code gets in (see
    `open_throttle`); anything else gets the lock's answer.
    """
    email = email.strip().lower()
    now = utcnow()
    throttle_key = _throttle_key(settings, email)
    throttle = await open_throttle(session, throttle_key, now)
    locked_for = lock_remaining(throttle, now)
    member = await session.scalar(select(Member).where(Member.email == email))
    await count_attempt(session, settings, throttle, now)
    try:
        private_key = await _check_password(settings, member, password)
        assert member is not None  # noqa: S101 - _check_password raised otherwise
        if locked_for and member.totp_enabled_at is None:
            raise Unauthorized(INVALID_CREDENTIALS)
        counter = _check_totp(settings, member, totp, now)
        if counter is not None:
            await _use_totp_counter(session, member, counter)
    except AppError:
        lock_answer(locked_for)
        await asyncio.sleep(slowdown_seconds(settings, throttle.failures))
        raise
    await forget_failures(session, throttle_key)
    return await _open_session(session, settings, member, private_key, now)


async def _use_totp_counter(session: AsyncSession, member: Member, counter: int) -> None:
    """Accept a code's time step once, even when two logins present it at the same moment."""
    result = await session.execute(
        update(Member)
        .where(
            Member.id == member.id,
            or_(Member.totp_last_counter.is_(None), Member.totp_last_counter < counter),
        )
        .values(totp_last_counter=counter)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        raise Unauthorized(N_("The authenticator code is not valid."), code="invalid_totp")
    set_committed_value(member, "totp_last_counter", counter)


async def open_throttle(session: AsyncSession, key_hash: bytes, now: datetime) -> LoginThrottle:
    """The failed-login record of a keyed e-mail hash, row-locked; see `lock_remaining`."""
    # One statement that inserts the row or, if it exists, takes its lock and returns it: two
    # first attempts at once share one row, and a row a successful login deletes in between
    # is simply made again.
    dialect = (await session.connection()).dialect.name
    insert_row = pg_insert if dialect == "postgresql" else sqlite_insert
    upsert = insert_row(LoginThrottle).values(key_hash=key_hash, failures=0, last_failed_at=now)
    throttle = (
        await session.scalars(
            upsert.on_conflict_do_update(
                index_elements=["key_hash"], set_={"key_hash": upsert.excluded.key_hash}
            ).returning(LoginThrottle),
            execution_options={"populate_existing": True},
        )
    ).one()
    return throttle


def lock_remaining(throttle: LoginThrottle, now: datetime) -> int | None:
    """Seconds until the account's lock runs out; None when it is not locked.

    A lock does not shut the account: its password with a valid TOTP code still logs in, so
    guesses from anywhere cannot keep out a person who has TOTP (every operator does). Without
    TOTP the lock holds: nothing else tells that person from someone guessing the password.
    """
    if throttle.locked_until is None or throttle.locked_until <= now:
        return None
    return int((throttle.locked_until - now).total_seconds()) + 1


def lock_answer(locked_for: int | None) -> None:
    """A failed attempt on a locked account gets the lock's answer whatever failed, so the
    answer tells nothing about the password."""
    if locked_for:
        raise RateLimited(LOCKED, retry_after=locked_for)


async def count_attempt(
    session: AsyncSession, settings: Settings, throttle: LoginThrottle, now: datetime
) -> None:
    """Count a login attempt as failed before its password is checked, and commit that at once.

    Argon2 then runs without a connection or the throttle's row lock, and concurrent guesses
    cannot slip past the lock, each having been counted before it is checked. The one place a
    service commits: the count must stand whatever the request does next.
    """
    if lock_remaining(throttle, now) is None:  # attempts in a lock neither count nor prolong it
        _record_failure(settings, throttle, now)
    await session.commit()


async def forget_failures(session: AsyncSession, key_hash: bytes) -> None:
    """A login succeeded: its failures go. By statement, as a concurrent successful login of the
    same person may have removed the row already."""
    await session.execute(delete(LoginThrottle).where(LoginThrottle.key_hash == key_hash))


async def _check_password(settings: Settings, member: Member | None, password: str) -> bytes:
    if member is None:
        await keys.derive_password_keys(password, _DUMMY_SALT, keys.argon2_params(settings))
        raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")
    derived = await keys.derive_password_keys(
        password, member.password_salt, crypto.Argon2Params.decode(member.password_params)
    )
    if not crypto.verify_equal(derived.verifier, member.password_verifier):
        raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")
    return keys.unwrap_member_key(derived, member.id, member.wrapped_private_key)


def _check_totp(settings: Settings, member: Member, code: str | None, now: datetime) -> int | None:
    """The accepted code's time step; None when the member has no TOTP."""
    if member.totp_enabled_at is None:
        return None
    if not code:
        raise Unauthorized(N_("Enter the code from your authenticator app."), code="totp_required")
    counter = _matching_totp_counter(settings, member, code, now)
    if counter is None or (member.totp_last_counter or -1) >= counter:
        raise Unauthorized(N_("The authenticator code is not valid."), code="invalid_totp")
    return counter


def _matching_totp_counter(
    settings: Settings, member: Member, code: str, now: datetime
) -> int | None:
    if member.totp_secret is None:
        return None
    secret = crypto.open_sealed(_totp_key(settings), member.totp_secret, member.id.bytes)
    return totp_counter(secret.decode("ascii"), code, now)


def totp_counter(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code matches, one step of clock drift allowed either way."""
    code = code.strip()
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    matched = None
    for drift in (-1, 0, 1):
        moment = now + timedelta(seconds=drift * totp.interval)
        if crypto.verify_equal(totp.at(moment).encode(), code.encode()):
            matched = totp.timecode(moment)
    return matched


def _record_failure(settings: Settings, throttle: LoginThrottle, now: datetime) -> None:
    lock = timedelta(minutes=settings.login_lock_minutes)
    lock_ran_out = throttle.locked_until is not None and throttle.locked_until <= now
    if lock_ran_out or throttle.last_failed_at <= now - lock:
        # A lock that ran out, or failures older than a lock would last, are forgotten:
        # otherwise one wrong guess now and then would keep a known person locked out for good.
        throttle.failures = 0
        throttle.locked_until = None
    throttle.failures += 1
    throttle.last_failed_at = now
    if throttle.failures >= settings.login_lock_after:
        throttle.locked_until = now + lock


async def _open_session(
    session: AsyncSession, settings: Settings, member: Member, private_key: bytes, now: datetime
) -> LoggedIn:
    secret = secrets.token_bytes(32)
    session_id = uuid.uuid4()
    row = MemberSession(
        id=session_id,
        token_hash=_token_hash(secret),
        member_id=member.id,
        sealed_private_key=crypto.seal(_session_key(secret), private_key, _session_aad(session_id)),
        created_at=now,
        expires_at=now + timedelta(hours=settings.session_hours),
    )
    session.add(row)
    await session.flush()
    cookie = base64.urlsafe_b64encode(secret).decode().rstrip("=")
    fingerprint = crypto.fingerprint(crypto.public_key_of(private_key))
    return LoggedIn(member=member, session=row, cookie_value=cookie, key_fingerprint=fingerprint)


def _decode_cookie(value: str) -> bytes | None:
    if len(value) != 43:
        return None
    try:
        secret = base64.urlsafe_b64decode(value + "=")
    except ValueError:
        return None
    return secret if len(secret) == 32 else None


async def resolve_session(
    session: AsyncSession, settings: Settings, cookie_value: str | None
) -> CurrentMember | None:
    """The member of a live session cookie, or None."""
    secret = _decode_cookie(cookie_value) if cookie_value else None
    if secret is None:
        return None
    token_hash = _token_hash(secret)
    row = await session.scalar(select(MemberSession).where(MemberSession.token_hash == token_hash))
    if row is None or not crypto.verify_equal(row.token_hash, token_hash):
        return None
    if row.expires_at <= utcnow():
        await session.delete(row)
        return None
    member = await session.get(Member, row.member_id)
    if member is None:
        return None
    private_key = crypto.open_sealed(
        _session_key(secret), row.sealed_private_key, _session_aad(row.id)
    )
    csrf = keys.keyed_hash(settings, "csrf", token_hash).hex()
    return CurrentMember(member=member, session=row, private_key=private_key, csrf_token=csrf)


def verify_csrf(current: CurrentMember, token: str) -> bool:
    return crypto.verify_equal(current.csrf_token.encode(), token.encode())


async def logout(session: AsyncSession, current: CurrentMember) -> None:
    """End the session: its row, and with it the only copy of the unwrapped key, is deleted."""
    await session.execute(delete(MemberSession).where(MemberSession.id == current.session.id))


async def member_organisations(session: AsyncSession, member_id: uuid.UUID) -> list[Organisation]:
    """The organisations a member serves."""
    result = await session.scalars(
        select(Organisation)
        .join(Membership, Membership.organisation_id == Organisation.id)
        .where(Membership.member_id == member_id)
        .order_by(Organisation.name)
    )
    return list(result)


@dataclass(frozen=True)
class TotpSetup:
    secret: str = field(repr=False)
    uri: str = field(repr=False)


async def start_totp(session: AsyncSession, settings: Settings, member: Member) -> TotpSetup:
    """A new TOTP secret, pending until a code from it is confirmed."""
    if member.totp_enabled_at is not None:
        raise Conflict(N_("Two-factor authentication is already on."), code="totp_enabled")
    secret = pyotp.random_base32()
    member.totp_secret = crypto.seal(_totp_key(settings), secret.encode(), member.id.bytes)
    await session.flush()
    uri = pyotp.TOTP(secret).provisioning_uri(name=member.email, issuer_name=TOTP_ISSUER)
    return TotpSetup(secret=secret, uri=uri)


async def confirm_totp(
    session: AsyncSession, settings: Settings, member: Member, code: str
) -> None:
    """Switch TOTP on once the member proves their authenticator has the pending secret."""
    if member.totp_enabled_at is not None:
        raise Conflict(N_("Two-factor authentication is already on."), code="totp_enabled")
    now = utcnow()
    counter = _matching_totp_counter(settings, member, code, now)
    if counter is None:
        raise Unauthorized(N_("The authenticator code is not valid."), code="invalid_totp")
    member.totp_enabled_at = now
    member.totp_last_counter = counter
    await session.flush()


async def disable_totp(
    session: AsyncSession, settings: Settings, member: Member, code: str
) -> None:
    """Switch TOTP off; a current code is required."""
    if member.totp_enabled_at is None:
        raise Conflict(N_("Two-factor authentication is off."), code="totp_disabled")
    _check_totp(settings, member, code, utcnow())
    member.totp_secret = None
    member.totp_enabled_at = None
    member.totp_last_counter = None
    await session.flush()
