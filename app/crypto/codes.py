"""Human-typed secrets: tracking codes (140 bits) and recovery keys (260 bits).

Alphabet: the 32 symbols ``2-9`` and ``A-Z`` without ``I`` and ``O`` (5 bits per symbol). With
0, 1, I and O all absent, none of the classic look-alike pairs (0/O, 1/I/l) can be misread; a typed
lowercase ``l`` simply becomes ``L``. Codes are displayed in groups of four joined by ``-``; input
is case-insensitive and spaces and hyphens are ignored.
"""

import hashlib
import hmac
import secrets

from app.crypto.kdf import derive_key

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
BITS_PER_SYMBOL = 5
TRACKING_CODE_LENGTH = 28  # 140 bits
RECOVERY_KEY_LENGTH = 52  # 260 bits
GROUP_SIZE = 4

_SYMBOLS = frozenset(ALPHABET)
_IGNORED = str.maketrans("", "", " -\t\r\n\u00a0")


def _random_symbols(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def format_code(normalised: str) -> str:
    """Display form: groups of four symbols joined by ``-``."""
    return "-".join(
        normalised[start : start + GROUP_SIZE] for start in range(0, len(normalised), GROUP_SIZE)
    )


def new_tracking_code() -> str:
    """A fresh tracking code in display form, e.g. ``ABCD-EFGH-...`` (7 groups)."""
    return format_code(_random_symbols(TRACKING_CODE_LENGTH))


def new_recovery_key() -> str:
    """A fresh recovery key in display form (13 groups)."""
    return format_code(_random_symbols(RECOVERY_KEY_LENGTH))


def normalise_code(text: str, expected_length: int) -> str | None:
    """Canonical form (uppercase, no separators), or None if length or characters are wrong."""
    candidate = text.translate(_IGNORED)
    if not candidate.isascii():  # "ſ".upper() == "S": only ASCII may be case-folded
        return None
    candidate = candidate.upper()
    if len(candidate) != expected_length or not _SYMBOLS.issuperset(candidate):
        return None
    return candidate


def normalise_tracking_code(text: str) -> str | None:
    return normalise_code(text, TRACKING_CODE_LENGTH)


def normalise_recovery_key(text: str) -> str | None:
    return normalise_code(text, RECOVERY_KEY_LENGTH)


def _check_normalised(normalised: str) -> bytes:
    if not normalised or not _SYMBOLS.issuperset(normalised):
        raise ValueError("code is not normalised")
    return normalised.encode("ascii")


def code_key(normalised_code: str, purpose: str) -> bytes:
    """A 32-byte key from a normalised code (high entropy, so HKDF and no password hashing)."""
    return derive_key(_check_normalised(normalised_code), purpose)


def lookup_hash(key: bytes, normalised_code: str) -> bytes:
    """HMAC-SHA256 of a normalised code under a server sub-key, for storage and lookup."""
    return hmac.new(key, _check_normalised(normalised_code), hashlib.sha256).digest()
