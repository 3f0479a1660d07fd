"""HPKE (RFC 9180) with ML-KEM-768 + X25519, HKDF-SHA256 and AES-256-GCM.

Private key bytes: 64-byte ML-KEM seed || 32-byte X25519 private key (96 bytes).
Public key bytes: 1184-byte ML-KEM public key || 32-byte X25519 public key (1216 bytes).
Ciphertext: ``version || HPKE single-shot ciphertext``, info = ``b"pistalka/v2|" + aad`` for
version 2 (written now) and ``b"pistalka/v1|" + aad`` for version 1 (still read): the info
names the version byte, so a changed version byte makes the ciphertext fail to open.

Key bytes of the wrong length or encoding are a caller bug and raise ValueError; a ciphertext that
does not open (wrong key, wrong aad, tampering, unknown version) raises CryptoError.
"""

import base64
import hashlib
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from app.crypto.aead import LEGACY_VERSION, VERSION, VERSION_BYTE
from app.crypto.errors import CryptoError

MLKEM_SEED_SIZE = 64
MLKEM_PUBLIC_SIZE = 1184
X25519_SIZE = 32
PRIVATE_KEY_SIZE = MLKEM_SEED_SIZE + X25519_SIZE  # 96
PUBLIC_KEY_SIZE = MLKEM_PUBLIC_SIZE + X25519_SIZE  # 1216
INFO_PREFIXES = {LEGACY_VERSION: b"pistalka/v1|", VERSION: b"pistalka/v2|"}

_SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


@dataclass(frozen=True)
class KeyPair:
    private: bytes = field(repr=False)
    public: bytes


def generate_keypair() -> KeyPair:
    """A fresh hybrid key pair, serialised."""
    kem = mlkem.MLKEM768PrivateKey.generate()
    dh = x25519.X25519PrivateKey.generate()
    return KeyPair(
        private=kem.private_bytes_raw() + dh.private_bytes_raw(),
        public=kem.public_key().public_bytes_raw() + dh.public_key().public_bytes_raw(),
    )


def _load_private(private: bytes) -> hpke.MLKEM768X25519PrivateKey:
    if len(private) != PRIVATE_KEY_SIZE:
        raise ValueError(f"private key must be {PRIVATE_KEY_SIZE} bytes")
    return hpke.MLKEM768X25519PrivateKey(
        mlkem.MLKEM768PrivateKey.from_seed_bytes(private[:MLKEM_SEED_SIZE]),
        x25519.X25519PrivateKey.from_private_bytes(private[MLKEM_SEED_SIZE:]),
    )


def _load_public(public: bytes) -> hpke.MLKEM768X25519PublicKey:
    if len(public) != PUBLIC_KEY_SIZE:
        raise ValueError(f"public key must be {PUBLIC_KEY_SIZE} bytes")
    return hpke.MLKEM768X25519PublicKey(
        mlkem.MLKEM768PublicKey.from_public_bytes(public[:MLKEM_PUBLIC_SIZE]),
        x25519.X25519PublicKey.from_public_bytes(public[MLKEM_PUBLIC_SIZE:]),
    )


def public_key_of(private: bytes) -> bytes:
    """The public key bytes belonging to serialised private key bytes."""
    if len(private) != PRIVATE_KEY_SIZE:
        raise ValueError(f"private key must be {PRIVATE_KEY_SIZE} bytes")
    kem = mlkem.MLKEM768PrivateKey.from_seed_bytes(private[:MLKEM_SEED_SIZE])
    dh = x25519.X25519PrivateKey.from_private_bytes(private[MLKEM_SEED_SIZE:])
    return kem.public_key().public_bytes_raw() + dh.public_key().public_bytes_raw()


def seal_to(public: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt ``plaintext`` to the holder of ``public``'s private key, binding ``aad``."""
    key = _load_public(public)
    return VERSION_BYTE + _SUITE.encrypt(plaintext, key, info=INFO_PREFIXES[VERSION] + aad)


def open_with(private: bytes, blob: bytes, aad: bytes) -> bytes:
    """The plaintext of a ``seal_to`` output; CryptoError if it does not open."""
    key = _load_private(private)
    if not blob:
        raise CryptoError("ciphertext too short")
    prefix = INFO_PREFIXES.get(blob[0])
    if prefix is None:
        raise CryptoError("unknown ciphertext version")
    try:
        return _SUITE.decrypt(blob[1:], key, info=prefix + aad)
    except (InvalidTag, ValueError):
        raise CryptoError("decryption failed") from None


def fingerprint(public: bytes) -> str:
    """A short, readable fingerprint of a public key, for comparing it out of band.

    80 bits of SHA-256 in base32, four groups of four: too many for anyone to make a second key
    with the same fingerprint, few enough to read out on the phone.
    """
    digest = base64.b32encode(hashlib.sha256(b"pistalka-fingerprint|" + public).digest()[:10])
    text = digest.decode("ascii")
    return "-".join(text[i : i + 4] for i in range(0, 16, 4))
