"""Chunked, streaming AES-256-GCM for files, in constant memory.

Each plaintext chunk (``chunk_size`` bytes, the last one shorter or, for an empty file, empty) is
sealed separately as ``version || nonce(12) || ciphertext+tag`` under the report key, with
associated data ``aad || index (8 bytes, big-endian) || final flag (1 byte)``, preceded by the
version byte from version 2 on (version 1 chunks, still read, did not authenticate it). The index
stops reordering, dropping and splicing; the final flag stops truncation and extension; ``aad``
binds report and file.

``decrypt_stream`` yields each chunk as soon as it is authentic, before the end of the stream is
known: a consumer must treat the output as provisional until the iterator finishes without
CryptoError (e.g. write to a temporary file, or abort the HTTP response on error).
"""

import secrets
from collections.abc import Iterable, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.crypto.aead import NONCE_SIZE, OVERHEAD, VERSION, VERSION_BYTE, check_key, versioned_aad
from app.crypto.errors import CryptoError

CHUNK_SIZE = 64 * 1024
MAX_CHUNKS = 2**32  # random 96-bit nonces: stay within the NIST limit of 2**32 per key


def sealed_chunk_size(chunk_size: int = CHUNK_SIZE) -> int:
    """Size of a sealed full chunk: plaintext + version(1) + nonce(12) + tag(16)."""
    return chunk_size + OVERHEAD


def _chunk_aad(version: int, aad: bytes, index: int, final: bool) -> bytes:
    if index >= MAX_CHUNKS:
        raise CryptoError("stream too long")
    return versioned_aad(version, aad + index.to_bytes(8, "big") + (b"\x01" if final else b"\x00"))


def _seal_chunk(aead: AESGCM, plaintext: bytes, aad: bytes, index: int, final: bool) -> bytes:
    nonce = secrets.token_bytes(NONCE_SIZE)
    associated = _chunk_aad(VERSION, aad, index, final)
    return VERSION_BYTE + nonce + aead.encrypt(nonce, plaintext, associated)


def encrypt_stream(
    key: bytes, chunks: Iterable[bytes], aad: bytes, chunk_size: int = CHUNK_SIZE
) -> Iterator[bytes]:
    """Sealed chunks of the concatenation of ``chunks``, re-cut to ``chunk_size`` bytes.

    Always yields at least one chunk (the final one, empty for empty input). Memory use is
    bounded by ``chunk_size`` plus the largest input piece.
    """
    check_key(key)
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    aead = AESGCM(key)
    buffer = bytearray()
    index = 0
    for piece in chunks:
        buffer += piece
        # Only cut a chunk when more data follows it, so it is known not to be the final one.
        offset = 0
        while len(buffer) - offset > chunk_size:
            yield _seal_chunk(aead, bytes(buffer[offset : offset + chunk_size]), aad, index, False)
            index += 1
            offset += chunk_size
        if offset:
            del buffer[:offset]
    yield _seal_chunk(aead, bytes(buffer), aad, index, True)


def _open_chunk(aead: AESGCM, sealed: bytes, aad: bytes, index: int, final: bool) -> bytes:
    if len(sealed) < OVERHEAD:
        raise CryptoError("chunk too short")
    associated = _chunk_aad(sealed[0], aad, index, final)
    nonce = sealed[1 : 1 + NONCE_SIZE]
    try:
        return aead.decrypt(nonce, sealed[1 + NONCE_SIZE :], associated)
    except InvalidTag:
        raise CryptoError("chunk authentication failed") from None


def decrypt_stream(key: bytes, sealed_chunks: Iterable[bytes], aad: bytes) -> Iterator[bytes]:
    """Plaintext chunks of an ``encrypt_stream`` output; CryptoError on any tampering.

    Tampering includes flipped bits, reordered, dropped or foreign chunks, a stream cut short and
    chunks after the final one. One chunk of lookahead tells whether a chunk must be the final one.
    """
    check_key(key)
    aead = AESGCM(key)
    index = 0
    pending: bytes | None = None
    for sealed in sealed_chunks:
        if pending is not None:
            yield _open_chunk(aead, pending, aad, index, False)
            index += 1
        pending = sealed
    if pending is None:
        raise CryptoError("empty stream")
    yield _open_chunk(aead, pending, aad, index, True)


def open_chunk(key: bytes, sealed: bytes, aad: bytes, index: int, final: bool) -> bytes:
    """One chunk of an ``encrypt_stream`` output, for readers that know the chunk count.

    Whoever stored the stream records how many chunks it has; opening the last with
    ``final=True`` and every other with ``final=False`` detects truncation and extension just as
    ``decrypt_stream`` does, without holding the stream.
    """
    check_key(key)
    return _open_chunk(AESGCM(key), sealed, aad, index, final)
