"""Key custody: member key pairs, grants of the organisation key, recovery and server sub-keys."""

import asyncio
import hashlib
import hmac
import os
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeVar

from app import crypto
from app.config import Settings

# Argon2id takes tens of megabytes and most of a core: at most two run at once (2 cores), so a
# burst of logins queues instead of starving the event loop and the memory.
_ARGON2_SLOTS = 2
_ARGON2_NICENESS = 10
T = TypeVar("T")


def _lower_priority() -> None:
    # libargon2's lane threads inherit this thread's niceness: a burst of logins then yields the
    # cores to the event loop, which serves the whistleblowers, instead of sharing them equally.
    if sys.platform == "linux":
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _ARGON2_NICENESS)


_argon2_pool = ThreadPoolExecutor(
    _ARGON2_SLOTS, thread_name_prefix="argon2", initializer=_lower_priority
)


def argon2_params(settings: Settings) -> crypto.Argon2Params:
    return crypto.Argon2Params(
        memory_kib=settings.argon2_memory_kib,
        iterations=settings.argon2_iterations,
        lanes=settings.argon2_lanes,
    )


def server_subkey(settings: Settings, purpose: str) -> bytes:
    return _derive_subkey(settings.server_key, purpose)


@lru_cache(maxsize=64)
def _derive_subkey(server_key: bytes, purpose: str) -> bytes:
    # An HKDF per keyed hash or sealed mail showed in the submission profile; the purposes are
    # a handful of constants, and the server key is held in memory anyway.
    return crypto.derive_key(server_key, purpose)


def keyed_hash(settings: Settings, purpose: str, value: bytes) -> bytes:
    """A keyed hash for looking up secrets (tokens, e-mails) without storing them."""
    return hmac.new(server_subkey(settings, purpose), value, hashlib.sha256).digest()


@dataclass(frozen=True)
class MemberKeys:
    public_key: bytes
    salt: bytes
    params: str
    verifier: bytes = field(repr=False)
    wrapped_private_key: bytes = field(repr=False)
    private_key: bytes = field(repr=False)


def _member_aad(member_id: uuid.UUID) -> bytes:
    return b"member-key|" + member_id.bytes


async def in_argon2_pool(function: Callable[..., T], *args: object) -> T:
    """Run an Argon2 computation in the bounded, low-priority pool of every login."""
    return await asyncio.get_running_loop().run_in_executor(_argon2_pool, function, *args)


async def derive_password_keys(
    password: str, salt: bytes, params: crypto.Argon2Params
) -> crypto.PasswordKeys:
    """Argon2id in a worker thread, bounded, so logins never stall the event loop."""
    return await in_argon2_pool(crypto.derive_password_keys, password, salt, params)


async def new_member_keys(settings: Settings, member_id: uuid.UUID, password: str) -> MemberKeys:
    """A fresh key pair for a member, its private half wrapped under the password."""
    return await rewrap_member_key(settings, member_id, crypto.generate_keypair().private, password)


def unwrap_member_key(
    derived: crypto.PasswordKeys, member_id: uuid.UUID, wrapped_private_key: bytes
) -> bytes:
    return crypto.open_sealed(derived.wrap_key, wrapped_private_key, _member_aad(member_id))


def _grant_aad(organisation_id: uuid.UUID, member_id: uuid.UUID) -> bytes:
    return b"grant|" + organisation_id.bytes + member_id.bytes


def grant_org_key(
    org_private_key: bytes,
    member_public_key: bytes,
    organisation_id: uuid.UUID,
    member_id: uuid.UUID,
) -> bytes:
    """Wrap the organisation private key to one member's public key."""
    return crypto.seal_to(
        member_public_key, org_private_key, _grant_aad(organisation_id, member_id)
    )


def open_grant(
    grant: bytes, member_private_key: bytes, organisation_id: uuid.UUID, member_id: uuid.UUID
) -> bytes:
    return crypto.open_with(member_private_key, grant, _grant_aad(organisation_id, member_id))


# The recovery key wraps the recovery private key; organisations registered before recovery key
# pairs have the organisation private key under it directly ("legacy", another purpose).
_RECOVERY_PAIR = b"recovery-pair|"
_RECOVERY_LEGACY = b"recovery|"


@dataclass(frozen=True)
class Recovery:
    """A new recovery key (shown once) and what the organisation stores of it."""

    recovery_key: str = field(repr=False)
    public_key: bytes
    wrapped_private_key: bytes = field(repr=False)


def _recovery_wrap_key(recovery_key: str) -> bytes:
    normalised = crypto.normalise_recovery_key(recovery_key)
    if normalised is None:
        raise crypto.CryptoError("malformed recovery key")
    return crypto.code_key(normalised, "recovery-key")


def new_recovery(organisation_id: uuid.UUID) -> Recovery:
    """A fresh recovery key and key pair, the private half wrapped under the key."""
    recovery_key = crypto.new_recovery_key()
    pair = crypto.generate_keypair()
    wrapped = crypto.seal(
        _recovery_wrap_key(recovery_key), pair.private, _RECOVERY_PAIR + organisation_id.bytes
    )
    return Recovery(recovery_key, pair.public, wrapped)


def _recovery_grant_aad(organisation_id: uuid.UUID) -> bytes:
    return b"recovery-grant|" + organisation_id.bytes


def seal_recovery_grant(
    recovery_public_key: bytes, org_private_key: bytes, organisation_id: uuid.UUID
) -> bytes:
    """The organisation private key sealed to the recovery public key."""
    return crypto.seal_to(
        recovery_public_key, org_private_key, _recovery_grant_aad(organisation_id)
    )


def open_with_recovery_key(
    recovery_key: str,
    wrapped: bytes,
    organisation_id: uuid.UUID,
    recovery_grant: bytes | None = None,
) -> bytes:
    """The organisation private key, or CryptoError when the recovery key is wrong.

    Without `recovery_grant` the organisation is of the legacy kind, whose recovery key wraps
    the organisation private key itself.
    """
    wrap_key = _recovery_wrap_key(recovery_key)
    if recovery_grant is None:
        return crypto.open_sealed(wrap_key, wrapped, _RECOVERY_LEGACY + organisation_id.bytes)
    recovery_private = crypto.open_sealed(wrap_key, wrapped, _RECOVERY_PAIR + organisation_id.bytes)
    return crypto.open_with(recovery_private, recovery_grant, _recovery_grant_aad(organisation_id))


def open_recovery_private_key(
    recovery_key: str, wrapped: bytes, organisation_id: uuid.UUID
) -> bytes:
    """The recovery private key of an organisation with a recovery key pair; CryptoError when
    the recovery key is wrong."""
    return crypto.open_sealed(
        _recovery_wrap_key(recovery_key), wrapped, _RECOVERY_PAIR + organisation_id.bytes
    )


def integrity_tag(settings: Settings, purpose: bytes, *parts: bytes) -> bytes:
    """A MAC under a server sub-key over length-prefixed parts: proof the service wrote them.

    The database does not hold the key, so whoever can only write to the database cannot make
    a tag for rows of their own; an operator holding the server key can.
    """
    mac = hmac.new(server_subkey(settings, "integrity"), purpose, hashlib.sha256)
    for part in parts:
        mac.update(len(part).to_bytes(4, "big"))
        mac.update(part)
    return mac.digest()


def tag_matches(settings: Settings, tag: bytes | None, purpose: bytes, *parts: bytes) -> bool:
    return tag is not None and hmac.compare_digest(tag, integrity_tag(settings, purpose, *parts))


async def rewrap_member_key(
    settings: Settings, member_id: uuid.UUID, private_key: bytes, password: str
) -> MemberKeys:
    """The same key pair, its private half wrapped under a new password."""
    params = argon2_params(settings)
    salt = crypto.new_salt()
    derived = await derive_password_keys(password, salt, params)
    return MemberKeys(
        public_key=crypto.public_key_of(private_key),
        salt=salt,
        params=params.encode(),
        verifier=derived.verifier,
        wrapped_private_key=crypto.seal(derived.wrap_key, private_key, _member_aad(member_id)),
        private_key=private_key,
    )
