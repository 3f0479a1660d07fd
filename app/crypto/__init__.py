"""Píšťalka's cryptography: small typed functions over bytes, every ciphertext versioned.

Errors: CryptoError for anything that fails to decrypt or authenticate, unknown version bytes and
malformed stored input; ValueError for caller bugs (keys of the wrong length, empty purpose).
"""

from app.crypto.aead import VERSION, open_sealed, random_key, seal
from app.crypto.codes import (
    ALPHABET,
    RECOVERY_KEY_LENGTH,
    TRACKING_CODE_LENGTH,
    code_key,
    format_code,
    lookup_hash,
    new_recovery_key,
    new_tracking_code,
    normalise_code,
    normalise_recovery_key,
    normalise_tracking_code,
)
from app.crypto.errors import CryptoError
from app.crypto.kdf import (
    Argon2Params,
    PasswordKeys,
    derive_key,
    derive_password_keys,
    new_salt,
    verify_equal,
)
from app.crypto.keys import (
    PRIVATE_KEY_SIZE,
    PUBLIC_KEY_SIZE,
    KeyPair,
    fingerprint,
    generate_keypair,
    open_with,
    public_key_of,
    seal_to,
)
from app.crypto.stream import (
    CHUNK_SIZE,
    decrypt_stream,
    encrypt_stream,
    open_chunk,
    sealed_chunk_size,
)

__all__ = [
    "ALPHABET",
    "CHUNK_SIZE",
    "PRIVATE_KEY_SIZE",
    "PUBLIC_KEY_SIZE",
    "RECOVERY_KEY_LENGTH",
    "TRACKING_CODE_LENGTH",
    "VERSION",
    "Argon2Params",
    "CryptoError",
    "KeyPair",
    "PasswordKeys",
    "code_key",
    "decrypt_stream",
    "derive_key",
    "derive_password_keys",
    "encrypt_stream",
    "fingerprint",
    "open_chunk",
    "format_code",
    "generate_keypair",
    "lookup_hash",
    "new_recovery_key",
    "new_salt",
    "new_tracking_code",
    "normalise_code",
    "normalise_recovery_key",
    "normalise_tracking_code",
    "open_sealed",
    "open_with",
    "public_key_of",
    "random_key",
    "seal",
    "seal_to",
    "sealed_chunk_size",
    "verify_equal",
]
