"""AES-256-GCM with a random nonce: ``version || nonce(12) || ciphertext+tag``.

Version 2 (written now) authenticates its version byte: the associated data given to AES-GCM is
``0x02 || aad``. Version 1 (still read) used ``aad`` alone, so changing a ciphertext's version
byte either way changes the associated data and the tag no longer matches.
"""

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.crypto.errors import CryptoError

VERSION = 2
VERSION_BYTE = bytes([VERSION])
LEGACY_VERSION = 1
KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
OVERHEAD = 1 + NONCE_SIZE + TAG_SIZE  # 29 bytes


def random_key() -> bytes:
    """A fresh random 256-bit key."""
    return secrets.token_bytes(KEY_SIZE)


def check_key(key: bytes) -> None:
    """Wrong key length is a programming error, not a forgery: ValueError."""
    if len(key) != KEY_SIZE:
        raise ValueError(f"key must be {KEY_SIZE} bytes")


def versioned_aad(version: int, aad: bytes) -> bytes:
    """The associated data AES-GCM authenticates for a ciphertext of ``version``."""
    if version == LEGACY_VERSION:
        return aad
    if version == VERSION:
        return VERSION_BYTE + aad
    raise CryptoError("unknown ciphertext version")


def seal_with_nonce(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """``seal`` with a caller-chosen nonce; internal, for ``seal`` and test vectors only."""
    check_key(key)
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"nonce must be {NONCE_SIZE} bytes")
    return VERSION_BYTE + nonce + AESGCM(key).encrypt(nonce, plaintext, versioned_aad(VERSION, aad))


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` under ``key``, binding ``aad`` and the version."""
    return seal_with_nonce(key, secrets.token_bytes(NONCE_SIZE), plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """The plaintext of a ``seal`` output; CryptoError if it is not authentic for key and aad."""
    check_key(key)
    if len(blob) < OVERHEAD:
        raise CryptoError("ciphertext too short")
    associated = versioned_aad(blob[0], aad)
    nonce = blob[1 : 1 + NONCE_SIZE]
    try:
        return AESGCM(key).decrypt(nonce, blob[1 + NONCE_SIZE :], associated)
    except InvalidTag:
        raise CryptoError("decryption failed") from None
