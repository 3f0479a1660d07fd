"""AES-256-GCM with a random nonce: ``0x01 || nonce(12) || ciphertext+tag``."""

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.crypto.errors import CryptoError

VERSION = 1
VERSION_BYTE = bytes([VERSION])
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


def seal_with_nonce(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """``seal`` with a caller-chosen nonce; internal, for ``seal`` and test vectors only."""
    check_key(key)
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"nonce must be {NONCE_SIZE} bytes")
    return VERSION_BYTE + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` under ``key``, binding ``aad``."""
    return seal_with_nonce(key, secrets.token_bytes(NONCE_SIZE), plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """The plaintext of a ``seal`` output; CryptoError if it is not authentic for key and aad."""
    check_key(key)
    if len(blob) < OVERHEAD:
        raise CryptoError("ciphertext too short")
    if blob[0] != VERSION:
        raise CryptoError("unknown ciphertext version")
    nonce = blob[1 : 1 + NONCE_SIZE]
    try:
        return AESGCM(key).decrypt(nonce, blob[1 + NONCE_SIZE :], aad)
    except InvalidTag:
        raise CryptoError("decryption failed") from None
