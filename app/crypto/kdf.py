"""HKDF-SHA256 sub-keys and Argon2id password keys."""

import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass, field
from typing import Self

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.crypto.errors import CryptoError

DERIVED_KEY_SIZE = 32
SALT_SIZE = 16
# Upper bounds so a stored (or tampered) parameter string cannot ask for absurd work.
MAX_MEMORY_KIB = 4 * 1024 * 1024  # 4 GiB
MAX_ITERATIONS = 64
MAX_LANES = 64

_PARAMS_RE = re.compile(r"argon2id\$m=([1-9][0-9]{0,9}),t=([1-9][0-9]{0,9}),p=([1-9][0-9]{0,9})")


def derive_key(secret: bytes, purpose: str, salt: bytes = b"") -> bytes:
    """A 32-byte HKDF-SHA256 key from a high-entropy ``secret``; info is ``purpose`` in UTF-8."""
    if not purpose:
        raise ValueError("purpose must not be empty")
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=DERIVED_KEY_SIZE,
        salt=salt or None,
        info=purpose.encode("utf-8"),
    )
    return hkdf.derive(secret)


def verify_equal(a: bytes, b: bytes) -> bool:
    """Constant-time equality of two byte strings."""
    return hmac.compare_digest(a, b)


def new_salt() -> bytes:
    """A fresh random 16-byte salt."""
    return secrets.token_bytes(SALT_SIZE)


@dataclass(frozen=True)
class Argon2Params:
    memory_kib: int = 65536
    iterations: int = 3
    lanes: int = 4

    def __post_init__(self) -> None:
        if not 1 <= self.lanes <= MAX_LANES:
            raise ValueError("Argon2 lanes out of range")
        if not 1 <= self.iterations <= MAX_ITERATIONS:
            raise ValueError("Argon2 iterations out of range")
        if not 8 * self.lanes <= self.memory_kib <= MAX_MEMORY_KIB:
            raise ValueError("Argon2 memory out of range")

    def encode(self) -> str:
        """E.g. ``argon2id$m=65536,t=3,p=4``."""
        return f"argon2id$m={self.memory_kib},t={self.iterations},p={self.lanes}"

    @classmethod
    def decode(cls, text: str) -> Self:
        """Strict inverse of ``encode``; CryptoError on anything else or out-of-range values."""
        match = _PARAMS_RE.fullmatch(text)
        if match is None:
            raise CryptoError("malformed Argon2 parameters")
        memory, iterations, lanes = (int(group) for group in match.groups())
        try:
            return cls(memory_kib=memory, iterations=iterations, lanes=lanes)
        except ValueError:
            raise CryptoError("Argon2 parameters out of range") from None


@dataclass(frozen=True)
class PasswordKeys:
    wrap_key: bytes = field(repr=False)
    verifier: bytes = field(repr=False)


def derive_password_keys(password: str, salt: bytes, params: Argon2Params) -> PasswordKeys:
    """One Argon2id run over the NFC-normalised UTF-8 password, split by HKDF.

    ``wrap_key`` wraps the user's private key; ``verifier`` is stored to check the password.
    """
    if len(salt) < SALT_SIZE:
        raise ValueError(f"salt must be at least {SALT_SIZE} bytes")
    # libargon2 (argon2-cffi), not cryptography's Argon2id: with lanes > 1 the latter deadlocks
    # when two threads derive at once (cryptography 50.0.2 on OpenSSL; bench/crypto_costs.py
    # runs concurrent logins). Both implement RFC 9106 and give the same bytes.
    master = hash_secret_raw(
        unicodedata.normalize("NFC", password).encode("utf-8"),
        salt,
        time_cost=params.iterations,
        memory_cost=params.memory_kib,
        parallelism=params.lanes,
        hash_len=DERIVED_KEY_SIZE,
        type=Type.ID,
    )
    return PasswordKeys(
        wrap_key=derive_key(master, "password-wrap"),
        verifier=derive_key(master, "password-verifier"),
    )
